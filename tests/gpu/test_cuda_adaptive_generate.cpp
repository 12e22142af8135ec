// The GPU adaptive head in generation (issue #15 item 4): GpuFastAdaptiveSoftmax, the AdaptiveAlgorithm that
// `generate --device cuda --head adaptive` runs, sends top-1 queries to the GPU query and every other query to the CPU
// fast head; and a greedy generation through AdaptiveHead{device = cuda} on SmolLM2 agrees with the exact head on the
// CUDA backend at least as often as the CPU's agreement test asks (>= 95% of the steps). Skips without a GPU.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cuda/device.h"
#include "backend/cuda/gpu_fast_adaptive_softmax.h"
#include "decode/generator.h"
#include "head/adaptive_head.h"
#include "head/column_major_head.h"
#include "head/fast_adaptive_softmax.h"
#include "model/model.h"
#include "ops/adaptive_test_instances.h"
#include "tokenizer/model_tokenizer.h"

namespace {

using namespace winnow;

// On the GPU machine the model travels in another folder: WINNOW_DEFAULT_MODEL in the environment overrides the build's.
std::string default_model() {
    const char* m = std::getenv("WINNOW_DEFAULT_MODEL");
    return m ? m : WINNOW_DEFAULT_MODEL;
}

#define SKIP_WITHOUT_GPU() \
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine"

TEST(CudaAdaptiveGenerate, TopOneOnTheGpuOthersOnTheCpu) {
    SKIP_WITHOUT_GPU();
    const int n = 4097, d = 576;
    const auto in = test::adaptive_instance(n, d, 77, true);
    auto H = std::make_shared<head::ColumnMajorHead>(in.A, n, d, true);
    cuda::adaptive::GpuFastAdaptiveSoftmax both(H, 1);
    head::FastAdaptiveSoftmax cpu(H, 1), cpu_k3(H, 1);
    AdaptiveParams p;
    p.seed = 5;
    const head::AdaptiveResult top1 = both.run(in.x, p), want1 = cpu.run(in.x, p); // each one's first query: one seed
    EXPECT_EQ(top1.head.top, want1.head.top);
    EXPECT_EQ(top1.head.top[0], in.winner);
    EXPECT_EQ(top1.cost.warmup, want1.cost.warmup);
    p.k = 3;
    const head::AdaptiveResult top3 = both.run(in.x, p), want3 = cpu_k3.run(in.x, p); // the CPU head's first query, both sides
    EXPECT_EQ(top3.head.top, want3.head.top);
    EXPECT_EQ(top3.cost.samples, want3.cost.samples);
    EXPECT_EQ(both.gpu_queries(), 1u);
    EXPECT_EQ(both.cpu_queries(), 1u);
}

TEST(CudaAdaptiveGenerate, GreedyOnSmolLM2AgreesWithTheExactHead) {
    SKIP_WITHOUT_GPU();
    const std::string path = default_model();
    if (!std::filesystem::exists(path)) GTEST_SKIP() << "SmolLM2 not present at " << path;
    auto model = LoadedModel::load(path);
    const auto tok = load_model_tokenizer(*model);
    auto be = make_backend({.device = Device::cuda});
    head::AdaptiveHead adaptive(*model, {.impl = head::HeadImpl::fast, .threads = 0, .device = Device::cuda});
    Generator gen(*model, *tok, *be, 512, &adaptive);
    GenerateOptions opt;
    opt.max_tokens = 64;
    opt.ignore_eos = true;
    opt.sampling.temperature = 0;
    const auto prompt = tok->encode("The three primary colors are", tok->add_bos_default(), true);
    const GenerateResult exact = gen.generate(prompt, opt);
    opt.head = HeadMode::adaptive;
    const GenerateResult fast = gen.generate(prompt, opt);
    EXPECT_EQ(fast.head_adaptive_steps, opt.max_tokens);
    EXPECT_EQ(fast.head_fallbacks, 0);
    // teacher-forced agreement would need the exact head's step inputs; the first divergence bounds it from below
    size_t same = 0;
    while (same < exact.output_ids.size() && same < fast.output_ids.size() && exact.output_ids[same] == fast.output_ids[same]) ++same;
    EXPECT_GE(same, static_cast<size_t>(0.95 * opt.max_tokens)) << "the adaptive head's greedy tokens left the exact head's at step " << same;
    auto* gpu = dynamic_cast<cuda::adaptive::GpuFastAdaptiveSoftmax*>(&adaptive.algorithm());
    ASSERT_NE(gpu, nullptr);
    EXPECT_EQ(gpu->gpu_queries(), static_cast<uint64_t>(opt.max_tokens));
    std::printf("GPU adaptive head in generation: %d steps, %.3f ms per step in the head, mean fraction %.4f of n*d\n", fast.head_adaptive_steps,
                1e3 * fast.head_seconds / fast.head_adaptive_steps, fast.head_fraction_sum / fast.head_adaptive_steps);
}

} // namespace
