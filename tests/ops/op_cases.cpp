// The op cases of the harness: each builds random inputs, runs the op on the backend under test, and compares with
// the double-precision reference. Shapes: SmolLM2-135M (d 576, 9 heads / 3 KV heads of 64, FFN 1536, vocab 49152),
// GPT-2 124M (d 768, 12 heads of 64, fused QKV 2304, FFN 3072, vocab 50257), and odd sizes (not multiples of
// 64/128, one token, long contexts).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <numeric>
#include <optional>
#include <random>
#include <tuple>

#include "backend/cpu/reference_ops.h"
#include "io/quant.h"
#include "io/random_weights.h"
#include "op_harness.h"
#include "sparse/key_summary.h"

namespace winnow::test {

namespace {

std::vector<float> randn(size_t n, uint64_t seed, float sd = 1.0f) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, sd);
    std::vector<float> v(n);
    for (auto& x : v) x = nd(rng);
    return v;
}

std::vector<double> widen(const std::vector<float>& v) { return {v.begin(), v.end()}; }
// Every bit equal: a fused op against the unfused ops it is defined by (OpResult::exact_ids).
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

Tensor put(Backend& be, const std::vector<float>& h, int64_t rows, int64_t cols) {
    Tensor t = be.alloc(GgmlType::F32, rows, cols);
    be.upload(h.data(), t);
    return t;
}

// A position the op reads when it runs (RopeParams::pos, AttentionParams::pos, copy_rows_at): one I32 on the device.
Tensor put_pos(Backend& be, int32_t pos) {
    Tensor t = be.alloc(GgmlType::I32, 1, 1);
    be.upload(&pos, t);
    return t;
}

std::vector<float> get(Backend& be, const Tensor& t) {
    std::vector<float> h(static_cast<size_t>(t.numel()));
    be.download(t, h.data());
    return h;
}

OpResult compare(const std::vector<float>& y, const std::vector<double>& ref) {
    OpResult r;
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size() && i < y.size(); ++i) {
        const double e = y[i] - ref[i];
        num += e * e;
        den += ref[i] * ref[i];
        r.max_abs = std::max(r.max_abs, std::fabs(e));
    }
    r.nmse = y.size() != ref.size() || !std::isfinite(num) ? INFINITY : den > 0 ? num / den : num;
    r.compared = ref.size();
    return r;
}

// A weight matrix in `type`, stored on the host (`bytes` keeps it alive) with its exactly decoded values.
struct HostMatrix {
    std::vector<uint8_t> bytes;
    std::vector<float> values; // decoded, [rows][cols]
    Matrix m;
};

HostMatrix make_matrix_from(GgmlType type, int64_t rows, int64_t cols, const std::vector<float>& w) {
    HostMatrix h;
    const size_t rb = ggml_row_bytes(type, cols);
    h.bytes.resize(rb * rows);
    h.values.resize(w.size());
    for (int64_t r = 0; r < rows; ++r) {
        quantize_row_ref(type, w.data() + r * cols, h.bytes.data() + r * rb, cols);
        dequantize_row(type, h.bytes.data() + r * rb, h.values.data() + r * cols, cols);
    }
    h.m.type = type;
    h.m.rows = rows;
    h.m.cols = cols;
    h.m.row_bytes = rb;
    h.m.data = h.bytes.data();
    h.m.name = "harness";
    return h;
}

int64_t block_elements(GgmlType type) { return ggml_type_traits(static_cast<uint32_t>(type))->block_size; }

// A matrix of a preset type (io/quant.h: llama.cpp's presets): random blocks (io/random_weights.h: every bit pattern
// of the quants, scales and mins) and the values dequantize_row decodes.
HostMatrix make_preset_matrix(GgmlType type, int64_t rows, int64_t cols, uint64_t seed) {
    HostMatrix h;
    h.bytes = random_stored_weights(type, rows, cols, seed);
    h.values.resize(static_cast<size_t>(rows * cols));
    dequantize_row(type, h.bytes.data(), h.values.data(), h.values.size());
    h.m.type = type;
    h.m.rows = rows;
    h.m.cols = cols;
    h.m.row_bytes = ggml_row_bytes(type, cols);
    h.m.data = h.bytes.data();
    h.m.name = "harness";
    return h;
}

HostMatrix make_matrix(GgmlType type, int64_t rows, int64_t cols, uint64_t seed) {
    if (is_preset_type(type)) return make_preset_matrix(type, rows, cols, seed);
    return make_matrix_from(type, rows, cols, randn(static_cast<size_t>(rows * cols), seed, 0.05f));
}

Matrix place(Backend& be, const HostMatrix& h, Tensor& storage) {
    storage = be.place_readonly(GgmlType::I8, 1, static_cast<int64_t>(h.bytes.size()), h.bytes.data());
    Matrix m = h.m;
    m.data = storage.data<uint8_t>();
    return m;
}

// A KV cache in `type`: the values the cache holds (rounded on the host, as a device write rounds them) and the cache.
std::vector<float> round_to(GgmlType type, const std::vector<float>& v) {
    std::vector<float> r(v.size());
    for (size_t i = 0; i < v.size(); ++i)
        r[i] = type == GgmlType::F16 ? fp16_to_fp32(fp32_to_fp16(v[i])) : type == GgmlType::BF16 ? bf16_to_fp32(fp32_to_bf16(v[i])) : v[i];
    return r;
}

// Downloads a tensor of any activation type as fp32.
std::vector<float> get_any(Backend& be, const Tensor& t) {
    if (t.type() == GgmlType::F32) return get(be, t);
    std::vector<uint16_t> h(static_cast<size_t>(t.numel()));
    be.download(t, h.data());
    std::vector<float> f(h.size());
    for (size_t i = 0; i < h.size(); ++i) f[i] = t.type() == GgmlType::F16 ? fp16_to_fp32(h[i]) : bf16_to_fp32(h[i]);
    return f;
}

// Writes fp32 rows into a cache of `type` through the backend's copy_rows (the only way the decoder fills a cache).
Tensor make_cache(Backend& be, GgmlType type, const std::vector<float>& v, int64_t rows, int64_t cols) {
    const Tensor src = put(be, v, rows, cols), cache = be.alloc(type, rows, cols);
    be.copy_rows(src, cache, 0);
    return cache;
}

const GgmlType kWeightTypes[] = {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1};
// And the preset types, which the linear ops, the embedding lookup and the fused head also take. Their rows are whole
// blocks of 32 (Q5_0, Q5_1, IQ4_NL) or super-blocks of 256 (Q2_K ... Q6_K, IQ4_XS): a case skips the shapes they do not fit.
const GgmlType kAllWeightTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                                   GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K,
                                   GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_NL, GgmlType::IQ4_XS};
bool fits(GgmlType type, int64_t cols) { return cols % block_elements(type) == 0; }

// Whether the q8 dot mode rounds the activations of a product with this weight type over n_tokens tokens, so that the
// case is held to the q8 tolerance: Q8_0, Q4_0 and Q4_1 in prefill and decode; the preset types in decode only (one
// token; Q8_K for the K-quants), their prefill batches being fp32 sgemm in both modes and held to the fp32 tolerance.
bool quantized(GgmlType t, int n_tokens) { return is_core_type(t) ? is_quantized_type(t) : is_quantized_type(t) && n_tokens == 1; }

std::string shape(int64_t a, int64_t b) { return std::to_string(a) + "x" + std::to_string(b); }

