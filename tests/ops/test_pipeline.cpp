// The decoder pipeline around the ops: a backend that lacks an op is refused by name (never a silent fallback), the
// exact output head stage gives what the double-precision head gives, and block masks are validated.
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "forwarding_cpu.h"
#include "decode/forward.h"
#include "head/exact_head.h"
#include "head/output_head.h"
#include "io/quant.h"
#include "model/model.h"
#include "winnow/error.h"
#include "fixture_dir.h"

namespace {

using namespace winnow;


// The CPU backend with one (op, type) taken away, as a device backend that has not landed that kernel yet.
class CpuMissingOne final : public test::ForwardingCpu {
public:
    CpuMissingOne(Op op, GgmlType type) : ForwardingCpu(false), op_(op), type_(type) {}
    const char* name() const override { return "cpu-missing-one"; }
    bool supports(Op op, GgmlType type) const override { return !(op == op_ && type == type_) && ForwardingCpu::supports(op, type); }

private:
    Op op_;
    GgmlType type_;
};

void expect_refused(const std::string& model, Op op, GgmlType type, const std::string& message) {
    auto m = Model::load(kDir + "/" + model);
    CpuMissingOne be(op, type);
    try {
        Forward f(*m, be, 8);
        ADD_FAILURE() << "a backend without " << to_string(op) << " on " << ggml_type_name(type) << " was accepted for " << model;
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::unsupported);
        EXPECT_EQ(std::string(e.what()), message);
    }
}

// The preset types (io/quant.h: Q5_0, Q5_1, the K-quants) are the exception: a backend without them (CUDA) gets
// them converted to F16 when the weights are placed, so the model runs, with the logits of the native CPU path within
// the F16 rounding of the weights (2^-11 relative each, at most), and not bit for bit (the conversion happened).
TEST(Pipeline, ReadOnlyTypeOnABackendWithoutItRunsAsF16) {
    auto m = Model::load(kDir + "/tiny-llama-k-q4_k_m.gguf"); // Q4_K x13, Q6_K x3 (make_tiny_models.py)
    std::vector<int32_t> ids;
    for (int i = 0; i < 12; ++i) ids.push_back((i * 37 + 5) % m->config().n_vocab);
    CpuMissingOne without_q4_k(Op::linear, GgmlType::Q4_K);
    auto native = make_cpu_backend(1);
    Forward converted(*m, without_q4_k, 16), direct(*m, *native, 16);
    const std::vector<float> a = converted.eval(ids, true), b = direct.eval(ids, true);
    ASSERT_EQ(a.size(), b.size());
    double worst = 0, largest = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i])), largest = std::max(largest, std::abs(static_cast<double>(b[i])));
    EXPECT_LT(worst, 1e-2 * largest);
    EXPECT_GT(worst, 0.0) << "the Q4_K matrices were not converted";
}

// A type winnow does not read at all (IQ3_S, from llama.cpp's own quantizer) is refused at load, by name.
TEST(Pipeline, UnreadWeightTypeIsRefusedAtLoad) {
    try {
        Model::load(kDir + "/tiny-llama-k-iq3_s.gguf");
        ADD_FAILURE() << "an IQ3_S model was accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::unsupported);
        const std::string what = e.what();
        EXPECT_NE(what.find("has type IQ3_S, which winnow does not support"), std::string::npos) << what;
    }
}

TEST(Pipeline, MissingOpIsRefusedByName) {
    expect_refused("tiny-llama-q4_1.gguf", Op::linear, GgmlType::Q4_1, "the cpu-missing-one backend has no linear for Q4_1 weights");
    expect_refused("tiny-llama.gguf", Op::swiglu, GgmlType::F32, "the cpu-missing-one backend has no swiglu for F32 tensors");
    expect_refused("tiny-gpt2.gguf", Op::layer_norm, GgmlType::F32, "the cpu-missing-one backend has no layer_norm for F32 tensors");
    expect_refused("tiny-llama.gguf", Op::attention, GgmlType::F32, "the cpu-missing-one backend has no attention for F32 tensors");
    // the fused linear ops too: the layers call them with no fallback of their own (Backend's defaults are the fallback)
    expect_refused("tiny-llama-q4_1.gguf", Op::linear_parts, GgmlType::Q4_1, "the cpu-missing-one backend has no linear_parts for Q4_1 weights");
    expect_refused("tiny-gpt2.gguf", Op::linear_add, GgmlType::F32, "the cpu-missing-one backend has no linear_add for F32 weights");
    expect_refused("tiny-llama-f16.gguf", Op::linear_swiglu, GgmlType::F16, "the cpu-missing-one backend has no linear_swiglu for F16 weights");
    // and the fused rope + cache write (its default is the four ops, but a backend that says it lacks it is believed)
    expect_refused("tiny-llama.gguf", Op::rope_store_kv, GgmlType::F32, "the cpu-missing-one backend has no rope_store_kv for F32 tensors");
}

