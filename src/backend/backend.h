#pragma once
// The op set the decoder runs on. The CPU backend is the reference; a CUDA backend implements the same
// interface (llm.c's discipline: every GPU kernel has a CPU twin that is its test oracle).
// Activations are fp32 arrays owned by the caller, laid out [n_tokens][dim].
#include <cstddef>
#include <cstdint>
#include <memory>

#include "model/model_config.h"
#include "model/weights.h"

namespace winnow {

class Backend {
public:
    virtual ~Backend() = default;
    virtual const char* name() const = 0;

    // y[t][r] = W.row(r) . x[t] (+ bias[r]); x is [n_tokens][W.cols], y is [n_tokens][W.rows]. fp32 accumulation.
    virtual void linear(const Matrix& w, const Vector* bias, const float* x, float* y, int n_tokens) = 0;
    // out[i] = table.row(ids[i]) decoded to fp32.
    virtual void get_rows(const Matrix& table, const int32_t* ids, int n, float* out) = 0;
    virtual void rms_norm(const float* x, const Vector& w, float eps, float* y, int n_tokens, int dim) = 0;
    virtual void layer_norm(const float* x, const Vector& w, const Vector& b, float eps, float* y, int n_tokens, int dim) = 0;
    // Rotates the first rope_dim dims of each head of x ([n_tokens][n_heads * head_dim]) for positions pos0 + t.
    virtual void rope(float* x, int n_tokens, int n_heads, int head_dim, int rope_dim, int pos0, float base, RopeStyle style) = 0;
    // Causal attention of the n_tokens queries at positions pos0.. over cache rows [0, pos0 + t]. Caches are
    // [position][n_head_kv * head_dim]; GQA maps query head h to kv head h / (n_head / n_head_kv).
    virtual void attention(const float* q, const float* k_cache, const float* v_cache, int pos0, int n_tokens, int n_head,
                           int n_head_kv, int head_dim, float* out) = 0;
    virtual void gelu_tanh(float* x, size_t n) = 0;
    // out = silu(gate) * up
    virtual void swiglu(const float* gate, const float* up, float* out, size_t n) = 0;
    // y += x
    virtual void add(float* y, const float* x, size_t n) = 0;
};

// How the CPU backend multiplies activations with quantized (Q4_0/Q4_1/Q8_0) weights:
//   f32: activations stay fp32, weights are decoded in registers (the reference; closest to exact math);
//   q8:  activations are quantized per 32-block to 8 bits and dotted with integer SIMD, as llama.cpp does
//        (faster, and numerically what llama.cpp computes). Float weights always use the f32 path.
enum class CpuDotMode { f32, q8 };
const char* to_string(CpuDotMode m);

// n_threads <= 0: one per available core.
std::unique_ptr<Backend> make_cpu_backend(int n_threads = 0, CpuDotMode mode = CpuDotMode::f32);

} // namespace winnow