void add_linear_cases(std::vector<OpCase>& cases) {
    struct S { const char* model; int64_t in, out; bool bias; };
    const S shapes[] = {{"smollm2_q", 576, 576, false},  {"smollm2_kv", 576, 192, false},  {"smollm2_up", 576, 1536, false},
                        {"smollm2_down", 1536, 576, false}, {"gpt2_qkv", 768, 2304, true},   {"gpt2_down", 3072, 768, true},
                        {"odd", 160, 37, true},
                        // 33 blocks a row: a device's staged Q8_0 / Q4_0 walk takes two chunks (32 blocks, then 1), and
                        // every other row starts 2 bytes past a 4-byte boundary
                        {"odd_long", 1056, 13, false}};
    // for the preset types also: 9 super-blocks a row (every other Q6_K row starts 2 bytes past a 4-byte boundary),
    // and 2 with a bias
    const S preset_shapes[] = {{"k_odd", 2304, 13, false}, {"k_up", 512, 96, true}};
    auto shapes_for = [&](GgmlType type) {
        std::vector<S> v(std::begin(shapes), std::end(shapes));
        if (is_preset_type(type)) v.insert(v.end(), std::begin(preset_shapes), std::end(preset_shapes));
        std::erase_if(v, [&](const S& s) { return !fits(type, s.in); });
        return v;
    };
    // 1 and 7 tokens: a device's GEMV; 9: its prefill product (a CUDA device's bf16 split products for BF16, F16 and
    // Q4_0, whose fp32 accuracy the fp32 tolerance holds them to; an sgemm for the others)
    for (GgmlType type : kAllWeightTypes)
        for (const S& s : shapes_for(type))
            for (int n : {1, 7, 9}) {
                const double tol = 1e-11, tol_q8 = quantized(type, n) ? 5e-4 : tol;
                cases.push_back({std::string("linear/") + ggml_type_name(type) + "/" + s.model + "_" + shape(s.out, s.in) + "_t" + std::to_string(n),
                                 Op::linear, type, tol, tol_q8, [=](Backend& be) {
                                     const HostMatrix w = make_matrix(type, s.out, s.in, 11 + s.in + s.out);
                                     Tensor storage;
                                     const Matrix dw = place(be, w, storage);
                                     const auto x = randn(static_cast<size_t>(n * s.in), 5);
                                     const auto b = randn(static_cast<size_t>(s.out), 6, 0.1f);
                                     const Tensor xt = put(be, x, n, s.in), yt = be.alloc(GgmlType::F32, n, s.out), bt = put(be, b, 1, s.out);
                                     be.linear(dw, s.bias ? &bt : nullptr, xt, yt);
                                     std::vector<double> ref(static_cast<size_t>(n * s.out));
                                     for (int t = 0; t < n; ++t)
                                         for (int64_t r = 0; r < s.out; ++r) {
                                             double acc = s.bias ? b[r] : 0.0;
                                             for (int64_t c = 0; c < s.in; ++c) acc += static_cast<double>(w.values[r * s.in + c]) * x[t * s.in + c];
                                             ref[t * s.out + r] = acc;
                                         }
                                     return compare(get(be, yt), ref);
                                 }});
            }
    // rows of 150 columns (not a whole number of 16-byte chunks for F32, F16 or BF16): the element-wise walk a device's
    // GEMV falls back to where its vector loads do not fit
    for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16})
        for (int n : {1, 3})
            cases.push_back({std::string("linear/") + ggml_type_name(type) + "/unaligned_37x150_t" + std::to_string(n), Op::linear, type, 1e-11, 1e-11,
                             [=](Backend& be) {
                                 const HostMatrix w = make_matrix(type, 37, 150, 17);
                                 Tensor storage;
                                 const Matrix dw = place(be, w, storage);
                                 const auto x = randn(static_cast<size_t>(n * 150), 18);
                                 const Tensor xt = put(be, x, n, 150), yt = be.alloc(GgmlType::F32, n, 37);
                                 be.linear(dw, nullptr, xt, yt);
                                 std::vector<double> ref(static_cast<size_t>(n * 37));
                                 for (int t = 0; t < n; ++t)
                                     for (int64_t r = 0; r < 37; ++r) {
                                         double acc = 0;
                                         for (int64_t c = 0; c < 150; ++c) acc += static_cast<double>(w.values[r * 150 + c]) * x[t * 150 + c];
                                         ref[t * 37 + r] = acc;
                                     }
                                 return compare(get(be, yt), ref);
                             }});
    // linear_parts (the q, k and v projections of one input): SmolLM2's shapes without biases, GPT-2's with them
    struct P { const char* model; int64_t in, out[3]; bool bias; };
    for (GgmlType type : kAllWeightTypes)
        for (const P& s : {P{"smollm2_qkv", 576, {576, 192, 192}, false}, P{"gpt2_qkv", 768, {768, 768, 768}, true}})
            for (int n : {1, 9}) {
                if (!fits(type, s.in)) continue;
                const double tol = 1e-11, tol_q8 = quantized(type, n) ? 5e-4 : tol;
                cases.push_back({std::string("linear_parts/") + ggml_type_name(type) + "/" + s.model + "_t" + std::to_string(n), Op::linear_parts, type, tol,
                                 tol_q8, [=](Backend& be) {
                                     const auto x = randn(static_cast<size_t>(n * s.in), 31);
                                     const Tensor xt = put(be, x, n, s.in);
                                     std::vector<HostMatrix> w;
                                     std::vector<Tensor> storage(3), biases, outs;
                                     std::vector<std::vector<float>> b;
                                     std::vector<LinearPart> parts;
                                     for (int i = 0; i < 3; ++i) {
                                         w.push_back(make_matrix(type, s.out[i], s.in, 32 + i));
                                         b.push_back(randn(static_cast<size_t>(s.out[i]), 35 + i, 0.1f));
                                         biases.push_back(put(be, b[i], 1, s.out[i]));
                                         outs.push_back(be.alloc(GgmlType::F32, n, s.out[i]));
                                     }
                                     for (int i = 0; i < 3; ++i) parts.push_back({place(be, w[i], storage[i]), s.bias ? &biases[i] : nullptr, outs[i]});
                                     be.linear_parts(parts.data(), 3, xt);
                                     // the three outputs one after another, against one reference
                                     std::vector<float> got;
                                     std::vector<double> ref;
                                     for (int i = 0; i < 3; ++i) {
                                         const auto y = get(be, outs[i]);
                                         got.insert(got.end(), y.begin(), y.end());
                                         for (int t = 0; t < n; ++t)
                                             for (int64_t r = 0; r < s.out[i]; ++r) {
                                                 double acc = s.bias ? b[i][r] : 0.0;
                                                 for (int64_t c = 0; c < s.in; ++c) acc += static_cast<double>(w[i].values[r * s.in + c]) * x[t * s.in + c];
                                                 ref.push_back(acc);
                                             }
                                     }
                                     return compare(got, ref);
                                 }});
            }
    // linear_add (y += W x + b, the decoder's residual connections): decode rows (a device's GEMV epilogue) and a
    // prefill batch (its GEMM then add), on a y that already holds values
    for (GgmlType type : kAllWeightTypes)
        for (const S& s : {shapes[0], shapes[3], shapes[5], shapes[6]})
            for (int n : {1, 9}) {
                if (!fits(type, s.in)) continue;
                const double tol = 1e-11, tol_q8 = quantized(type, n) ? 5e-4 : tol;
                cases.push_back({std::string("linear_add/") + ggml_type_name(type) + "/" + s.model + "_" + shape(s.out, s.in) + "_t" + std::to_string(n),
                                 Op::linear_add, type, tol, tol_q8, [=](Backend& be) {
                                     const HostMatrix w = make_matrix(type, s.out, s.in, 13 + s.in + s.out);
                                     Tensor storage;
                                     const Matrix dw = place(be, w, storage);
                                     const auto x = randn(static_cast<size_t>(n * s.in), 15);
                                     const auto b = randn(static_cast<size_t>(s.out), 16, 0.1f);
                                     const auto y0 = randn(static_cast<size_t>(n * s.out), 17, 3.0f);
                                     const Tensor xt = put(be, x, n, s.in), yt = put(be, y0, n, s.out), bt = put(be, b, 1, s.out);
                                     be.linear_add(dw, s.bias ? &bt : nullptr, xt, yt);
                                     std::vector<double> ref(static_cast<size_t>(n * s.out));
                                     for (int t = 0; t < n; ++t)
                                         for (int64_t r = 0; r < s.out; ++r) {
                                             double acc = s.bias ? b[r] : 0.0;
                                             for (int64_t c = 0; c < s.in; ++c) acc += static_cast<double>(w.values[r * s.in + c]) * x[t * s.in + c];
                                             ref[t * s.out + r] = y0[t * s.out + r] + acc;
                                         }
                                     return compare(get(be, yt), ref);
                                 }});
            }
    // linear_swiglu (silu(W_gate x) * (W_up x), a LLaMA FFN's first half): decode rows (one warp computes both rows on a
    // device) and a prefill batch
    for (GgmlType type : kAllWeightTypes)
        for (const S& s : {shapes[2], shapes[6], preset_shapes[1]})
            for (int n : {1, 9}) {
                if (!fits(type, s.in) || (s.in == 512) != is_preset_type(type)) continue; // k_up: the preset types only
                const double tol = 1e-11, tol_q8 = quantized(type, n) ? 5e-4 : tol;
                cases.push_back({std::string("linear_swiglu/") + ggml_type_name(type) + "/" + s.model + "_" + shape(s.out, s.in) + "_t" + std::to_string(n),
                                 Op::linear_swiglu, type, tol, tol_q8, [=](Backend& be) {
                                     const HostMatrix wg = make_matrix(type, s.out, s.in, 21 + s.in), wu = make_matrix(type, s.out, s.in, 22 + s.out);
                                     Tensor gate_storage, up_storage;
                                     const Matrix dg = place(be, wg, gate_storage), du = place(be, wu, up_storage);
                                     const auto x = randn(static_cast<size_t>(n * s.in), 23);
                                     const Tensor xt = put(be, x, n, s.in), yt = be.alloc(GgmlType::F32, n, s.out);
                                     be.linear_swiglu(dg, du, xt, yt);
                                     std::vector<double> ref(static_cast<size_t>(n * s.out));
                                     for (int t = 0; t < n; ++t)
                                         for (int64_t r = 0; r < s.out; ++r) {
                                             double g = 0, u = 0;
                                             for (int64_t c = 0; c < s.in; ++c) {
                                                 g += static_cast<double>(wg.values[r * s.in + c]) * x[t * s.in + c];
                                                 u += static_cast<double>(wu.values[r * s.in + c]) * x[t * s.in + c];
                                             }
                                             ref[t * s.out + r] = g / (1 + std::exp(-g)) * u;
                                         }
                                     return compare(get(be, yt), ref);
                                 }});
            }
    // rms_norm_linear_parts / rms_norm_linear_swiglu (a LLaMA layer's RMSNorm and the projections after it, one launch
    // on a device): against the double reference of the norm then the products, and bit for bit against the unfused ops
    // they are defined by on the same backend (rms_norm, then linear_parts / linear_swiglu: OpResult::exact_ids).
    // SmolLM2's shapes, decode rows (the fused kernels) and a prefill batch (the default), the input rows scaled apart.
    // Also inputs at the widest a device stages in shared memory (kMaxStagedCols, 9,216) and one block wider (the
    // fallback), decode rows of F16 and of Q8_0 (whose kernels also hold the rows' staging slices).
    struct NormShape { const char* name; int64_t in, out[3]; };
    // The preset types: 2 super-blocks wide, decode rows and a prefill batch.
    const NormShape norm_shapes[] = {{"smollm2", 576, {576, 192, 192}}, {"wide9216", 9216, {64, 32, 32}}, {"wide9248", 9248, {64, 32, 32}},
                                     {"k512", 512, {256, 64, 64}}};
    for (const NormShape& ns : norm_shapes)
    for (GgmlType type : kAllWeightTypes)
        for (bool swiglu : {false, true})
            for (int n : {1, 3, 9}) {
                if ((ns.in == 512) != is_preset_type(type) || (ns.in == 512 && n == 3)) continue;
                if (ns.in > 576 && ((type != GgmlType::F16 && type != GgmlType::Q8_0) || n != 1)) continue;
                const double tol = 1e-11, tol_q8 = quantized(type, n) ? 5e-4 : tol;
                const int64_t in = ns.in, outs[3] = {swiglu && ns.in == 576 ? 1536 : ns.out[0], ns.out[1], ns.out[2]};
                const int n_out = swiglu ? 1 : 3;
                cases.push_back({std::string(swiglu ? "rms_norm_linear_swiglu/" : "rms_norm_linear_parts/") + ggml_type_name(type) + "/" + ns.name + "_t" + std::to_string(n),
                                 swiglu ? Op::linear_swiglu : Op::linear_parts, type, tol, tol_q8, [=](Backend& be) {
                                     auto x = randn(static_cast<size_t>(n * in), 41);
                                     for (int t = 0; t < n; ++t)
                                         for (int64_t c = 0; c < in; ++c) x[t * in + c] *= 0.25f + t; // rows of different scales
                                     const auto g = randn(static_cast<size_t>(in), 42, 0.5f);
                                     const float eps = 1e-5f;
                                     const Tensor xt = put(be, x, n, in), gt = put(be, g, 1, in), scratch = be.alloc(GgmlType::F32, n, in);
                                     std::vector<HostMatrix> w;
                                     std::vector<Tensor> storage(n_out + 1);
                                     std::vector<Matrix> dw;
                                     for (int i = 0; i < n_out + (swiglu ? 1 : 0); ++i) w.push_back(make_matrix(type, outs[swiglu ? 0 : i], in, 43 + i));
                                     for (size_t i = 0; i < w.size(); ++i) dw.push_back(place(be, w[i], storage[i]));
                                     // the fused op, then the unfused sequence on the same backend
                                     auto run = [&](bool fused) {
                                         std::vector<Tensor> y;
                                         for (int i = 0; i < n_out; ++i) y.push_back(be.alloc(GgmlType::F32, n, outs[swiglu ? 0 : i]));
                                         std::vector<LinearPart> parts;
                                         for (int i = 0; i < n_out && !swiglu; ++i) parts.push_back({dw[i], nullptr, y[i]});
                                         if (fused && swiglu) be.rms_norm_linear_swiglu(xt, {&gt, eps, &scratch}, dw[0], dw[1], y[0]);
                                         if (fused && !swiglu) be.rms_norm_linear_parts(xt, {&gt, eps, &scratch}, parts.data(), n_out);
                                         if (!fused) {
                                             const Tensor xn = be.alloc(GgmlType::F32, n, in);
                                             be.rms_norm(xt, gt, eps, xn);
                                             if (swiglu) be.linear_swiglu(dw[0], dw[1], xn, y[0]);
                                             else be.linear_parts(parts.data(), n_out, xn);
                                         }
                                         std::vector<float> got;
                                         for (const Tensor& yi : y) {
                                             const auto v = get(be, yi);
                                             got.insert(got.end(), v.begin(), v.end());
                                         }
                                         return got;
                                     };
                                     const std::vector<float> got = run(true), unfused = run(false);
                                     std::vector<double> ref;
                                     std::vector<double> xn(static_cast<size_t>(in));
                                     for (int i = 0; i < n_out; ++i)
                                         for (int t = 0; t < n; ++t) {
                                             double ss = 0;
                                             for (int64_t c = 0; c < in; ++c) ss += static_cast<double>(x[t * in + c]) * x[t * in + c];
                                             const double r = 1.0 / std::sqrt(ss / in + eps);
                                             for (int64_t c = 0; c < in; ++c) xn[c] = x[t * in + c] * r * g[c];
                                             for (int64_t row = 0; row < outs[swiglu ? 0 : i]; ++row) {
                                                 double a = 0, u = 0;
                                                 for (int64_t c = 0; c < in; ++c) {
                                                     a += static_cast<double>(w[i].values[row * in + c]) * xn[c];
                                                     if (swiglu) u += static_cast<double>(w[1].values[row * in + c]) * xn[c];
                                                 }
                                                 ref.push_back(swiglu ? a / (1 + std::exp(-a)) * u : a);
                                             }
                                         }
                                     OpResult r = compare(got, ref);
                                     r.exact_ids = same_bits(got, unfused);
                                     return r;
                                 }});
            }
    // the output head of SmolLM2 on its real vocabulary, one token (decode) in its stored type
    for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_1, GgmlType::BF16})
        cases.push_back({std::string("linear/") + ggml_type_name(type) + "/smollm2_head_49152x576_t1", Op::linear, type, 1e-11,
                         quantized(type, 1) ? 5e-4 : 1e-11, [=](Backend& be) {
                             const HostMatrix w = make_matrix(type, 49152, 576, 77);
                             Tensor storage;
                             const Matrix dw = place(be, w, storage);
                             const auto x = randn(576, 8);
                             const Tensor xt = put(be, x, 1, 576), yt = be.alloc(GgmlType::F32, 1, 49152);
                             be.linear(dw, nullptr, xt, yt);
                             std::vector<double> ref(49152);
                             for (int64_t r = 0; r < 49152; ++r) {
                                 double acc = 0;
                                 for (int c = 0; c < 576; ++c) acc += static_cast<double>(w.values[r * 576 + c]) * x[c];
                                 ref[r] = acc;
                             }
                             return compare(get(be, yt), ref);
                         }});
}