// Query-aware selection keeps its key summaries with the backend's summarize_keys op: a backend without it (for the
// cache's type) is refused when selection is turned on, by name, not when the first masked row runs.
// The CPU backend counting the ops the decoder issues, each fused op once (forwarded whole): what a device backend,
// with one launch per op, would launch.
class CpuCountingOps final : public test::ForwardingCpu {
public:
    CpuCountingOps() : ForwardingCpu(true) {}
    std::map<std::string, int> counts;
    int total() const {
        int n = 0;
        for (const auto& [op, c] : counts) n += c;
        return n;
    }

private:
    void on_op(const char* name) override { ++counts[name]; }
};

// A LLaMA decode step is 5 ops per layer on a backend with the fused ops (the RMSNorm, q/k/v projections, rope and both
// cache writes in one op, attention, the residual adds in the GEMVs' epilogues, the RMSNorm inside the FFN's gate/up
// product), plus the embedding lookup and the final norm: the launches a CUDA step records. A regression that issues
// an op the fusions removed (a separate norm, projection, rope or copy) fails here, on any machine. GPT-2 keeps its
// LayerNorms and its FFN's up product, GELU and down product as separate ops, and its projections apart from
// rope_store_kv (which only writes the cache there): 9 per layer, plus its position row.
TEST(Pipeline, DecodeStepIssuesTheFusedOps) {
    for (const auto& [file, per_layer, extra] : {std::tuple{"tiny-llama.gguf", 5, 2}, std::tuple{"tiny-gpt2.gguf", 9, 3}}) {
        auto m = Model::load(kDir + "/" + file);
        CpuCountingOps be;
        Forward f(*m, be, 16);
        const int32_t prompt[] = {1, 2, 3};
        f.eval_hidden(prompt);
        be.counts.clear();
        const int32_t next[] = {4};
        f.eval_hidden(next); // one decode step
        const int layers = m->config().n_layer;
        std::string seen;
        for (const auto& [op, c] : be.counts) seen += op + " x" + std::to_string(c) + " ";
        EXPECT_EQ(be.total(), per_layer * layers + extra) << file << ": " << seen;
        EXPECT_EQ(be.counts["rope"] + be.counts["copy_rows"], 0) << file << ": " << seen;
        if (std::string(file) == "tiny-llama.gguf") {
            EXPECT_EQ(be.counts["rms_norm_qkv_rope_store_kv"], layers) << seen;
            EXPECT_EQ(be.counts["rms_norm_linear_parts"] + be.counts["rope_store_kv"], 0) << seen;
            EXPECT_EQ(be.counts["rms_norm_linear_swiglu"], layers);
            EXPECT_EQ(be.counts["rms_norm"], 1) << "only the final norm stands alone: " << seen;
        } else {
            EXPECT_EQ(be.counts["rope_store_kv"], layers) << seen;
        }
    }
}

TEST(Pipeline, BlockSelectionNeedsTheSummaryOp) {
    auto m = Model::load(kDir + "/tiny-llama.gguf");
    CpuMissingOne be(Op::summarize_keys, GgmlType::F16);
    Forward f32_cache(*m, be, 16, GgmlType::F32);
    EXPECT_NO_THROW(f32_cache.set_block_selection(2, 4));
    Forward f16_cache(*m, be, 16, GgmlType::F16);
    EXPECT_NO_THROW(f16_cache.set_block_selection(0)) << "turning selection off needs nothing";
    try {
        f16_cache.set_block_selection(2, 4);
        ADD_FAILURE() << "selection was turned on without a summary op for the F16 cache";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::unsupported);
        EXPECT_EQ(std::string(e.what()), "the cpu-missing-one backend has no summarize_keys for F16 tensors");
    }
}

