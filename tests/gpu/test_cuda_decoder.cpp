// The CUDA decoder against the CPU reference decoder on the same model files: all-position logits (prefill) and
// one-token decode steps, greedy generation token for token, and the F16/BF16 KV cache; generation as one replay per
// token (layers, head product and sample op in one CUDA graph) against the same steps op by op. Skips without a GPU.
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cuda/device.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/step_program.h"
#include "chat/chat_template.h"
#include "decode/chat_session.h"
#include "decode/forward.h"
#include "decode/generator.h"
#include "model/model.h"
#include "model/oracle_file.h"
#include "tokenizer/model_tokenizer.h"
#include "winnow/error.h"
#include "fixture_paths.h"

namespace {

using namespace winnow;

using winnow::gpu_test::default_model;
using winnow::gpu_test::fixture;

class CudaDecoder : public ::testing::Test {
protected:
    void SetUp() override {
        if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
    }
};

std::vector<int32_t> test_ids(int n, int n_vocab) {
    std::vector<int32_t> ids;
    for (int i = 0; i < n; ++i) ids.push_back((i * 7919 + 3) % n_vocab);
    return ids;
}

// Block-sparse attention for compare_backends: one mask for every layer, and query-aware selection on top.
struct Sparse {
    BlockMask mask;
    int select = 0, unit = 0;
};

// Sink, diagonal and the previous block of `block` tokens: rows then drop most of their past.
BlockMask local_mask(int n_ctx, int block) {
    const int nb = (n_ctx + block - 1) / block;
    BlockMask mask{block, nb, std::vector<uint8_t>(static_cast<size_t>(nb) * nb, 0)};
    for (int qb = 0; qb < nb; ++qb)
        for (int kb = 0; kb <= qb; ++kb) mask.keep[static_cast<size_t>(qb) * nb + kb] = kb == 0 || kb == qb || kb + 1 == qb;
    return mask;
}

// Prefill logits at every position, then decode steps; CUDA vs CPU f32 (both block-sparse with `sparse`). Returns the
// worst relative row error.
double compare_backends(const std::string& path, int n_tokens, int prefill, GgmlType kv = GgmlType::F32, const Sparse* sparse = nullptr) {
    auto m = Model::load(path);
    const int nv = m->config().n_vocab;
    const auto ids = test_ids(n_tokens, nv);
    auto cpu = make_cpu_backend(2);
    auto gpu = make_backend({.device = Device::cuda});
    Forward fc(*m, *cpu, n_tokens), fg(*m, *gpu, n_tokens, kv);
    if (sparse)
        for (Forward* f : {&fc, &fg}) {
            f->set_attention_masks(std::vector<const BlockMask*>(m->config().n_layer, &sparse->mask));
            f->set_block_selection(sparse->select, sparse->unit);
        }
    std::vector<float> lc = fc.eval(std::span(ids).first(prefill), true), lg = fg.eval(std::span(ids).first(prefill), true);
    for (int t = prefill; t < n_tokens; ++t) {
        const auto& a = fc.eval(std::span(ids).subspan(t, 1));
        lc.insert(lc.end(), a.begin(), a.end());
        const auto& b = fg.eval(std::span(ids).subspan(t, 1));
        lg.insert(lg.end(), b.begin(), b.end());
    }
    EXPECT_EQ(lc.size(), lg.size());
    EXPECT_EQ(lc.size(), static_cast<size_t>(n_tokens) * nv);
    double worst = 0;
    int flips = 0;
    for (int t = 0; t < n_tokens; ++t) {
        const auto d = test::compare_row(lg.data() + static_cast<size_t>(t) * nv, lc.data() + static_cast<size_t>(t) * nv, nv);
        worst = std::max(worst, d.rel);
        flips += !d.same_argmax;
    }
    std::printf("%s (kv %s%s): cuda vs cpu over %d positions: max relative %.3g, argmax flips %d\n", path.c_str(), ggml_type_name(kv),
                sparse ? (", sparse, select " + std::to_string(sparse->select)).c_str() : "", n_tokens, worst, flips);
    EXPECT_EQ(flips, 0);
    return worst;
}

TEST_F(CudaDecoder, TinyGpt2MatchesCpu) { EXPECT_LE(compare_backends(fixture("tiny-gpt2.gguf"), 40, 12), 1e-4); }
TEST_F(CudaDecoder, TinyLlamaQ4_1MatchesCpu) { EXPECT_LE(compare_backends(fixture("tiny-llama-q4_1.gguf"), 40, 9), 1e-4); }
TEST_F(CudaDecoder, TinyLlamaBf16SafetensorsMatchesCpu) {
    EXPECT_LE(compare_backends(fixture("tiny-llama-bf16-hf"), 40, 9), 1e-4);
}
TEST_F(CudaDecoder, SmolLM2MatchesCpu) {
    if (!std::filesystem::exists(default_model())) GTEST_SKIP() << "SmolLM2 not present at " << default_model();
    EXPECT_LE(compare_backends(default_model(), 48, 16), 1e-4);
}
// Block-sparse attention (sparse_attention.cu) in the decoder: the pattern alone, and with 2 and 3 query-aware units
// of 4 keys per row (the bound and selection kernels, the key summaries kept by summarize_keys after every cache write),
// in a prefill over two of the kernel's 256-row chunks and in decode steps. The selected units equal the CPU's unless
// two bounds tie within float rounding, which random tiny models do not produce.
TEST_F(CudaDecoder, BlockSparseAttentionMatchesCpu) {
    for (int select : {0, 2, 3}) {
        const Sparse sparse{local_mask(320, 16), select, 4};
        EXPECT_LE(compare_backends(fixture("tiny-llama-q4_1.gguf"), 320, 300, GgmlType::F32, &sparse), 1e-4) << "select " << select;
    }
    const Sparse sparse{local_mask(64, 16), 2, 4};
    EXPECT_LE(compare_backends(fixture("tiny-gpt2.gguf"), 64, 20, GgmlType::F16, &sparse), 1e-2) << "gpt2, f16 cache";
}

// An F16 / BF16 cache rounds K and V: the logits move by about the rounding (2^-11, 2^-8 relative).
TEST_F(CudaDecoder, SmolLM2HalfCachesStayClose) {
    if (!std::filesystem::exists(default_model())) GTEST_SKIP() << "SmolLM2 not present at " << default_model();
    EXPECT_LE(compare_backends(default_model(), 32, 8, GgmlType::F16), 1e-2);
    EXPECT_LE(compare_backends(default_model(), 32, 8, GgmlType::BF16), 5e-2);
}

// Decode steps replayed from one recording (a CUDA graph reading the position from device memory) against the same
// steps issued op by op: the same kernels in the same order, so the logits must be identical, bit for bit. Also after
// a reset (positions go back to 0: a recording must not have baked in the positions it was recorded at), with a block
// mask (gpt2: the learned-position lookup at the device position), and the replays are counted.
// With n_ctx past 512 the steps cross the recording's key limits (recorded_step_key_limit: 512, 1024, n_ctx), each a
// new recording whose flash-decoding grid covers that many keys, where op by op covers the row's own keys: the splits
// past a row's keys add nothing, so still the same bits.
// Past 64 tokens the steps decode in windows: the first 40 positions, 24 steps across each multiple of kSplitKeys (a
// new flash-decoding split, and at 512 and 1024 a new key limit) and the last 10; the tokens between two windows go in
// as one prefill chunk, which also grows the scratch and so drops the recording (decoding all 1,100 positions one by
// one cost the emulated CI run 8 minutes for steps that test nothing the windows do not).
void expect_recorded_steps_equal_op_by_op(const std::string& path, bool masked, int select = 0, int n_ctx = 64) {
    auto m = Model::load(path);
    const int nv = m->config().n_vocab;
    auto gpu = make_backend({.device = Device::cuda});
    Forward rec(*m, *gpu, n_ctx), ops(*m, *gpu, n_ctx);
    ASSERT_TRUE(rec.step_recording()) << "recording is on by default on the cuda backend (unless WINNOW_CUDA_GRAPHS=0)";
    ops.set_step_recording(false);
    const BlockMask mask = local_mask(n_ctx, 16);
    if (masked) {
        rec.set_attention_masks(std::vector<const BlockMask*>(m->config().n_layer, &mask));
        ops.set_attention_masks(std::vector<const BlockMask*>(m->config().n_layer, &mask));
        rec.set_block_selection(select, 4); // with selection, the key summaries' update is recorded too
        ops.set_block_selection(select, 4);
    }
    const auto ids = test_ids(n_ctx - 1, nv);
    const int n_ids = static_cast<int>(ids.size());
    int64_t decode_steps = 0, windows = 0;
    for (int round = 0; round < 2; ++round) { // the second round after reset(): positions start again at 0
        rec.reset();
        ops.reset();
        const int prefill = round == 0 ? 5 : 1;
        int t = 0;
        auto feed = [&](int end) { // positions [t, end) as one chunk
            if (end <= t) return;
            EXPECT_EQ(rec.eval(std::span(ids).subspan(t, end - t)), ops.eval(std::span(ids).subspan(t, end - t)))
                << path << ": prefill chunk [" << t << ", " << end << ")";
            t = end;
        };
        auto decode = [&](int end) { // positions [t, end) one step each
            ++windows;
            for (; t < end; ++t, ++decode_steps) {
                const std::vector<float> a = rec.eval(std::span(ids).subspan(t, 1));
                const std::vector<float> b = ops.eval(std::span(ids).subspan(t, 1));
                ASSERT_EQ(a, b) << path << ": recorded and op-by-op decode differ at position " << t << " (round " << round << ")";
            }
        };
        feed(prefill);
        if (n_ctx <= 64) {
            decode(n_ids);
            continue;
        }
        decode(40);
        for (int edge = cuda::kSplitKeys; edge + 12 < n_ids - 10; edge += cuda::kSplitKeys) {
            feed(edge - 12);
            decode(edge + 12);
        }
        feed(n_ids - 10);
        decode(n_ids);
    }
    EXPECT_EQ(rec.step_recording_error(), "");
    // the first decode step of a window after a (re)validation runs op by op (a new key limit, or scratch grown by the
    // chunk before it), and the next records; every later one is a replay
    EXPECT_GE(rec.replayed_steps(), decode_steps - 2 * windows);
    EXPECT_EQ(ops.replayed_steps(), 0);
    std::printf("%s%s%s: %lld decode steps replayed from one recording, identical to op by op\n", path.c_str(), masked ? " (block mask)" : "",
                select ? " (query-aware selection)" : "", static_cast<long long>(rec.replayed_steps()));
}

// qwen2: q/k/v biases in the fused norm + qkv + rope kernel, rotate-half RoPE, a tied head; and its recorded steps
TEST_F(CudaDecoder, TinyQwen2MatchesCpu) {
    EXPECT_LE(compare_backends(fixture("tiny-qwen2.gguf"), 40, 9), 1e-4);
    expect_recorded_steps_equal_op_by_op(fixture("tiny-qwen2.gguf"), false);
}
// Llama 3.1's rope scaling: the frequency divisors in rope_kernel (prefill), qkv_rope_store (decode steps) and recordings
TEST_F(CudaDecoder, TinyLlama3RopeScalingMatchesCpu) {
    EXPECT_LE(compare_backends(fixture("tiny-llama3.gguf"), 40, 9), 1e-4);
    expect_recorded_steps_equal_op_by_op(fixture("tiny-llama3.gguf"), false);
}

// qwen3: the q/k head norms (rms_norm on [tokens * heads][head_dim] views, between the fused norm + projections and
// rope_store_kv), heads of 32 on a 64-wide embedding; and its recorded steps
TEST_F(CudaDecoder, TinyQwen3MatchesCpu) {
    EXPECT_LE(compare_backends(fixture("tiny-qwen3.gguf"), 40, 9), 1e-4);
    expect_recorded_steps_equal_op_by_op(fixture("tiny-qwen3.gguf"), false);
}

// gemma3: sliding-window layers (window 12: the tiled prefill kernel's rows past their window, the decode kernels'
// first keys), GeGLU, the post-block norms, the embedding scale, two rope bases; recorded steps at n_ctx 300 also take
// the flash-decoding split on the full layer. Not named Tiny*: 7 layers and 300 steps are minutes under the race
// detector, whose quick CI scope takes CudaDecoder.Tiny*; the windowed kernels are in that scope through the op
// harness's window cases (scripts/test-emulated.sh).
TEST_F(CudaDecoder, Gemma3TinyModelMatchesCpu) {
    EXPECT_LE(compare_backends(fixture("tiny-gemma3.gguf"), 64, 20), 1e-4);
    expect_recorded_steps_equal_op_by_op(fixture("tiny-gemma3.gguf"), false, 0, 300);
}

// gemma2: the scores' soft cap in the three dense kernels (per-row decode, the flash-decoding split on the full layers
// at n_ctx 300, the tiled prefill) and the logits' cap (the softcap op after the head's product, in recorded steps too).
// Not named Tiny*, as Gemma 3's.
TEST_F(CudaDecoder, Gemma2TinyModelMatchesCpu) {
    EXPECT_LE(compare_backends(fixture("tiny-gemma2.gguf"), 64, 20), 1e-4);
    expect_recorded_steps_equal_op_by_op(fixture("tiny-gemma2.gguf"), false, 0, 300);
}

TEST_F(CudaDecoder, RecordedDecodeStepsEqualOpByOp) {
    expect_recorded_steps_equal_op_by_op(fixture("tiny-llama-q4_1.gguf"), false);
    expect_recorded_steps_equal_op_by_op(fixture("tiny-llama-q4_1.gguf"), true);
    expect_recorded_steps_equal_op_by_op(fixture("tiny-llama-q4_1.gguf"), true, 2);
    expect_recorded_steps_equal_op_by_op(fixture("tiny-llama-q4_1.gguf"), false, 0, 1100); // three key limits
    expect_recorded_steps_equal_op_by_op(fixture("tiny-gpt2.gguf"), false);
    if (std::filesystem::exists(default_model())) expect_recorded_steps_equal_op_by_op(default_model(), false);
}

// The step program (WINNOW_CUDA_MEGAKERNEL=1, backend/cuda/step_program.h): a recorded step's GEMV, qkv and
// attention-split kernels run as the stages of cooperative kernels, and every logit stays that of the op-by-op steps,
// bit for bit. n_ctx 300 takes the split attention (two splits) into the program; tiny-gpt2 mixes stages with
// the ops that end a run (layer norms, GELU, the non-split attention).
TEST_F(CudaDecoder, MegakernelStepsEqualOpByOp) {
    struct Switch {
        Switch() { setenv("WINNOW_CUDA_MEGAKERNEL", "1", 1); }
        ~Switch() { unsetenv("WINNOW_CUDA_MEGAKERNEL"); }
    } on;
    const int64_t before = cuda::step_program_launches();
    expect_recorded_steps_equal_op_by_op(fixture("tiny-llama-q4_1.gguf"), false);
    const int64_t short_context = cuda::step_program_launches();
    EXPECT_GT(short_context, before) << "the recordings ran no step program";
    expect_recorded_steps_equal_op_by_op(fixture("tiny-llama-q4_1.gguf"), false, 0, 300);
    expect_recorded_steps_equal_op_by_op(fixture("tiny-gpt2.gguf"), false);
    if (std::filesystem::exists(default_model())) expect_recorded_steps_equal_op_by_op(default_model(), false);
    std::printf("step programs launched: %lld\n", static_cast<long long>(cuda::step_program_launches() - before));
}

// Greedy, greedy after a penalty, and drawing chains (top-k, top-p, min-p, temperature, both orders; fixed seeds).
std::vector<SamplingParams> generation_chains() {
    std::vector<SamplingParams> out(6);
    out[1].repeat_penalty = 1.3f;
    out[2].temperature = 1.0f, out[2].seed = 1;
    out[3].temperature = 0.7f, out[3].top_k = 5, out[3].order = SamplerOrder::llama_cpp, out[3].seed = 2;
    out[4].temperature = 1.2f, out[4].top_p = 0.9f, out[4].repeat_penalty = 1.3f, out[4].seed = 3;
    out[5].temperature = 0.8f, out[5].top_k = 40, out[5].top_p = 0.95f, out[5].min_p = 0.05f, out[5].repeat_penalty = 1.1f,
    out[5].repeat_last_n = 16, out[5].order = SamplerOrder::llama_cpp, out[5].seed = 5;
    return out;
}

// Generation with the whole step (layers, head product, sample op) replayed as one CUDA graph per token against the
// same generation op by op (recording off: the same kernels one launch each) and against every logit brought to the
// host's Sampler: the same ids; the replays are counted (the first decode step runs op by op, the second records).
void expect_one_launch_generation(const std::string& path) {
    auto m = Model::load(path);
    auto tok = load_model_tokenizer(*m);
    auto gpu = make_backend({.device = Device::cuda});
    Generator one(*m, *tok, *gpu, 128), ops(*m, *tok, *gpu, 128), host(*m, *tok, *gpu, 128);
    ASSERT_TRUE(one.forward().step_recording());
    ops.forward().set_step_recording(false);
    host.set_device_sampling(false);
    const int n = 32;
    for (const SamplingParams& s : generation_chains()) {
        GenerateOptions o;
        o.max_tokens = n;
        o.ignore_eos = true;
        o.sampling = s;
        const int64_t replayed = one.forward().replayed_steps();
        const auto a = one.generate({1, 5, 9, 5}, o).output_ids;
        const auto b = ops.generate({1, 5, 9, 5}, o).output_ids;
        const auto c = host.generate({1, 5, 9, 5}, o).output_ids;
        EXPECT_EQ(a, b) << path << ": one launch per token vs op by op, temp " << s.temperature << " seed " << s.seed;
        EXPECT_EQ(a, c) << path << ": one launch per token vs the host's sampler, temp " << s.temperature << " seed " << s.seed;
        EXPECT_EQ(one.device_sampled_steps(), n);
        EXPECT_EQ(one.forward().replayed_steps() - replayed, n - 2) << "one replay per token after the warm-up";
        EXPECT_EQ(one.forward().step_recording_error(), "");
    }
    EXPECT_EQ(ops.forward().replayed_steps(), 0);
    std::printf("%s: %zu chains x %d tokens, one replay per token, the same ids as op by op and as the host's sampler\n", path.c_str(),
                generation_chains().size(), n);
}

TEST_F(CudaDecoder, OneLaunchGenerationEqualsOpByOp) {
    expect_one_launch_generation(fixture("tiny-llama.gguf"));
    expect_one_launch_generation(fixture("tiny-gpt2.gguf"));
    if (std::filesystem::exists(default_model())) expect_one_launch_generation(default_model());
}

// ChatSession on the same path: its conversation (every token in the cache) equals the host path's over three turns.
TEST_F(CudaDecoder, OneLaunchChatEqualsTheHostPath) {
    const std::string path = fixture("tiny-llama-chat.gguf");
    if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not present";
    auto m = Model::load(path);
    auto tok = load_model_tokenizer(*m);
    const ChatTemplate tmpl = load_chat_template_for(*m, *tok);
    auto gpu = make_backend({.device = Device::cuda});
    for (const SamplingParams& s : generation_chains()) {
        GenerateOptions o;
        o.max_tokens = 8;
        o.ignore_eos = true;
        o.sampling = s;
        ChatSession one(*m, *tok, *gpu, tmpl, o, 512), host(*m, *tok, *gpu, tmpl, o, 512);
        host.set_device_sampling(false);
        for (const char* user : {"Hi", "Yo there", "again"}) {
            one.ask(user);
            host.ask(user);
            EXPECT_EQ(one.cached_tokens(), host.cached_tokens()) << "temp " << s.temperature << " seed " << s.seed << ", turn " << user;
        }
    }
}

TEST_F(CudaDecoder, ContextOverflowAndBadIdsAreErrors) {
    auto m = Model::load(fixture("tiny-llama.gguf"));
    auto gpu = make_backend({.device = Device::cuda});
    Forward f(*m, *gpu, 4);
    std::vector<int32_t> ids{1, 2, 3};
    f.eval(ids);
    EXPECT_THROW(f.eval(ids), Error);
    std::vector<int32_t> bad{m->config().n_vocab};
    Forward g(*m, *gpu, 4);
    EXPECT_THROW(g.eval(bad), Error);
}

} // namespace