void add_get_rows_cases(std::vector<OpCase>& cases) {
    for (GgmlType type : kAllWeightTypes)
        for (int64_t cols : {576, 768, 96}) {
            if (!fits(type, cols)) continue;
            cases.push_back({std::string("get_rows/") + ggml_type_name(type) + "/" + shape(300, cols), Op::get_rows, type, 0, 0, [=](Backend& be) {
                                 const HostMatrix w = make_matrix(type, 300, cols, 21);
                                 Tensor storage;
                                 const Matrix dw = place(be, w, storage);
                                 const std::vector<int32_t> ids{0, 299, 17, 17, 150};
                                 Tensor it = be.alloc(GgmlType::I32, static_cast<int64_t>(ids.size()), 1);
                                 be.upload(ids.data(), it);
                                 const Tensor out = be.alloc(GgmlType::F32, static_cast<int64_t>(ids.size()), cols);
                                 be.get_rows(dw, it, out);
                                 std::vector<double> ref;
                                 for (int32_t id : ids) ref.insert(ref.end(), w.values.begin() + id * cols, w.values.begin() + (id + 1) * cols);
                                 return compare(get(be, out), ref);
                             }});
        }
}

void add_norm_cases(std::vector<OpCase>& cases) {
    for (auto [n, c] : {std::pair{1, 576}, {7, 576}, {3, 100}})
        cases.push_back({"rms_norm/F32/" + shape(n, c), Op::rms_norm, GgmlType::F32, 1e-12, 1e-12, [n, c](Backend& be) {
                             const auto x = randn(static_cast<size_t>(n * c), 31, 3.0f), w = randn(static_cast<size_t>(c), 32);
                             const Tensor xt = put(be, x, n, c), wt = put(be, w, 1, c), yt = be.alloc(GgmlType::F32, n, c);
                             be.rms_norm(xt, wt, 1e-5f, yt);
                             std::vector<double> ref(x.size()), xd = widen(x), wd = widen(w);
                             ref::rmsnorm_forward<double>(ref.data(), nullptr, xd.data(), wd.data(), n, c, 1e-5);
                             return compare(get(be, yt), ref);
                         }});
    for (auto [n, c] : {std::pair{1, 768}, {7, 768}, {5, 100}})
        cases.push_back({"layer_norm/F32/" + shape(n, c), Op::layer_norm, GgmlType::F32, 1e-12, 1e-12, [n, c](Backend& be) {
                             auto x = randn(static_cast<size_t>(n * c), 33, 2.0f);
                             for (auto& v : x) v += 4.0f; // a mean far from zero: the centring matters
                             const auto w = randn(static_cast<size_t>(c), 34), b = randn(static_cast<size_t>(c), 35);
                             const Tensor xt = put(be, x, n, c), wt = put(be, w, 1, c), bt = put(be, b, 1, c), yt = be.alloc(GgmlType::F32, n, c);
                             be.layer_norm(xt, wt, bt, 1e-5f, yt);
                             std::vector<double> ref(x.size()), xd = widen(x), wd = widen(w), bd = widen(b);
                             ref::layernorm_forward<double>(ref.data(), nullptr, nullptr, xd.data(), wd.data(), bd.data(), n, c, 1e-5);
                             return compare(get(be, yt), ref);
                         }});
}

// Angle divisors shaped like Llama 3.1's (GGUF rope_freqs.weight): the fastest quarter of the pairs kept (1), the
// slowest half slowed by 8, the quarter between interpolated; empty when a case rotates without them.
std::vector<float> rope_test_factors(bool scaled, int rope_dim) {
    std::vector<float> f;
    if (!scaled) return f;
    const int half = rope_dim / 2;
    for (int i = 0; i < half; ++i) f.push_back(4 * i < half ? 1.0f : 2 * i >= half ? 8.0f : 1.0f + 7.0f * (4.0f * i - half) / half);
    return f;
}

// The factors on the backend's device, and RopeParams pointing at them (none when `factors` is empty).
struct RopeFactors {
    Tensor t;
    RopeFactors(Backend& be, const std::vector<float>& factors) {
        if (!factors.empty()) t = put(be, factors, 1, static_cast<int64_t>(factors.size()));
    }
    const Tensor* get() const { return t.empty() ? nullptr : &t; }
};

void add_rope_cases(std::vector<OpCase>& cases) {
    struct S { const char* name; int n, heads, hd, rope_dim, pos0; float base; RopeStyle style; bool scaled = false; };
    const S shapes[] = {{"smollm2_q_prefill", 7, 9, 64, 64, 0, 100000.0f, RopeStyle::rotate_half},
                        {"smollm2_k_decode_pos8000", 1, 3, 64, 64, 8000, 100000.0f, RopeStyle::rotate_half},
                        {"gguf_pairs_prefill", 5, 9, 64, 64, 3, 10000.0f, RopeStyle::adjacent_pairs},
                        {"odd_partial_rope", 3, 5, 80, 32, 37, 10000.0f, RopeStyle::adjacent_pairs},
                        {"llama3_factors_pairs_decode_pos3000", 1, 8, 64, 64, 3000, 500000.0f, RopeStyle::adjacent_pairs, true},
                        {"llama3_factors_half_prefill", 6, 8, 64, 64, 2, 500000.0f, RopeStyle::rotate_half, true}};
    for (const S& s : shapes)
        cases.push_back({std::string("rope/F32/") + s.name, Op::rope, GgmlType::F32, 1e-12, 1e-12, [s](Backend& be) {
                             const auto x = randn(static_cast<size_t>(s.n * s.heads * s.hd), 41);
                             const auto ff = rope_test_factors(s.scaled, s.rope_dim);
                             const RopeFactors fft(be, ff);
                             const Tensor xt = put(be, x, s.n, static_cast<int64_t>(s.heads) * s.hd);
                             be.rope(xt, {s.heads, s.hd, s.rope_dim, s.pos0, s.base, s.style, nullptr, fft.get()});
                             std::vector<double> ref = widen(x);
                             ref::rope_apply<double>(ref.data(), 1, s.n, s.heads, s.hd, s.rope_dim, s.base, s.style, false, s.pos0,
                                                     ff.empty() ? nullptr : ff.data());
                             return compare(get(be, xt), ref);
                         }});
    // the position read from device memory when the op runs (a recorded decode step); the host pos0 is a decoy
    for (const S& s : shapes)
        cases.push_back({std::string("rope/F32/") + s.name + "_device_pos", Op::rope, GgmlType::F32, 1e-12, 1e-12, [s](Backend& be) {
                             const auto x = randn(static_cast<size_t>(s.n * s.heads * s.hd), 42);
                             const auto ff = rope_test_factors(s.scaled, s.rope_dim);
                             const RopeFactors fft(be, ff);
                             const Tensor xt = put(be, x, s.n, static_cast<int64_t>(s.heads) * s.hd), pos = put_pos(be, s.pos0);
                             RopeParams p{s.heads, s.hd, s.rope_dim, s.pos0 + 1234, s.base, s.style, &pos, fft.get()};
                             be.rope(xt, p);
                             std::vector<double> ref = widen(x);
                             ref::rope_apply<double>(ref.data(), 1, s.n, s.heads, s.hd, s.rope_dim, s.base, s.style, false, s.pos0,
                                                     ff.empty() ? nullptr : ff.data());
                             return compare(get(be, xt), ref);
                         }});
}

// Values where rounding to nearest even is easy to get wrong: exact ties between two f16 (and two bf16) neighbours,
// which must go to the even one, values just past a tie, f16 subnormals and their ties, the largest finite f16 and a
// value that rounds down to it, the edge of the normal range, zeros of both signs; interleaved with random values.
std::vector<float> rounding_edge_values(size_t n, uint64_t seed) {
    const float edges[] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, -(1.0f + 0x1p-11f), 1.0f + 0x1p-11f + 0x1p-20f, 1024.0f + 0.5f, 1025.0f + 0.5f,
                           1.5f * 0x1p-24f, 2.5f * 0x1p-24f, 0x1p-25f, 0x1p-25f + 0x1p-40f, -3e-5f, 0x1p-14f * (2.0f - 0x1p-11f),
                           65504.0f, 65519.0f, -65504.0f, 0.0f, -0.0f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -(2.0f + 0x1p-7f),
                           1.0f + 0x1p-8f + 0x1p-20f};
    std::vector<float> v = randn(n, seed);
    for (size_t i = 0; i < n; i += 2) v[i] = edges[(i / 2) % std::size(edges)];
    return v;
}