// The CPU takes F32, F16 and BF16 KV caches and says no to any other cache type, by name, before it allocates; a
// backend without half-cache attention is refused the same way (the cache asks for both of its ops).
TEST(Pipeline, KvCacheTypesOnCpu) {
    auto m = Model::load(kDir + "/tiny-llama.gguf");
    auto be = make_cpu_backend(1);
    for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16}) {
        EXPECT_TRUE(be->supports(Op::copy_rows, t) && be->supports(Op::attention, t)) << ggml_type_name(t);
        EXPECT_NO_THROW(Forward(*m, *be, 8, t)) << ggml_type_name(t);
    }
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::I32}) EXPECT_FALSE(be->supports(Op::attention, t)) << ggml_type_name(t);
    EXPECT_FALSE(be->supports(Op::rms_norm, GgmlType::F16)) << "activations stay F32";
    try {
        Forward f(*m, *be, 8, GgmlType::Q8_0);
        ADD_FAILURE() << "a Q8_0 KV cache was accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::unsupported);
        EXPECT_EQ(std::string(e.what()), "the cpu backend has no copy_rows for Q8_0 tensors");
    }
    CpuMissingOne no_half_attention(Op::attention, GgmlType::F16);
    try {
        Forward f(*m, no_half_attention, 8, GgmlType::F16);
        ADD_FAILURE() << "a backend without F16 attention was given an F16 cache";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::unsupported);
        EXPECT_EQ(std::string(e.what()), "the cpu-missing-one backend has no attention for F16 tensors");
    }
}

// The exact head stage (backend GEMV on the stored weights + top_k) against the double-precision head on the
// decoded matrix: same top ids, logits and log-normalizer to fp32 accuracy, and the full logits when asked.
TEST(Pipeline, ExactOutputHeadMatchesDoubleHead) {
    for (const char* name : {"tiny-llama-q4_1.gguf", "tiny-gpt2.gguf"}) {
        auto m = Model::load(kDir + "/" + name);
        auto be = make_cpu_backend(2);
        Forward f(*m, *be, 16);
        const std::vector<int32_t> ids{1, 5, 9, 2, 7};
        const Tensor& hidden = f.eval_hidden(ids);
        const std::vector<float> h = f.final_hidden();
        ASSERT_EQ(h.size(), static_cast<size_t>(m->config().n_embd));
        const Matrix& W = m->weights().output;
        std::vector<float> A(static_cast<size_t>(W.rows * W.cols));
        for (int64_t r = 0; r < W.rows; ++r) dequantize_row(W.type, W.row(r), A.data() + r * W.cols, W.cols);
        const head::HeadResult ref = head::exact_softmax(A, static_cast<int>(W.rows), static_cast<int>(W.cols), h, 1.0f, 5);

        head::ExactOutputHead stage(*be, f.weights().output);
        const head::HeadOutput out = stage.compute(hidden, {.k = 5, .full_logits = true, .log_norm = true});
        EXPECT_EQ(out.top, ref.top) << name;
        for (int i = 0; i < 5; ++i) EXPECT_NEAR(out.top_logits[i], ref.top_logits[i], 1e-4 * (1 + std::fabs(ref.top_logits[i]))) << name;
        EXPECT_NEAR(out.log_norm, ref.log_norm, 1e-4) << name;
        ASSERT_EQ(out.logits.size(), static_cast<size_t>(W.rows));
        EXPECT_EQ(out.logits[out.top[0]], out.top_logits[0]);
        // without full_logits only the k candidates come back
        EXPECT_TRUE(stage.compute(hidden, {.k = 1}).logits.empty());
    }
}

TEST(Pipeline, BlockMaskValidation) {
    BlockMask ok{16, 2, {1, 0, 1, 1}};
    EXPECT_NO_THROW(ok.validate());
    BlockMask no_diagonal{16, 2, {1, 0, 1, 0}};
    EXPECT_THROW(no_diagonal.validate(), Error);
    BlockMask wrong_size{16, 2, {1, 1, 1}};
    EXPECT_THROW(wrong_size.validate(), Error);
    auto m = Model::load(kDir + "/tiny-llama.gguf");
    auto be = make_cpu_backend(1);
    Forward f(*m, *be, 64);
    BlockMask small{16, 2, {1, 0, 1, 1}}; // covers 32 positions, the context holds 64
    EXPECT_THROW(f.set_attention_masks(std::vector<const BlockMask*>(m->config().n_layer, &small)), Error);
    EXPECT_THROW(f.set_attention_masks({&ok}), Error); // one mask for several layers
}

