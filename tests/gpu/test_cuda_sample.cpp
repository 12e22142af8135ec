// The CUDA sample op (backend/cuda/sample.cu) against its twin, the CPU backend's sample op (the host SamplerChain):
// the harness's logit shapes x chains x u values, token for token (a token that is the twin's at u +- 1e-12 is a
// rounding-boundary case: counted, and must be rare); the op recorded into a CUDA graph and replayed with new u values
// and history lengths read from device memory; generation on the CUDA backend with the chain on the device against
// the same generation with the logits brought to the host; and the op's time per call (printed, not asserted).
// Skips without a GPU.
#include <chrono>
#include <cstdlib>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cuda/device.h"
#include "decode/generator.h"
#include "model/model.h"
#include "ops/sample_cases.h"
#include "tokenizer/model_tokenizer.h"
#include "fixture_paths.h"

namespace {

using namespace winnow;
using namespace winnow::test::sampling;

using winnow::gpu_test::fixture;

class CudaSample : public ::testing::Test {
protected:
    void SetUp() override {
        if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
        gpu = make_backend({.device = Device::cuda});
        cpu = make_cpu_backend(2);
    }
    std::unique_ptr<Backend> gpu, cpu;
};

void expect_twins_agree(Backend& gpu, Backend& cpu, Shape shape, int64_t n, int random_u) {
    const auto logits = make_logits(shape, n, 500 + static_cast<uint64_t>(n));
    const auto history = make_history(n, 100, 9, logits);
    const std::string what = std::string(name(shape)) + " vocab " + std::to_string(n);
    const Tally t = compare(backend_picker(gpu, logits, history), backend_picker(cpu, logits, history), uniforms(123, random_u), what);
    std::printf("%s: %zu tokens compared, %zu on a rounding boundary, %zu differ\n", what.c_str(), t.compared, t.near_boundary, t.mismatches);
    EXPECT_EQ(t.mismatches, 0u) << t.first_failure;
    EXPECT_LE(t.near_boundary, t.compared / 100);
}

TEST_F(CudaSample, MatchesTheCpuTwinOnTheSmolLm2Vocabulary) {
    for (Shape s : {Shape::random, Shape::ties, Shape::near_ties, Shape::merged_by_temperature}) expect_twins_agree(*gpu, *cpu, s, 49152, 2);
}

TEST_F(CudaSample, MatchesTheCpuTwinOnSmallVocabularies) {
    for (Shape s : {Shape::random, Shape::ties, Shape::near_ties, Shape::with_neg_inf, Shape::merged_by_temperature, Shape::four_equal,
                    Shape::all_neg_inf, Shape::pos_inf})
        expect_twins_agree(*gpu, *cpu, s, 3001, 8);
    expect_twins_agree(*gpu, *cpu, Shape::ties, 5, 8);
}

// Recorded once (CUDA graph) with u and the history length in device memory, replayed for each step as a decode loop
// would: the token, and the token appended to the device's history, equal the twin's every time.
TEST_F(CudaSample, RecordedOpReplaysWithNewUAndLength) {
    const int64_t n = 49152;
    const auto logits = make_logits(Shape::random, n, 77);
    const auto history = make_history(n, 64, 78, logits);
    Tensor lt = gpu->alloc(GgmlType::F32, 1, n), ht = gpu->alloc(GgmlType::I32, 65, 1), len = gpu->alloc(GgmlType::I32, 1, 1);
    Tensor ut = gpu->alloc(GgmlType::I32, 1, 2), tok = gpu->alloc(GgmlType::I32, 1, 1);
    gpu->upload(logits.data(), lt);
    gpu->upload(history.data(), ht.rows_view(0, 64));
    SampleParams p;
    p.chain.temperature = 0.8f;
    p.chain.top_k = 40;
    p.chain.top_p = 0.95f;
    p.chain.min_p = 0.05f;
    p.chain.repeat_penalty = 1.3f;
    p.chain.repeat_last_n = 16;
    p.chain.order = SamplerOrder::llama_cpp;
    p.history = &ht;
    p.n_history_at = &len;
    p.u = &ut;
    p.append = true;
    const int32_t zero = 0;
    gpu->upload(&zero, len);
    gpu->sample(lt, p, tok); // allocates the op's scratch outside the recording
    gpu->begin_recording();
    gpu->sample(lt, p, tok);
    const int graph = gpu->end_recording();
    std::mt19937_64 rng(5);
    for (int step = 0; step < 40; ++step) {
        const int32_t length = static_cast<int32_t>(rng() % 64);
        const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
        gpu->upload(&length, len);
        gpu->upload(&u, ut);
        gpu->upload(history.data(), ht.rows_view(0, 64)); // undo the last append
        gpu->replay(graph);
        int32_t got = -1;
        gpu->download(tok, &got);
        std::vector<int32_t> h(65);
        gpu->download(ht, h.data());
        const int32_t want = SamplerChain(p.chain).run(logits, std::span(history).first(static_cast<size_t>(length)), u);
        EXPECT_EQ(got, want) << "step " << step << " length " << length << " u " << u;
        EXPECT_EQ(h[static_cast<size_t>(length)], got) << "the appended token";
    }
    gpu->drop_recording(graph);
}

// A few calls of each path for compute-sanitizer (bench/device/run.sh runs this one under memcheck): greedy with a
// penalty, top-k (compacted set), whole-vocabulary top-p and draw (global-memory searches), llama.cpp's chain.
TEST_F(CudaSample, SanitizerSubset) {
    const int64_t n = 49152;
    const auto logits = make_logits(Shape::ties, n, 3);
    const auto history = make_history(n, 100, 4, logits);
    auto g = backend_picker(*gpu, logits, history), c = backend_picker(*cpu, logits, history);
    for (const SamplingParams& chain : chains()) {
        if (chain.repeat_penalty != 1.0f && chain.repeat_last_n == -1) {
            EXPECT_EQ(g(chain, 0.37), c(chain, 0.37)) << describe(chain);
        }
    }
}

// Three slices (2,048 + 2,048 + 4 logits: the short last one), one chain of each kind with the penalty's window split
// over the slices: greedy, top-k on the slices' candidates (random logits) or back on the whole vocabulary (four
// finite logits, the rest -inf: every slice's cut is -inf, a tie of 2,048 that overflows its slots), top-p and the draw. Small enough for the emulator's race detector
// (scripts/test-emulated.sh --racecheck, quick scope), which checks the blocks' hand-over through global memory.
TEST_F(CudaSample, SlicesSubset) {
    const int64_t n = 4100;
    for (Shape shape : {Shape::random, Shape::four_equal}) {
        const auto logits = make_logits(shape, n, 21);
        const auto history = make_history(n, 100, 22, logits);
        auto g = backend_picker(*gpu, logits, history), c = backend_picker(*cpu, logits, history);
        for (const SamplingParams& chain : chains())
            if (chain.repeat_penalty != 1.0f && chain.repeat_last_n == 64 && (chain.temperature <= 0.0f || chain.top_k > 0 || chain.top_p < 1.0f)) {
                EXPECT_EQ(g(chain, 0.37), c(chain, 0.37)) << name(shape) << " " << describe(chain);
            }
    }
}

// Generation on the CUDA backend, the chain on the device vs every logit to the host's Sampler (the same logits):
// the same ids.
TEST_F(CudaSample, GenerationOnTheDeviceEqualsTheHostPath) {
    auto m = Model::load(fixture("tiny-llama.gguf"));
    auto tok = load_model_tokenizer(*m);
    Generator gen(*m, *tok, *gpu, 64);
    for (uint64_t seed : {1u, 2u}) {
        for (SamplerOrder order : {SamplerOrder::hf, SamplerOrder::llama_cpp}) {
            GenerateOptions o;
            o.max_tokens = 32;
            o.ignore_eos = true;
            o.sampling.temperature = 0.9f;
            o.sampling.top_p = 0.95f;
            o.sampling.repeat_penalty = 1.2f;
            o.sampling.seed = seed;
            o.sampling.order = order;
            gen.set_device_sampling(false);
            const auto host = gen.generate({1, 5, 9, 5}, o).output_ids;
            gen.set_device_sampling(true);
            const auto dev = gen.generate({1, 5, 9, 5}, o).output_ids;
            EXPECT_EQ(gen.device_sampled_steps(), 32);
            EXPECT_EQ(dev, host) << "seed " << seed;
        }
    }
}

// Time per call on the SmolLM2 vocabulary (printed for the tuning that follows; not a test of speed).
TEST_F(CudaSample, TimePerCall) {
    const int64_t n = 49152;
    const auto logits = make_logits(Shape::random, n, 11);
    const auto history = make_history(n, 512, 12, logits);
    struct Named { const char* name; SamplingParams s; };
    std::vector<Named> cases;
    SamplingParams s;
    s.repeat_penalty = 1.1f;
    cases.push_back({"greedy + penalty", s});
    s = {};
    s.temperature = 0.7f;
    s.top_k = 40;
    cases.push_back({"top-k 40", s});
    s.top_k = 0;
    s.top_p = 0.9f;
    cases.push_back({"top-p 0.9 (whole vocabulary)", s});
    s.top_p = 1.0f;
    s.temperature = 1.0f;
    cases.push_back({"plain draw (whole vocabulary)", s});
    s = {};
    s.order = SamplerOrder::llama_cpp;
    s.temperature = 0.8f;
    s.top_k = 40;
    s.top_p = 0.95f;
    s.min_p = 0.05f;
    s.repeat_penalty = 1.1f;
    s.repeat_last_n = 64;
    cases.push_back({"llama.cpp defaults", s});
    // each case on two backends: the kernel as it is (slices), then the first version's single block
    // (WINNOW_CUDA_SAMPLE_SLICES=0, which a backend reads when it is made), for the A/B in one run
    for (const bool one_block : {false, true}) {
        if (one_block) setenv("WINNOW_CUDA_SAMPLE_SLICES", "0", 1);
        auto be = make_backend({.device = Device::cuda});
        unsetenv("WINNOW_CUDA_SAMPLE_SLICES");
        auto g = backend_picker(*be, logits, history);
        // the kernel alone: recorded once, replayed back to back
        Tensor lt = be->alloc(GgmlType::F32, 1, n), ht = be->alloc(GgmlType::I32, 513, 1), ut = be->alloc(GgmlType::I32, 1, 2);
        Tensor tok = be->alloc(GgmlType::I32, 1, 1);
        be->upload(logits.data(), lt);
        be->upload(history.data(), ht.rows_view(0, 512));
        const double half = 0.5;
        be->upload(&half, ut);
        for (const Named& c : cases) {
            g(c.s, 0.5); // warm
            auto t0 = std::chrono::steady_clock::now();
            const int reps = 20;
            for (int i = 0; i < reps; ++i) g(c.s, 0.5); // each call uploads u and downloads the token (both wait)
            const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / reps;
            SampleParams p;
            p.chain = c.s;
            p.history = &ht;
            p.n_history = 512;
            p.u = &ut;
            be->sample(lt, p, tok);
            be->begin_recording();
            be->sample(lt, p, tok);
            const int graph = be->end_recording();
            be->replay(graph);
            be->synchronize();
            t0 = std::chrono::steady_clock::now();
            for (int i = 0; i < 100; ++i) be->replay(graph);
            be->synchronize();
            const double kernel_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / 100;
            be->drop_recording(graph);
            std::printf("sample op, vocab %lld, %-30s %-10s %8.1f us per call (upload u + kernel + 4-byte download), %8.1f us per replayed kernel\n",
                        static_cast<long long>(n), c.name, one_block ? "one block" : "slices", us, kernel_us);
        }
    }
}

} // namespace