void add_copy_rows_cases(std::vector<OpCase>& cases) {
    // The half-cache write: rows [100, 107) of a cache that already holds other rows, which must stay as they were.
    for (GgmlType type : {GgmlType::F16, GgmlType::BF16})
        cases.push_back({std::string("copy_rows/") + ggml_type_name(type) + "/7x192_at_100_of_256", Op::copy_rows, type, 0, 0, [type](Backend& be) {
                             const auto src = randn(7 * 192, 53), before = randn(256 * 192, 55);
                             const Tensor st = put(be, src, 7, 192), dt = make_cache(be, type, before, 256, 192);
                             be.copy_rows(st, dt, 100);
                             std::vector<double> ref = widen(round_to(type, before));
                             const auto rounded = round_to(type, src);
                             std::copy(rounded.begin(), rounded.end(), ref.begin() + 100 * 192);
                             return compare(get_any(be, dt), ref);
                         }});
    // Rounding to nearest even, bit for bit with io/quant.h's codecs (checked against gguf-py): 185 values, so both a
    // vector loop and a scalar tail run, written at an unaligned row.
    for (GgmlType type : {GgmlType::F16, GgmlType::BF16})
        cases.push_back({std::string("copy_rows/") + ggml_type_name(type) + "/rounding_edges_5x37_at_3_of_9", Op::copy_rows, type, 0, 0,
                         [type](Backend& be) {
                             const auto src = rounding_edge_values(5 * 37, 56);
                             const Tensor st = put(be, src, 5, 37), dt = be.alloc(type, 9, 37);
                             be.copy_rows(st, dt, 3);
                             std::vector<double> ref(9 * 37, 0.0);
                             const auto rounded = round_to(type, src);
                             std::copy(rounded.begin(), rounded.end(), ref.begin() + 3 * 37);
                             return compare(get_any(be, dt), ref);
                         }});
    cases.push_back({"copy_rows/F32/7x192_at_100_of_256", Op::copy_rows, GgmlType::F32, 0, 0, [](Backend& be) {
                         const auto src = randn(7 * 192, 51), before = randn(256 * 192, 52);
                         const Tensor st = put(be, src, 7, 192), dt = put(be, before, 256, 192);
                         be.copy_rows(st, dt, 100);
                         std::vector<double> ref = widen(before);
                         std::copy(src.begin(), src.end(), ref.begin() + 100 * 192);
                         return compare(get(be, dt), ref); // rows outside [100, 107) must be untouched
                     }});
    // copy_rows_at: the destination row read from device memory when the op runs (a recorded decode step's cache write)
    for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16})
        for (int rows : {1, 7})
            cases.push_back({std::string("copy_rows_at/") + ggml_type_name(type) + "/" + std::to_string(rows) + "x192_at_100_of_256", Op::copy_rows, type, 0,
                             0, [type, rows](Backend& be) {
                                 const auto src = randn(static_cast<size_t>(rows) * 192, 54);
                                 const Tensor st = put(be, src, rows, 192), dt = be.alloc(type, 256, 192), row = put_pos(be, 100);
                                 be.copy_rows_at(st, dt, row);
                                 std::vector<double> ref(256 * 192, 0.0);
                                 const auto rounded = round_to(type, src);
                                 std::copy(rounded.begin(), rounded.end(), ref.begin() + 100 * 192);
                                 return compare(get_any(be, dt), ref);
                             }});
}

// Backend::rope_store_kv: q and k rotated, the rotated k and v written into caches that already hold other rows (which
// must stay as they were), against the double reference (the cached k is the reference's k rounded to the cache's
// type, so a half cache may differ where fp32 and double rotations round to different neighbours: far under the
// tolerance). Bit for bit, too, against the four ops the op is defined by, run on the same backend: a device's fused
// kernel must give their bits (OpResult::exact_ids). Decode and prefill rows, both rope conventions, a partial
// rotation, none (gpt2), and the position and row from device memory (the host's values then decoys); the rope
// position and the cache row differ, so that neither can stand in for the other.
// A cache's expected contents after a write: `before` with `rows` (exact values) written from element `at` on, every
// value rounded to the cache's type as the cache holds it.
std::vector<double> cache_after_write(GgmlType type, const std::vector<float>& before, const std::vector<double>& rows, int64_t at) {
    std::vector<double> c = widen(round_to(type, before));
    const auto written = round_to(type, std::vector<float>(rows.begin(), rows.end()));
    std::copy(written.begin(), written.end(), c.begin() + at);
    return c;
}

struct RopeStoreKvShape { const char* name; int n, n_head, n_head_kv, hd, rope_dim, pos; float base; RopeStyle style; bool scaled = false; };

OpResult rope_store_kv_case(Backend& be, GgmlType type, const RopeStoreKvShape& s, bool device_pos) {
    constexpr int64_t kCacheRows = 256, kAt = 100;
    const int64_t qd = static_cast<int64_t>(s.n_head) * s.hd, kvd = static_cast<int64_t>(s.n_head_kv) * s.hd;
    const auto q = randn(static_cast<size_t>(s.n * qd), 61), k = randn(static_cast<size_t>(s.n * kvd), 62), v = randn(static_cast<size_t>(s.n * kvd), 63);
    const auto k_before = randn(static_cast<size_t>(kCacheRows * kvd), 64), v_before = randn(static_cast<size_t>(kCacheRows * kvd), 65);
    const Tensor pos = put_pos(be, s.pos), row = put_pos(be, static_cast<int32_t>(kAt));
    const auto ff = rope_test_factors(s.scaled, s.rope_dim);
    const RopeFactors fft(be, ff);
    const RopeParams p{s.n_head, s.hd, s.rope_dim, device_pos ? s.pos + 1234 : s.pos, s.base, s.style, device_pos ? &pos : nullptr, fft.get()};
    const int64_t dst_row = device_pos ? kAt + 37 : kAt;
    // q, k, the k cache and the v cache after the op (fused) or after the four ops, as fp32
    auto run = [&](bool fused) {
        const Tensor qt = put(be, q, s.n, qd), kt = put(be, k, s.n, kvd), vt = put(be, v, s.n, kvd);
        const Tensor kc = make_cache(be, type, k_before, kCacheRows, kvd), vc = make_cache(be, type, v_before, kCacheRows, kvd);
        if (fused) {
            be.rope_store_kv(qt, kt, vt, p, s.n_head_kv, kc, vc, dst_row, device_pos ? &row : nullptr);
        } else {
            be.rope(qt, p);
            RopeParams pk = p;
            pk.n_heads = s.n_head_kv;
            be.rope(kt, pk);
            if (device_pos) {
                be.copy_rows_at(kt, kc, row);
                be.copy_rows_at(vt, vc, row);
            } else {
                be.copy_rows(kt, kc, dst_row);
                be.copy_rows(vt, vc, dst_row);
            }
        }
        std::vector<float> all;
        for (const Tensor* t : {&qt, &kt, &kc, &vc}) {
            const auto h = get_any(be, *t);
            all.insert(all.end(), h.begin(), h.end());
        }
        return all;
    };
    const std::vector<float> got = run(true), four_ops = run(false);
    std::vector<double> q_ref = widen(q), k_ref = widen(k);
    const float* factors = ff.empty() ? nullptr : ff.data();
    ref::rope_apply<double>(q_ref.data(), 1, s.n, s.n_head, s.hd, s.rope_dim, s.base, s.style, false, s.pos, factors);
    ref::rope_apply<double>(k_ref.data(), 1, s.n, s.n_head_kv, s.hd, s.rope_dim, s.base, s.style, false, s.pos, factors);
    std::vector<double> kc_ref = cache_after_write(type, k_before, k_ref, kAt * kvd), vc_ref = cache_after_write(type, v_before, widen(v), kAt * kvd);
    std::vector<double> ref = q_ref;
    for (const auto* part : {&k_ref, &kc_ref, &vc_ref}) ref.insert(ref.end(), part->begin(), part->end());
    OpResult r = compare(got, ref);
    r.exact_ids = same_bits(got, four_ops);
    return r;
}

void add_rope_store_kv_cases(std::vector<OpCase>& cases) {
    const RopeStoreKvShape shapes[] = {{"smollm2_decode_pos8000", 1, 9, 3, 64, 64, 8000, 100000.0f, RopeStyle::rotate_half},
                                       {"smollm2_prefill", 7, 9, 3, 64, 64, 5, 100000.0f, RopeStyle::rotate_half},
                                       {"gguf_pairs_decode", 1, 9, 3, 64, 64, 130, 10000.0f, RopeStyle::adjacent_pairs},
                                       {"gguf_pairs_prefill", 5, 9, 3, 64, 64, 3, 10000.0f, RopeStyle::adjacent_pairs},
                                       {"odd_partial_rope_pairs", 3, 5, 5, 80, 32, 37, 10000.0f, RopeStyle::adjacent_pairs},
                                       {"odd_partial_rope_half", 2, 4, 2, 80, 32, 11, 500000.0f, RopeStyle::rotate_half},
                                       {"gpt2_no_rope", 2, 12, 12, 64, 64, 9, 10000.0f, RopeStyle::none},
                                       {"llama3_factors_pairs_decode", 1, 8, 2, 64, 64, 3000, 500000.0f, RopeStyle::adjacent_pairs, true}};
    for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16})
        for (const RopeStoreKvShape& s : shapes)
            for (bool device_pos : {false, true}) {
                const double tol = type == GgmlType::F32 ? 1e-12 : 1e-10;
                cases.push_back({std::string("rope_store_kv/") + ggml_type_name(type) + "/" + s.name + (device_pos ? "_device_pos" : ""), Op::rope_store_kv,
                                 type, tol, tol, [type, s, device_pos](Backend& be) { return rope_store_kv_case(be, type, s, device_pos); }});
            }
}

// Backend::rms_norm_qkv_rope_store_kv (a LLaMA layer's norm, q/k/v projections, rope and cache writes; one launch on a
// device): against the double reference (the norm, the products with their biases, the rotation; the cached k and v
// rounded to the cache's type) and bit for bit against the two ops it is defined by, run on the same backend
// (rms_norm_linear_parts, then rope_store_kv: OpResult::exact_ids). Decode rows (a device's fused kernel), a decode
// batch, prefill (the default), both rope conventions, partial rotations, none, biases, every weight type at
// SmolLM2's shape, every cache type, and the position and row from device memory (the host's values then decoys).
struct QkvRopeShape {
    const char* name;
    int n;
    int64_t in;
    int n_head, n_head_kv, hd, rope_dim, pos;
    float base;
    RopeStyle style;
    bool bias, scaled = false;
};