// A dense mask (every causal block kept) computes what no mask computes. In prefill both take the CPU's row tiles
// (attention_tiles_cpu.h), cut differently (the mask's 8-row blocks, up to 32 rows without it), so the bits agree only
// where OpenBLAS sums each element in the same order whatever the matrices' sizes. Its SkylakeX, Sandybridge, Nehalem
// and Prescott sgemm kernels do for this model's 16-dim heads; its Haswell / Zen kernel (the one an AVX2-only CPU
// gets) does not: 11,430 of 12,800 logits differ there, by at most 4.1e-6 at logits up to 8.6 (2026-12-07, an AVX2
// EPYC; OPENBLAS_CORETYPE=Sandybridge on the same machine: 0 differ). So the bound is fp32 rounding, 1e-6 of the largest
// logit, which a mask that dropped or doubled a block breaks by orders of magnitude.
TEST(Pipeline, AllKeptMaskEqualsDense) {
    auto m = Model::load(kDir + "/tiny-llama.gguf");
    auto be = make_cpu_backend(2);
    std::vector<int32_t> ids;
    for (int i = 0; i < 40; ++i) ids.push_back((i * 31 + 7) % m->config().n_vocab);
    Forward dense(*m, *be, 48), masked(*m, *be, 48);
    BlockMask all{8, 6, std::vector<uint8_t>(36, 1)};
    masked.set_attention_masks(std::vector<const BlockMask*>(m->config().n_layer, &all));
    const std::vector<float> a = dense.eval(ids, true), b = masked.eval(ids, true);
    double worst = 0, top = 0;
    size_t differ = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        worst = std::max(worst, std::abs(double(a[i]) - b[i]));
        top = std::max(top, std::abs(double(a[i])));
        differ += a[i] != b[i];
    }
    std::printf("all-kept mask vs dense: %zu of %zu logits differ, by at most %.3g (largest logit %.3g)\n", differ, a.size(), worst, top);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_GT(top, 1.0);
    EXPECT_LE(worst, 1e-6 * top);
}

} // namespace

namespace {

// The SPION denominator really changes the rows that drop keys (and only those): dropped keys add mass to the
// denominator, so the output shrinks; a row whose keys are all kept is unchanged.
TEST(Pipeline, SpionDenominatorShrinksRowsThatDropKeys) {
    using namespace winnow;
    auto be = make_cpu_backend(1);
    const int ctx = 64, hd = 16, n = 64;
    std::vector<float> q(static_cast<size_t>(n) * hd), k(static_cast<size_t>(ctx) * hd), v(static_cast<size_t>(ctx) * hd, 1.0f);
    for (size_t i = 0; i < q.size(); ++i) q[i] = std::sin(0.37f * i);
    for (size_t i = 0; i < k.size(); ++i) k[i] = std::cos(0.11f * i);
    auto put = [&](const std::vector<float>& h, int rows) {
        Tensor t = be->alloc(GgmlType::F32, rows, hd);
        be->upload(h.data(), t);
        return t;
    };
    const Tensor qt = put(q, n), kt = put(k, ctx), vt = put(v, ctx);
    BlockMask mask{16, 4, {1, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 1}}; // rows of block 0 and 1 drop nothing visible
    AttentionParams p;
    p.n_head = p.n_head_kv = 1;
    p.head_dim = hd;
    p.mask = &mask;
    std::vector<float> standard(static_cast<size_t>(n) * hd), spion(standard.size());
    Tensor out = be->alloc(GgmlType::F32, n, hd);
    be->attention(qt, kt, vt, out, p);
    be->download(out, standard.data());
    mask.denominator = SparseDenominator::spion;
    be->attention(qt, kt, vt, out, p);
    be->download(out, spion.data());
    for (int t = 0; t < n; ++t) {
        // V is all ones: a standard row sums its probabilities to 1, a SPION row that drops keys to less
        const float a = standard[static_cast<size_t>(t) * hd], b = spion[static_cast<size_t>(t) * hd];
        EXPECT_NEAR(a, 1.0f, 1e-5) << t;
        if (t < 32) EXPECT_NEAR(b, 1.0f, 1e-5) << t;
        else EXPECT_LT(b, 0.999f) << t;
    }
}

} // namespace
