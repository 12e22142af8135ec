// The GPU adaptive head in generation (issue #15 item 4): GpuFastAdaptiveSoftmax, the AdaptiveAlgorithm that
// `generate --device cuda --head adaptive` runs, sends top-1 queries to the GPU query and every other query to the CPU
// fast head; and a greedy generation through AdaptiveHead{device = cuda} on SmolLM2 agrees with the exact head on the
// CUDA backend, teacher-forced, at least as often as the CPU's agreement test asks (>= 95% of the steps). Skips
// without a GPU.
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
#include "decode/forward.h"
#include "decode/generator.h"
#include "head/adaptive_head.h"
#include "head/column_major_head.h"
#include "head/fast_adaptive_softmax.h"
#include "model/model.h"
#include "ops/adaptive_test_instances.h"
#include "tokenizer/model_tokenizer.h"
#include "fixture_paths.h"

namespace {

using namespace winnow;

using winnow::gpu_test::default_model;

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
    head::ReadRecorder rec; // the device's reads are not recorded: refused, not left empty
    EXPECT_THROW(both.set_read_recorder(&rec), Error);
    EXPECT_NO_THROW(both.set_read_recorder(nullptr));
}

TEST(CudaAdaptiveGenerate, GreedyOnSmolLM2AgreesWithTheExactHead) {
    SKIP_WITHOUT_GPU();
    const std::string path = default_model();
    if (!std::filesystem::exists(path)) GTEST_SKIP() << "SmolLM2 not present at " << path;
    auto model = LoadedModel::load(path);
    const auto tok = load_model_tokenizer(*model);
    auto be = make_backend({.device = Device::cuda});
    head::AdaptiveHead adaptive(*model, {.impl = head::HeadImpl::fast, .threads = 0, .device = Device::cuda});
    const int steps = 64;
    const auto prompt = tok->encode("The three primary colors are", tok->add_bos_default(), true);
    // the pipeline: generate with the adaptive head serves every step with its top-1 on the GPU
    Generator gen(*model, *tok, *be, 512, &adaptive);
    GenerateOptions opt;
    opt.max_tokens = steps;
    opt.ignore_eos = true;
    opt.sampling.temperature = 0;
    const GenerateResult exact = gen.generate(prompt, opt);
    opt.head = HeadMode::adaptive;
    const GenerateResult fast = gen.generate(prompt, opt);
    EXPECT_EQ(fast.head_adaptive_steps, steps);
    EXPECT_EQ(fast.head_fallbacks, 0);
    auto* gpu = dynamic_cast<cuda::adaptive::GpuFastAdaptiveSoftmax*>(&adaptive.algorithm());
    ASSERT_NE(gpu, nullptr);
    EXPECT_EQ(gpu->gpu_queries(), static_cast<uint64_t>(steps));
    std::printf("GPU adaptive head in generation: %d steps, %.3f ms per step in the head, mean fraction %.4f of n*d\n", fast.head_adaptive_steps,
                1e3 * fast.head_seconds / fast.head_adaptive_steps, fast.head_fraction_sum / fast.head_adaptive_steps);
    // agreement, teacher-forced along the exact head's tokens (a divergence does not carry over), as the CPU test: at
    // least 95% of the steps, the 1 - delta - 3 sd of 64 steps at delta 0.01
    Forward f(*model, *be, 512);
    f.eval_hidden(prompt);
    int agree = 0;
    for (int i = 0; i < steps; ++i) {
        const auto hidden = f.final_hidden();
        agree += adaptive.select(hidden, opt.adaptive).head.top[0] == exact.output_ids[i];
        const int32_t next[] = {exact.output_ids[i]};
        f.eval_hidden(next);
    }
    EXPECT_GE(agree, static_cast<int>(0.95 * steps)) << agree << " of " << steps << " teacher-forced steps agree";
}

} // namespace