OpResult qkv_rope_store_case(Backend& be, GgmlType wtype, GgmlType ctype, const QkvRopeShape& s, bool device_pos) {
    constexpr int64_t kCacheRows = 256, kAt = 100;
    const int64_t in = s.in, qd = static_cast<int64_t>(s.n_head) * s.hd, kvd = static_cast<int64_t>(s.n_head_kv) * s.hd, outs[3] = {qd, kvd, kvd};
    auto x = randn(static_cast<size_t>(s.n * in), 71);
    for (int t = 0; t < s.n; ++t)
        for (int64_t c = 0; c < in; ++c) x[t * in + c] *= 0.25f + t; // rows of different scales
    const auto g = randn(static_cast<size_t>(in), 72, 0.5f);
    const float eps = 1e-5f;
    std::vector<HostMatrix> w;
    std::vector<std::vector<float>> b;
    std::vector<Tensor> storage(3), bias_t;
    std::vector<Matrix> dw;
    for (int i = 0; i < 3; ++i) {
        w.push_back(make_matrix(wtype, outs[i], in, 73 + i));
        dw.push_back(place(be, w[i], storage[i]));
        b.push_back(s.bias ? randn(static_cast<size_t>(outs[i]), 76 + i, 0.1f) : std::vector<float>(static_cast<size_t>(outs[i]), 0.0f));
        bias_t.push_back(put(be, b[i], 1, outs[i]));
    }
    const auto k_before = randn(static_cast<size_t>(kCacheRows * kvd), 79), v_before = randn(static_cast<size_t>(kCacheRows * kvd), 80);
    const Tensor xt = put(be, x, s.n, in), gt = put(be, g, 1, in), pos = put_pos(be, s.pos), row = put_pos(be, static_cast<int32_t>(kAt));
    const auto ff = rope_test_factors(s.scaled, s.rope_dim);
    const RopeFactors fft(be, ff);
    const RopeParams p{s.n_head, s.hd, s.rope_dim, device_pos ? s.pos + 1234 : s.pos, s.base, s.style, device_pos ? &pos : nullptr, fft.get()};
    const int64_t dst_row = device_pos ? kAt + 37 : kAt;
    // q, k, v, the k cache and the v cache after the op (fused) or after the two ops, as fp32
    auto run = [&](bool fused) {
        const Tensor scratch = be.alloc(GgmlType::F32, s.n, in);
        std::vector<Tensor> y;
        std::vector<LinearPart> parts;
        for (int i = 0; i < 3; ++i) y.push_back(be.alloc(GgmlType::F32, s.n, outs[i]));
        for (int i = 0; i < 3; ++i) parts.push_back({dw[i], s.bias ? &bias_t[i] : nullptr, y[i]});
        const Tensor kc = make_cache(be, ctype, k_before, kCacheRows, kvd), vc = make_cache(be, ctype, v_before, kCacheRows, kvd);
        if (fused) {
            be.rms_norm_qkv_rope_store_kv(xt, {&gt, eps, &scratch}, parts.data(), p, s.n_head_kv, kc, vc, dst_row, device_pos ? &row : nullptr);
        } else {
            be.rms_norm_linear_parts(xt, {&gt, eps, &scratch}, parts.data(), 3);
            be.rope_store_kv(y[0], y[1], y[2], p, s.n_head_kv, kc, vc, dst_row, device_pos ? &row : nullptr);
        }
        std::vector<float> all;
        for (const Tensor* t : std::initializer_list<const Tensor*>{&y[0], &y[1], &y[2], &kc, &vc}) {
            const auto h = get_any(be, *t);
            all.insert(all.end(), h.begin(), h.end());
        }
        return all;
    };
    const std::vector<float> got = run(true), two_ops = run(false);
    std::vector<double> proj[3], xn(x.size());
    const std::vector<double> xd = widen(x), gd = widen(g);
    ref::rmsnorm_forward<double>(xn.data(), nullptr, xd.data(), gd.data(), s.n, static_cast<int>(in), eps);
    for (int i = 0; i < 3; ++i) proj[i].resize(static_cast<size_t>(s.n * outs[i]));
    for (int t = 0; t < s.n; ++t)
        for (int i = 0; i < 3; ++i)
            for (int64_t o = 0; o < outs[i]; ++o) {
                double a = b[i][o];
                for (int64_t c = 0; c < in; ++c) a += static_cast<double>(w[i].values[o * in + c]) * xn[t * in + c];
                proj[i][t * outs[i] + o] = a;
            }
    const float* factors = ff.empty() ? nullptr : ff.data();
    ref::rope_apply<double>(proj[0].data(), 1, s.n, s.n_head, s.hd, s.rope_dim, s.base, s.style, false, s.pos, factors);
    ref::rope_apply<double>(proj[1].data(), 1, s.n, s.n_head_kv, s.hd, s.rope_dim, s.base, s.style, false, s.pos, factors);
    std::vector<double> kc_ref = cache_after_write(ctype, k_before, proj[1], kAt * kvd),
                        vc_ref = cache_after_write(ctype, v_before, proj[2], kAt * kvd);
    std::vector<double> ref = proj[0];
    for (const auto* part : {&proj[1], &proj[2], &kc_ref, &vc_ref}) ref.insert(ref.end(), part->begin(), part->end());
    OpResult r = compare(got, ref);
    r.exact_ids = same_bits(got, two_ops);
    return r;
}

void add_qkv_rope_store_cases(std::vector<OpCase>& cases) {
    const QkvRopeShape smollm2{"smollm2_decode_pos8000", 1, 576, 9, 3, 64, 64, 8000, 100000.0f, RopeStyle::rotate_half, false};
    const QkvRopeShape others[] = {{"gguf_pairs_decode", 1, 576, 9, 3, 64, 64, 130, 10000.0f, RopeStyle::adjacent_pairs, false},
                                   {"decode_batch3", 3, 576, 9, 3, 64, 64, 41, 10000.0f, RopeStyle::rotate_half, false},
                                   {"prefill9", 9, 576, 9, 3, 64, 64, 5, 10000.0f, RopeStyle::rotate_half, false},
                                   {"odd_partial_pairs_bias", 1, 256, 5, 5, 80, 32, 37, 10000.0f, RopeStyle::adjacent_pairs, true},
                                   {"odd_partial_half_bias", 2, 256, 4, 2, 80, 32, 11, 500000.0f, RopeStyle::rotate_half, true},
                                   {"no_rope", 1, 256, 4, 4, 64, 64, 9, 10000.0f, RopeStyle::none, true},
                                   {"llama3_factors_pairs_decode", 1, 512, 8, 2, 64, 64, 3000, 500000.0f, RopeStyle::adjacent_pairs, false, true}};
    auto add = [&](GgmlType wtype, GgmlType ctype, const QkvRopeShape& s, bool device_pos) {
        const double tol = ctype == GgmlType::F32 ? 1e-11 : 1e-10, tol_q8 = quantized(wtype, s.n) ? 5e-4 : tol;
        cases.push_back({std::string("rms_norm_qkv_rope_store_kv/") + ggml_type_name(wtype) + "_" + ggml_type_name(ctype) + "_cache/" + s.name +
                             (device_pos ? "_device_pos" : ""),
                         Op::rope_store_kv, ctype, tol, tol_q8, [=](Backend& be) { return qkv_rope_store_case(be, wtype, ctype, s, device_pos); }});
    };
    for (GgmlType wtype : kWeightTypes)
        for (bool device_pos : {false, true}) add(wtype, GgmlType::F32, smollm2, device_pos);
    for (GgmlType ctype : {GgmlType::F16, GgmlType::BF16}) add(GgmlType::BF16, ctype, smollm2, true);
    for (const QkvRopeShape& s : others)
        for (GgmlType wtype : {GgmlType::F32, GgmlType::Q4_1, GgmlType::Q4_K, GgmlType::Q6_K}) {
            if (!fits(wtype, s.in)) continue;
            add(wtype, GgmlType::F32, s, s.n == 1);
        }
}

BlockMask random_mask(int block, int n_blocks, uint64_t seed, int groups = 1) {
    BlockMask m{block, n_blocks, std::vector<uint8_t>(static_cast<size_t>(groups) * n_blocks * n_blocks, 0)};
    m.groups = groups;
    std::mt19937_64 rng(seed);
    for (int g = 0; g < groups; ++g)
        for (int qb = 0; qb < n_blocks; ++qb)
            for (int kb = 0; kb <= qb; ++kb) // diagonal, sink, ~1/3 of the rest
                m.keep[(static_cast<size_t>(g) * n_blocks + qb) * n_blocks + kb] = kb == qb || kb == 0 || rng() % 3 == 0;
    return m;
}

struct AttentionShape { const char* name; int n, pos0, n_head, n_head_kv, hd; int mask_block; int mask_groups = 1; int window = 0; float softcap = 0; };

// How the reference sees the cache:
//   rounded:   the K/V values the cache holds (rounded on the host first, so the cache write is exact): only the
//              kernel's fp32 arithmetic differs from the double reference, and fp16/bf16 -> fp32 is exact, so every
//              cache type meets the fp32 tolerance;
//   unrounded: the fp32 K/V before the backend's copy_rows rounds them: the accuracy cost of the cache itself.
enum class KvReference { rounded, unrounded };

// The tolerance of an unrounded case. Rounding to nearest leaves each K and V element x = m 2^k (m in [1, 2)) with an
// error uniform in +-ulp/2, ulp = 2u 2^k (u, the unit roundoff: 2^-11 for f16, 2^-8 for bf16): a relative error e of
// mean square u^2 / (3 m^2), about u^2 / 6 averaged over m. With q, k, v ~ N(0, 1):
//   V: o = sum_j p_j v_j gains sum_j p_j v_j e_j, whose mean square is E[e^2] times o's: NMSE ~u^2 / 6;
//   K: a score s_j = scale * q.k_j (scale = 1 / sqrt(hd)) moves by scale * sum_d q_d k_jd e_jd, variance
//      scale^2 * hd * E[e^2] = E[e^2]; p_j then moves by p_j (ds_j - mean ds), and o by about as much: NMSE ~u^2 / 6.
// About u^2 / 3 in all (measured 0.24-0.49 u^2 over these shapes). The tolerance is u^2: a cache write that truncates
// instead of rounding (4x the mean square and a bias: measured 1.05-3.9 u^2) fails it, and so does an f16 cache kept at
// bf16 precision (64x).
double unrounded_kv_tolerance(GgmlType type) {
    const double u = type == GgmlType::F16 ? 0x1p-11 : type == GgmlType::BF16 ? 0x1p-8 : 0.0;
    return u > 0 ? u * u : 1e-10;
}

OpResult run_attention_case(Backend& be, const AttentionShape& s, GgmlType type, bool device_pos, KvReference kv_ref) {
    const int ctx = std::max(128, s.pos0 + s.n), kvd = s.n_head_kv * s.hd, qd = s.n_head * s.hd;
    const auto q = randn(static_cast<size_t>(s.n) * qd, 61);
    auto k = randn(static_cast<size_t>(ctx) * kvd, 62), v = randn(static_cast<size_t>(ctx) * kvd, 63);
    if (kv_ref == KvReference::rounded) k = round_to(type, k), v = round_to(type, v);
    const Tensor qt = put(be, q, s.n, qd), kt = make_cache(be, type, k, ctx, kvd), vt = make_cache(be, type, v, ctx, kvd),
                 ot = be.alloc(GgmlType::F32, s.n, qd);
    BlockMask mask;
    AttentionParams p;
    p.pos0 = s.pos0;
    const Tensor pos = device_pos ? put_pos(be, s.pos0) : Tensor();
    if (device_pos) {
        p.pos = &pos;
        p.pos0 = 0;
    }
    p.n_head = s.n_head;
    p.n_head_kv = s.n_head_kv;
    p.head_dim = s.hd;
    p.window = s.window;
    p.softcap = s.softcap;
    // a negative block size: the same pattern with the SPION denominator
    const int block = std::abs(s.mask_block);
    if (block) {
        mask = random_mask(block, (ctx + block - 1) / block, 64, s.mask_groups);
        if (s.mask_block < 0) mask.denominator = SparseDenominator::spion;
        p.mask = &mask;
    }
    be.attention(qt, kt, vt, ot, p);
    std::vector<double> ref(q.size()), qd_ = widen(q), kd = widen(k), vd = widen(v);
    ref::attention_cached<double>(ref.data(), qd_.data(), kd.data(), vd.data(), s.pos0, s.n, s.n_head, s.n_head_kv, s.hd,
                                  1.0 / std::sqrt(static_cast<double>(s.hd)),
                                  [&](int kvh, int qp, int kp) { return (!block || mask.allows(qp, kp, kvh)) && (!s.window || qp - kp < s.window); },
                                  s.mask_block < 0, static_cast<double>(s.softcap));
    return compare(get(be, ot), ref);
}

void add_attention_cases(std::vector<OpCase>& cases) {
    using S = AttentionShape;
    const S shapes[] = {{"smollm2_prefill_7", 7, 0, 9, 3, 64, 0},         {"smollm2_decode_pos300", 1, 300, 9, 3, 64, 0},
                        {"smollm2_decode_pos4095", 1, 4095, 9, 3, 64, 0}, {"gpt2_prefill_5_at_10", 5, 10, 12, 12, 64, 0},
                        {"odd_mqa_3_at_37", 3, 37, 5, 1, 48, 0},          {"masked_b16_prefill_128", 128, 0, 9, 3, 64, 16},
                        {"masked_b16_decode_pos100", 1, 100, 9, 3, 64, 16},      {"masked_spion_b16_prefill_128", 128, 0, 9, 3, 64, -16},
                        {"masked_spion_b32_decode_pos300", 1, 300, 9, 3, 64, -32},
                        // long masked rows: the CPU kernel splits each row's kept keys and merges the parts
                        {"masked_spion_b64_decode_pos3000", 1, 3000, 9, 3, 64, -64}, {"masked_b64_decode2_pos2500", 2, 2500, 9, 3, 64, 64},
                        // one pattern per KV head group
                        {"grouped_mask_b16_prefill_96", 96, 0, 9, 3, 64, 16, 3}, {"grouped_spion_b64_decode_pos3000", 1, 3000, 9, 3, 64, -64, 3},
                        // a head of 6 dims (not a whole number of 16-byte loads): the element-wise key walk
                        {"head6_decode_pos300", 1, 300, 4, 2, 6, 0},
                        // more keys than one block's shared memory holds (CUDA: the flash-decoding split)
                        {"mqa_decode_pos70000", 1, 70000, 4, 1, 64, 0},
                        // more prefill rows than one launch of the CUDA block-sparse kernels takes (256)
                        {"masked_b32_prefill_300", 300, 0, 9, 3, 64, 32},
                        // dense prefill of 16 rows or more (CUDA: the tiled kernel): several row tiles and a short last
                        // one after a cached prefix, a tile's worth of keys not a multiple of 32, GPT-2's MHA, an MQA
                        // head of 48 dims (lanes past it idle), 6 dims, and LLaMA-1B's 128
                        {"smollm2_prefill_100_at_20", 100, 20, 9, 3, 64, 0}, {"gpt2_prefill_40", 40, 0, 12, 12, 64, 0},
                        {"odd_mqa_head48_prefill_33_at_5", 33, 5, 5, 1, 48, 0}, {"head6_prefill_20_at_3", 20, 3, 4, 2, 6, 0},
                        {"llama1b_head128_prefill_64_at_200", 64, 200, 8, 2, 128, 0},
                        // the CPU's prefill tiles: keys in three 256-key chunks with the causal diagonal inside the
                        // last, and SPION-denominator mask blocks that cut the row tiles
                        {"smollm2_prefill_48_at_600", 48, 600, 9, 3, 64, 0}, {"masked_spion_b64_prefill_80_at_400", 80, 400, 9, 3, 64, -64},
                        // sliding windows (Gemma 3's local layers): the row walk (7 rows, windows shorter than the
                        // prefix), the prefill tiles (CPU: a window cutting a 256-key chunk; CUDA: row tiles whose
                        // windows start inside a 32-key tile), decode within one split and across splits counted from
                        // the window's first key (CUDA: 300 keys, 100 in the window; 70,000 keys, 1,000 in it), and
                        // Gemma 3's 256-dim heads (CUDA: past the tiles' 128, attention.cu's kernel)
                        {"window5_prefill_7_at_3", 7, 3, 9, 3, 64, 0, 1, 5}, {"window40_prefill_100_at_20", 100, 20, 9, 3, 64, 0, 1, 40},
                        {"window100_prefill_48_at_600", 48, 600, 9, 3, 64, 0, 1, 100}, {"window100_decode_pos300", 1, 300, 9, 3, 64, 0, 1, 100},
                        {"window1000_mqa_decode_pos70000", 1, 70000, 4, 1, 64, 0, 1, 1000},
                        {"window_wider_than_keys_decode_pos50", 1, 50, 9, 3, 64, 0, 1, 512},
                        {"gemma3_head256_window64_prefill_40_at_90", 40, 90, 4, 1, 256, 0, 1, 64},
                        // Gemma 2's soft cap of the scores (1: these N(0, 1) scores reach its bend; Gemma 2's is 50):
                        // the row walk, the prefill tiles with a window (CUDA: the tiled kernel), decode across
                        // splits (CUDA: the flash-decoding split) and within one (the per-row kernel), 256-wide heads
                        {"softcap1_prefill_7_at_3", 7, 3, 9, 3, 64, 0, 1, 0, 1.0f},
                        {"softcap1_window40_prefill_100_at_20", 100, 20, 8, 4, 64, 0, 1, 40, 1.0f},
                        {"softcap1_decode_pos300", 1, 300, 8, 4, 64, 0, 1, 0, 1.0f},
                        {"softcap2_head256_window12_decode_pos50", 1, 50, 8, 4, 256, 0, 1, 12, 2.0f}};
    for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16})
    for (const S& s : shapes)
    for (bool device_pos : {false, true}) {
        // device_pos: the position read from device memory when the op runs (a recorded decode step), for the decode
        // shapes; the host pos0 is then a decoy
        if (device_pos && s.n != 1) continue;
        cases.push_back({std::string("attention/") + ggml_type_name(type) + "/" + s.name + (device_pos ? "_device_pos" : ""), Op::attention, type, 1e-10,
                         1e-10, [s, type, device_pos](Backend& be) { return run_attention_case(be, s, type, device_pos, KvReference::rounded); }});
    }
    // the half caches against the unrounded K/V: what the cache's rounding costs, bounded by unrounded_kv_tolerance
    for (GgmlType type : {GgmlType::F16, GgmlType::BF16})
        for (const S& s : shapes) {
            const double tol = unrounded_kv_tolerance(type);
            cases.push_back({std::string("attention/") + ggml_type_name(type) + "/" + s.name + "_vs_unrounded_kv", Op::attention, type, tol, tol,
                             [s, type](Backend& be) { return run_attention_case(be, s, type, false, KvReference::unrounded); }});
        }
}

// Flash-decoding's split attention run repeatedly on one backend: three times at one position, with the position from
// the host and from device memory, interleaved with another shape (more heads: more per-(row, head) counters), then
// the first again. Every run must give the first run's bits. (CUDA's last split block to finish merges and resets its
// (row, head)'s arrival count: a count left behind would make a later launch merge too early or never.) The first run
// is also held to the double reference.
void add_split_attention_repeat_case(std::vector<OpCase>& cases) {
    cases.push_back({"attention/F32/split_decode_repeated_same_bits", Op::attention, GgmlType::F32, 1e-10, 1e-10, [](Backend& be) {
                         constexpr int ctx = 3072, pos0 = 3000;
                         struct Shape { int n_head, n_head_kv, hd; };
                         auto run = [&](const Shape& sh, bool device_pos, uint64_t seed) {
                             const int kvd = sh.n_head_kv * sh.hd, qd = sh.n_head * sh.hd;
                             const auto q = randn(static_cast<size_t>(qd), seed), k = randn(static_cast<size_t>(ctx) * kvd, seed + 1),
                                        v = randn(static_cast<size_t>(ctx) * kvd, seed + 2);
                             const Tensor qt = put(be, q, 1, qd), kt = make_cache(be, GgmlType::F32, k, ctx, kvd), vt = make_cache(be, GgmlType::F32, v, ctx, kvd),
                                          ot = be.alloc(GgmlType::F32, 1, qd), pos = put_pos(be, pos0);
                             AttentionParams p;
                             p.pos0 = device_pos ? 0 : pos0;
                             p.pos = device_pos ? &pos : nullptr;
                             p.n_head = sh.n_head, p.n_head_kv = sh.n_head_kv, p.head_dim = sh.hd;
                             be.attention(qt, kt, vt, ot, p);
                             std::vector<double> ref(q.size()), qd_ = widen(q), kd = widen(k), vd = widen(v);
                             ref::attention_cached<double>(ref.data(), qd_.data(), kd.data(), vd.data(), pos0, 1, sh.n_head, sh.n_head_kv, sh.hd,
                                                           1.0 / std::sqrt(static_cast<double>(sh.hd)), [](int, int, int) { return true; }, false);
                             return std::pair{get(be, ot), ref};
                         };
                         const Shape a{9, 3, 64}, b{16, 4, 64};
                         const auto [first, ref] = run(a, false, 81);
                         OpResult r = compare(first, ref);
                         for (const auto& [sh, device_pos, seed] : {std::tuple{a, false, 81}, std::tuple{a, true, 81}, std::tuple{b, true, 91},
                                                                    std::tuple{a, true, 81}, std::tuple{b, false, 91}, std::tuple{a, false, 81}}) {
                             const auto got = run(sh, device_pos, seed).first;
                             if (seed == 81) r.exact_ids = r.exact_ids && same_bits(got, first);
                             else r.exact_ids = r.exact_ids && compare(got, run(sh, false, seed).second).nmse < 1e-10;
                         }
                         return r;
                     }});
}

// A block mask destroyed and another built at the same address (a new Forward's pattern, the next context length's
// masks), used by the same backend: the second attention must follow the second mask. (The CUDA backend keeps masks on
// the device, found by address: before it compared their contents, it served the first mask's blocks here.) The case
// checks that the two masks give different outputs, so that it can fail.
void add_mask_rebuilt_case(std::vector<OpCase>& cases) {
    cases.push_back({"attention/F32/mask_rebuilt_at_same_address", Op::attention, GgmlType::F32, 1e-10, 1e-10, [](Backend& be) {
                         const int pos0 = 700, ctx = 768, n_head = 9, n_head_kv = 3, hd = 64, kvd = n_head_kv * hd, qd = n_head * hd, block = 16;
                         const auto q = randn(qd, 91), k = randn(static_cast<size_t>(ctx) * kvd, 92), v = randn(static_cast<size_t>(ctx) * kvd, 93);
                         const Tensor qt = put(be, q, 1, qd), kt = make_cache(be, GgmlType::F32, k, ctx, kvd), vt = make_cache(be, GgmlType::F32, v, ctx, kvd),
                                      ot = be.alloc(GgmlType::F32, 1, qd);
                         std::optional<BlockMask> slot; // the same storage for both masks
                         AttentionParams p;
                         p.pos0 = pos0, p.n_head = n_head, p.n_head_kv = n_head_kv, p.head_dim = hd;
                         std::vector<double> ref[2];
                         const std::vector<double> qd_ = widen(q), kd = widen(k), vd = widen(v);
                         for (int i = 0; i < 2; ++i) {
                             slot.reset();
                             slot.emplace(random_mask(block, ctx / block, 94 + i));
                             p.mask = &*slot;
                             be.attention(qt, kt, vt, ot, p);
                             ref[i].resize(q.size());
                             ref::attention_cached<double>(ref[i].data(), qd_.data(), kd.data(), vd.data(), pos0, 1, n_head, n_head_kv, hd,
                                                           1.0 / std::sqrt(static_cast<double>(hd)),
                                                           [&](int kvh, int qp, int kp) { return slot->allows(qp, kp, kvh); }, false);
                         }
                         if (compare(std::vector<float>(ref[0].begin(), ref[0].end()), ref[1]).nmse < 1e-3) return OpResult{}; // masks alike: tests nothing
                         return compare(get(be, ot), ref[1]);
                     }});
}

// Query-aware block selection (AttentionParams::select_blocks) against the double reference: the key summaries and
// each (row, KV head)'s chosen blocks are recomputed here in double from the rule's definition, then the reference
// attends under the union of the mask and the chosen blocks.
void add_block_selection_cases(std::vector<OpCase>& cases) {
    struct S { const char* name; int n, pos0, n_head, n_head_kv, hd, mask_block, mask_groups, select, unit; };
    const S shapes[] = {{"select4_b16_prefill_128", 128, 0, 9, 3, 64, 16, 1, 4, 16},
                        {"select2_b32_prefill_64_at_200", 64, 200, 9, 3, 64, 32, 1, 2, 32},
                        {"select3_grouped_spion_b64_decode_pos3000", 1, 3000, 9, 3, 64, -64, 3, 3, 64},
                        {"select8_b64_decode_pos2500", 1, 2500, 9, 3, 64, 64, 1, 8, 64},
                        {"select40_b16_decode_pos300_all", 1, 300, 9, 3, 64, 16, 1, 40, 16}, // more than the row drops: all kept
                        // selection units finer than the mask's blocks
                        {"select12_u16_b64_prefill_96_at_500", 96, 500, 9, 3, 64, 64, 1, 12, 16},
                        {"select20_u8_grouped_b32_decode_pos2000", 1, 2000, 9, 3, 64, 32, 3, 20, 8},
                        // the default operating point at 8K (64 units of 8 keys), and prefill rows in more than one chunk
                        // of the CUDA kernel (256 rows)
                        {"select64_u8_grouped_b64_decode_pos8191", 1, 8191, 9, 3, 64, 64, 3, 64, 8},
                        {"select16_u8_b64_prefill_300_at_40", 300, 40, 9, 3, 64, 64, 1, 16, 8}};
    // an F16 cache too: the summaries then bound the rounded keys the cache holds (as Forward's do)
    for (GgmlType type : {GgmlType::F32, GgmlType::F16})
    for (const S& s : shapes)
    for (bool device_pos : {false, true}) {
        if (device_pos && s.n != 1) continue; // a recorded decode step reads its position on the device
        OpCase c{std::string("attention/") + ggml_type_name(type) + "/" + s.name + (device_pos ? "_device_pos" : ""), Op::attention, type, 1e-10, 1e-10,
                 [s, type, device_pos](Backend& be) {
                     const int ctx = std::max(128, s.pos0 + s.n), kvd = s.n_head_kv * s.hd, qd = s.n_head * s.hd, block = std::abs(s.mask_block);
                     const int n_blocks = (ctx + block - 1) / block, unit = s.unit, n_units = n_blocks * (block / unit), summarised = (s.pos0 + s.n) / unit;
                     const auto q = randn(static_cast<size_t>(s.n) * qd, 81), k = round_to(type, randn(static_cast<size_t>(ctx) * kvd, 82)),
                                v = round_to(type, randn(static_cast<size_t>(ctx) * kvd, 83));
                     BlockMask mask = random_mask(block, n_blocks, 84, s.mask_groups);
                     if (s.mask_block < 0) mask.denominator = SparseDenominator::spion;
                     std::vector<float> kmax(static_cast<size_t>(summarised) * kvd, -INFINITY), kmin(kmax.size(), INFINITY);
                     for (int j = 0; j < summarised * unit; ++j)
                         for (int d = 0; d < kvd; ++d) {
                             const size_t i = static_cast<size_t>(j / unit) * kvd + d;
                             kmax[i] = std::max(kmax[i], k[static_cast<size_t>(j) * kvd + d]);
                             kmin[i] = std::min(kmin[i], k[static_cast<size_t>(j) * kvd + d]);
                         }
                     // the summary the backend reads: fp16, rounded outward, in KeyBlockSummary's planes (KV head, unit, dim);
                     // the reference's bound uses the same values from its own [unit][kvd] arrays
                     std::vector<uint16_t> kmax16(kmax.size()), kmin16(kmin.size());
                     for (int b = 0; b < summarised; ++b)
                         for (int d = 0; d < kvd; ++d) {
                             const size_t i = static_cast<size_t>(b) * kvd + d, at = (static_cast<size_t>(d / s.hd) * summarised + b) * s.hd + d % s.hd;
                             kmax16[at] = sparse::fp16_round_up(kmax[i]), kmin16[at] = sparse::fp16_round_down(kmin[i]);
                             kmax[i] = fp16_to_fp32(kmax16[at]), kmin[i] = fp16_to_fp32(kmin16[at]);
                         }
                     AttentionParams p;
                     p.pos0 = s.pos0, p.n_head = s.n_head, p.n_head_kv = s.n_head_kv, p.head_dim = s.hd, p.mask = &mask;
                     const Tensor pos = device_pos ? put_pos(be, s.pos0) : Tensor();
                     if (device_pos) p.pos = &pos, p.pos0 = 0; // the host pos0 is then a decoy
                     p.select_blocks = s.select;
                     // the summaries in the backend's memory (a device backend reads them there)
                     const Tensor kmax_t = be.alloc(GgmlType::F16, s.n_head_kv, static_cast<int64_t>(summarised) * s.hd),
                                  kmin_t = be.alloc(GgmlType::F16, s.n_head_kv, static_cast<int64_t>(summarised) * s.hd);
                     be.upload(kmax16.data(), kmax_t);
                     be.upload(kmin16.data(), kmin_t);
                     p.key_summary = {unit, summarised, static_cast<const uint16_t*>(kmax_t.raw()), static_cast<const uint16_t*>(kmin_t.raw())};
                     const Tensor qt = put(be, q, s.n, qd), kt = make_cache(be, type, k, ctx, kvd), vt = make_cache(be, type, v, ctx, kvd),
                                  ot = be.alloc(GgmlType::F32, s.n, qd);
                     be.attention(qt, kt, vt, ot, p);
                     // chosen[(t * n_head_kv + kvh) * n_units + u]: the units selection adds for row t, KV head kvh
                     std::vector<uint8_t> chosen(static_cast<size_t>(s.n) * s.n_head_kv * n_units, 0);
                     const int heads = s.n_head / s.n_head_kv;
                     for (int t = 0; t < s.n; ++t)
                         for (int kvh = 0; kvh < s.n_head_kv; ++kvh) {
                             const int q_pos = s.pos0 + t;
                             std::vector<std::pair<double, int>> cand;
                             for (int b = 0; b < std::min(summarised, (q_pos + 1) / unit); ++b) {
                                 if (mask.allows(q_pos, static_cast<int64_t>(b) * unit, kvh)) continue;
                                 double ub = -INFINITY;
                                 for (int g = 0; g < heads; ++g) {
                                     double sum = 0;
                                     for (int d = 0; d < s.hd; ++d) {
                                         const double qv = q[(static_cast<size_t>(t) * s.n_head + kvh * heads + g) * s.hd + d];
                                         const size_t i = static_cast<size_t>(b) * kvd + kvh * s.hd + d;
                                         sum += std::max(qv * kmax[i], qv * kmin[i]);
                                     }
                                     ub = std::max(ub, sum);
                                 }
                                 cand.emplace_back(-ub, b); // ascending: highest bound first, then the lower block
                             }
                             std::sort(cand.begin(), cand.end());
                             for (int i = 0; i < std::min<int>(s.select, static_cast<int>(cand.size())); ++i)
                                 chosen[(static_cast<size_t>(t) * s.n_head_kv + kvh) * n_units + cand[i].second] = 1;
                         }
                     if (std::find(chosen.begin(), chosen.end(), 1) == chosen.end()) return OpResult{}; // a case that selects nothing tests nothing
                     std::vector<double> ref(q.size()), qd_ = widen(q), kd = widen(k), vd = widen(v);
                     ref::attention_cached<double>(ref.data(), qd_.data(), kd.data(), vd.data(), s.pos0, s.n, s.n_head, s.n_head_kv, s.hd,
                                                   1.0 / std::sqrt(static_cast<double>(s.hd)),
                                                   [&](int kvh, int qp, int kp) {
                                                       return mask.allows(qp, kp, kvh) ||
                                                              chosen[(static_cast<size_t>(qp - s.pos0) * s.n_head_kv + kvh) * n_units + kp / unit] != 0;
                                                   },
                                                   s.mask_block < 0);
                     return compare(get(be, ot), ref);
                 }};
        cases.push_back(std::move(c));
    }
}

// Backend::summarize_keys: a prefill, decode rows one by one across unit boundaries (from a device position too), then a
// rewind that rewrites rows from the middle of a unit; every unit's summary must equal the outward-rounded extremes of
// the rows the cache holds now, bit for bit, at its place in KeyBlockSummary's planes (4 KV heads of 50 dims: a
// column's head and dim are not a power-of-two split). The keys include a NaN (passed over), values beyond fp16's range
// and an fp16 subnormal; 200 columns leave a partial thread block.
void add_summarize_keys_cases(std::vector<OpCase>& cases) {
    for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16})
    for (int unit : {8, 16})
    for (bool device_pos : {false, true})
        cases.push_back({std::string("summarize_keys/") + ggml_type_name(type) + "/unit" + std::to_string(unit) + (device_pos ? "_device_pos" : ""),
                         Op::summarize_keys, type, 0, 0, [type, unit, device_pos](Backend& be) {
                             const int ctx = 100, kvd = 200, n_head_kv = 4, hd = kvd / n_head_kv, units = (ctx + unit - 1) / unit; // a partial last unit
                             auto k = randn(static_cast<size_t>(ctx) * kvd, 91);
                             k[5 * kvd + 3] = NAN, k[9 * kvd + 4] = 70000.0f, k[10 * kvd + 5] = -70000.0f, k[12 * kvd + 6] = 1e-6f;
                             const Tensor kmax = be.alloc(GgmlType::F16, n_head_kv, static_cast<int64_t>(units) * hd),
                                          kmin = be.alloc(GgmlType::F16, n_head_kv, static_cast<int64_t>(units) * hd);
                             Tensor cache = make_cache(be, type, k, ctx, kvd);
                             be.summarize_keys(cache, kmax, kmin, n_head_kv, unit, 0, 37);
                             for (int r = 37; r < 45; ++r) {
                                 const Tensor pos = device_pos ? put_pos(be, r) : Tensor();
                                 be.summarize_keys(cache, kmax, kmin, n_head_kv, unit, device_pos ? 0 : r, 1, device_pos ? &pos : nullptr);
                             }
                             const auto rewritten = randn(static_cast<size_t>(ctx) * kvd, 92); // the context rewound to 20, 30 rows rewritten
                             std::copy(rewritten.begin() + 20 * kvd, rewritten.end(), k.begin() + 20 * kvd);
                             cache = make_cache(be, type, k, ctx, kvd);
                             be.summarize_keys(cache, kmax, kmin, n_head_kv, unit, 20, 30);
                             const int end = 50, written_units = (end + unit - 1) / unit;
                             std::vector<uint16_t> got_max(static_cast<size_t>(units) * kvd), got_min(got_max.size());
                             be.download(kmax, got_max.data());
                             be.download(kmin, got_min.data());
                             const auto held = round_to(type, k);
                             OpResult res;
                             for (int u = 0; u < written_units; ++u)
                                 for (int d = 0; d < kvd; ++d) {
                                     float mx = -INFINITY, mn = INFINITY;
                                     for (int r = u * unit; r < std::min((u + 1) * unit, end); ++r) {
                                         const float x = held[static_cast<size_t>(r) * kvd + d];
                                         if (mx < x) mx = x; // std::max's rule: a NaN key is passed over
                                         if (x < mn) mn = x;
                                     }
                                     const size_t i = (static_cast<size_t>(d / hd) * units + u) * hd + d % hd;
                                     res.exact_ids = res.exact_ids && got_max[i] == sparse::fp16_round_up(mx) && got_min[i] == sparse::fp16_round_down(mn);
                                     res.compared += 2;
                                 }
                             return res;
                         }});
}

void add_activation_cases(std::vector<OpCase>& cases) {
    for (auto [n, c] : {std::pair{7, 3072}, {1, 100}})
        cases.push_back({"gelu_tanh/F32/" + shape(n, c), Op::gelu_tanh, GgmlType::F32, 1e-12, 1e-12, [n, c](Backend& be) {
                             const auto x = randn(static_cast<size_t>(n * c), 71, 3.0f);
                             const Tensor xt = put(be, x, n, c);
                             be.gelu_tanh(xt);
                             std::vector<double> ref(x.size()), xd = widen(x);
                             ref::gelu_forward<double>(ref.data(), xd.data(), x.size());
                             return compare(get(be, xt), ref);
                         }});
    for (auto [n, c] : {std::pair{7, 1536}, {1, 100}})
        cases.push_back({"swiglu/F32/" + shape(n, c), Op::swiglu, GgmlType::F32, 1e-12, 1e-12, [n, c](Backend& be) {
                             const auto g = randn(static_cast<size_t>(n * c), 72, 3.0f), u = randn(static_cast<size_t>(n * c), 73);
                             const Tensor gt = put(be, g, n, c), ut = put(be, u, n, c), ot = be.alloc(GgmlType::F32, n, c);
                             be.swiglu(gt, ut, ot);
                             std::vector<double> ref(g.size()), gd = widen(g), ud = widen(u);
                             ref::swiglu_forward<double>(ref.data(), gd.data(), ud.data(), g.size());
                             return compare(get(be, ot), ref);
                         }});
    // Gemma's gated FFN (in place into up, as Forward calls it, and into another tensor); 6912: Gemma 3 1B's FFN width
    for (auto [n, c, in_place] : {std::tuple{7, 6912, true}, {1, 100, false}})
        cases.push_back({"geglu/F32/" + shape(n, c) + (in_place ? "_into_up" : ""), Op::geglu, GgmlType::F32, 1e-12, 1e-12, [n, c, in_place](Backend& be) {
                             const auto g = randn(static_cast<size_t>(n * c), 76, 3.0f), u = randn(static_cast<size_t>(n * c), 77);
                             const Tensor gt = put(be, g, n, c), ut = put(be, u, n, c), ot = in_place ? ut : be.alloc(GgmlType::F32, n, c);
                             be.geglu(gt, ut, ot);
                             std::vector<double> ref(g.size()), gd = widen(g), ud = widen(u);
                             ref::geglu_forward<double>(ref.data(), gd.data(), ud.data(), g.size());
                             return compare(get(be, ot), ref);
                         }});
    // Gemma's embedding scale, sqrt(1152) on 5 rows of Gemma 3 1B's width
    cases.push_back({"scale/F32/5x1152", Op::scale, GgmlType::F32, 1e-14, 1e-14, [](Backend& be) {
                         const auto x = randn(5 * 1152, 78);
                         const float s = std::sqrt(1152.0f);
                         const Tensor xt = put(be, x, 5, 1152);
                         be.scale(xt, s);
                         std::vector<double> ref = widen(x);
                         for (double& v : ref) v *= static_cast<double>(s);
                         return compare(get(be, xt), ref);
                     }});
    // Gemma 2's cap of the logits (30 on its 256K vocabulary; values from -80 to 80 here, so both tails flatten)
    cases.push_back({"softcap/F32/3x1000", Op::softcap, GgmlType::F32, 1e-13, 1e-13, [](Backend& be) {
                         auto x = randn(3 * 1000, 79);
                         for (float& v : x) v *= 25.0f;
                         const Tensor xt = put(be, x, 3, 1000);
                         be.softcap(xt, 30.0f);
                         std::vector<double> ref = widen(x);
                         ref::softcap<double>(ref.data(), ref.size(), 30.0);
                         return compare(get(be, xt), ref);
                     }});
    for (int x_rows : {7, 1})
        cases.push_back({"add/F32/7x576_plus_" + shape(x_rows, 576), Op::add, GgmlType::F32, 1e-14, 1e-14, [x_rows](Backend& be) {
                             const auto y = randn(7 * 576, 74), x = randn(static_cast<size_t>(x_rows) * 576, 75);
                             const Tensor yt = put(be, y, 7, 576), xt = put(be, x, x_rows, 576);
                             be.add(yt, xt);
                             std::vector<double> ref = widen(y), xd = widen(x);
                             ref::add_rows<double>(ref.data(), xd.data(), 7, static_cast<size_t>(x_rows), 576);
                             return compare(get(be, yt), ref);
                         }});
}

void add_top_k_cases(std::vector<OpCase>& cases) {
    for (int k : {1, 40})
        for (int64_t n : {49152, 50257})
            cases.push_back({"top_k/F32/vocab" + std::to_string(n) + "_k" + std::to_string(k), Op::top_k, GgmlType::F32, 1e-14, 1e-14, [k, n](Backend& be) {
                                 auto l = randn(static_cast<size_t>(n), 81, 4.0f);
                                 // ties at the top: the lower id must come first
                                 l[n - 1] = l[7] = 30.0f;
                                 l[123] = l[45000] = 29.0f;
                                 const Tensor lt = put(be, l, 1, n);
                                 const TopK got = be.top_k(lt, k, true);
                                 std::vector<int32_t> idx(n);
                                 std::iota(idx.begin(), idx.end(), 0);
                                 std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
                                 double mx = l[idx[0]], s = 0;
                                 for (float v : l) s += std::exp(static_cast<double>(v) - mx);
                                 OpResult r = compare({static_cast<float>(got.log_norm)}, {mx + std::log(s)});
                                 r.exact_ids = got.ids == std::vector<int32_t>(idx.begin(), idx.begin() + k);
                                 std::vector<double> ref_logits;
                                 for (int i = 0; i < k; ++i) ref_logits.push_back(l[idx[i]]);
                                 const OpResult lr = compare(got.logits, ref_logits);
                                 r.nmse = std::max(r.nmse, lr.nmse);
                                 r.compared += lr.compared;
                                 return r;
                             }});
}

// The fused head (W hidden, then top-k and log-sum-exp in one op) on the head formats, vocabularies that are and are
// not multiples of the CUDA kernel's 128-row tile, k = 1 and 40 (and k above the tile, k = the vocabulary). Rows 7 and
// n - 1 are the same bytes, aligned with the hidden state so that they are the top two with equal logits (the lower id
// must come first, across tiles), and rows 123 and n - 2 the next pair. Held to: the double reference (the returned
// logits, the reference logits of the returned ids against the reference's own top k, the log-normalizer), and
// exactly to linear + top_k on the same backend (ids and logit bits), which is what the op promises.
void add_head_top_k_cases(std::vector<OpCase>& cases) {
    struct S { int64_t n, d; int k; };
    std::vector<std::pair<GgmlType, S>> list;
    for (GgmlType type : kWeightTypes)
        for (S s : {S{1000, 160, 1}, S{1000, 160, 40}, S{50257, 768, 1}, S{50257, 768, 40}}) list.push_back({type, s});
    for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_1, GgmlType::BF16}) list.push_back({type, S{49152, 576, 40}}); // SmolLM2's head
    // the preset types (Q6_K: llama.cpp's Q4_K_M and Q5_K_M heads), random rows without planted ties
    for (GgmlType type : {GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_NL,
                          GgmlType::IQ4_XS})
        list.push_back({type, S{1000, 256, 40}});
    list.push_back({GgmlType::Q6_K, S{50257, 768, 40}});
    // k above the tile, k = the vocabulary, one row; and over 2048 tiles (the CUDA merge's unsorted path)
    for (S s : {S{1000, 160, 300}, S{1000, 160, 1000}, S{129, 96, 129}, S{1, 32, 1}, S{300000, 32, 40}}) list.push_back({GgmlType::F32, s});
    for (const auto& [type, s] : list) {
        const double tol = 1e-11, tol_q8 = quantized(type, 1) ? 5e-4 : tol;
        cases.push_back({std::string("head_top_k/") + ggml_type_name(type) + "/vocab" + std::to_string(s.n) + "_d" + std::to_string(s.d) + "_k" +
                             std::to_string(s.k),
                         Op::head_top_k, type, tol, tol_q8, [type, s](Backend& be) {
                             const int64_t n = s.n, d = s.d;
                             const auto x = randn(static_cast<size_t>(d), 91);
                             auto wf = randn(static_cast<size_t>(n * d), 92 + n, 0.05f);
                             auto plant = [&](int64_t row, float scale) {
                                 for (int64_t c = 0; c < d; ++c) wf[row * d + c] = scale * x[c] / static_cast<float>(d);
                             };
                             const bool planted = n >= 130 && !is_preset_type(type);
                             if (planted) {
                                 plant(7, 8.0f), plant(n - 1, 8.0f);
                                 plant(123, 6.0f), plant(n - 2, 6.0f);
                             }
                             const HostMatrix w = is_preset_type(type) ? make_preset_matrix(type, n, d, 92 + n) : make_matrix_from(type, n, d, wf);
                             Tensor storage;
                             const Matrix dw = place(be, w, storage);
                             const Tensor xt = put(be, x, 1, d);
                             const TopK got = be.head_top_k(dw, xt, s.k, true);
                             // the same backend's unfused pair
                             const Tensor lt = be.alloc(GgmlType::F32, 1, n);
                             be.linear(dw, nullptr, xt, lt);
                             const TopK pair = be.top_k(lt, s.k, true);
                             // the double reference
                             std::vector<double> ref(static_cast<size_t>(n));
                             for (int64_t r = 0; r < n; ++r) {
                                 double acc = 0;
                                 for (int64_t c = 0; c < d; ++c) acc += static_cast<double>(w.values[r * d + c]) * x[c];
                                 ref[r] = acc;
                             }
                             std::vector<int32_t> idx(static_cast<size_t>(n));
                             std::iota(idx.begin(), idx.end(), 0);
                             std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return ref[a] > ref[b]; });
                             double s_exp = 0;
                             for (double v : ref) s_exp += std::exp(v - ref[idx[0]]);
                             // compared values: the returned logits, the reference logits of the returned ids against the
                             // reference's top k (a swap of near-equal logits moves these by the gap only), log Z
                             std::vector<float> got_v;
                             std::vector<double> ref_v;
                             const bool sizes_ok = got.ids.size() == static_cast<size_t>(s.k) && got.logits.size() == static_cast<size_t>(s.k);
                             for (int i = 0; sizes_ok && i < s.k; ++i) {
                                 const int32_t id = got.ids[i];
                                 if (id < 0 || id >= n) return OpResult{INFINITY, INFINITY, false, 1};
                                 got_v.push_back(got.logits[i]);
                                 ref_v.push_back(ref[id]);
                                 got_v.push_back(static_cast<float>(ref[id]));
                                 ref_v.push_back(ref[idx[i]]);
                             }
                             got_v.push_back(static_cast<float>(got.log_norm));
                             ref_v.push_back(ref[idx[0]] + std::log(s_exp));
                             OpResult r = sizes_ok ? compare(got_v, ref_v) : OpResult{INFINITY, INFINITY, false, 1};
                             r.exact_ids = sizes_ok && got.ids == pair.ids && got.logits == pair.logits &&
                                           std::fabs(got.log_norm - pair.log_norm) <= 1e-12 * std::max(1.0, std::fabs(pair.log_norm));
                             if (planted && sizes_ok) r.exact_ids = r.exact_ids && got.ids[0] == 7 && (s.k < 2 || got.ids[1] == n - 1);
                             return r;
                         }});
    }
}

} // namespace

std::vector<OpCase> op_cases() {
    std::vector<OpCase> c;
    add_get_rows_cases(c);
    add_linear_cases(c);
    add_norm_cases(c);
    add_rope_cases(c);
    add_copy_rows_cases(c);
    add_rope_store_kv_cases(c);
    add_qkv_rope_store_cases(c);
    add_attention_cases(c);
    add_block_selection_cases(c);
    add_mask_rebuilt_case(c);
    add_split_attention_repeat_case(c);
    add_summarize_keys_cases(c);
    add_activation_cases(c);
    add_top_k_cases(c);
    add_head_top_k_cases(c);
    add_sample_cases(c);
    return c;
}

} // namespace winnow::test
