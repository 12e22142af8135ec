#pragma once
// Prefill matrix products on the CPU: Y = X · Wᵀ (+ b) for a batch of tokens, with each weight block decoded once
// and reused across many tokens (decode, one token, stays with the per-row dot products of vec_dot*.h).
//   X: n_tokens × w.cols fp32, row-major; Y: n_tokens × w.rows fp32, row-major (token-major, as the decoder's
//   activations); b: w.rows or null. Threads split the weight rows.
#include <cstdint>
#include <vector>

#include "model/weights.h"

namespace winnow::cpu {

// fp32 mode: a block of weight rows is decoded to fp32 (any stored type) and multiplied with OpenBLAS sgemm
// (single-threaded inside each of our OpenMP threads). Same fp32 arithmetic as the per-row path, another order.
void gemm_f32(const Matrix& w, const float* bias, const float* x, int n_tokens, float* y, int n_threads);

// Scratch reused across calls: the unpacked weights and the quantized activations of one product.
struct GemmQ8Scratch {
    std::vector<uint8_t> wq; // weight quants as bytes (4-bit types: 0..15 in activation order; Q8_0: as stored)
    std::vector<float> wd, wm; // per weight block: scale, offset (Q4_1: m; Q4_0: -8 d; Q8_0: unused)
    std::vector<int8_t> xq;    // activation quants, n_tokens × cols
    std::vector<float> xd, xs; // per activation block: scale d and d · sum(q), as llama.cpp stores them (fp16-rounded)
    std::vector<int32_t> xsum;    // per activation block: sum(q) (one-token product)
    std::vector<uint8_t> xblocks; // one token's activation in vec_dot_q8's block format
};

// q8 mode: activations quantized to 8 bits per 32-block exactly as vec_dot_q8.h does, integer dot products in
// register tiles of weight rows × tokens (AVX-512 VNNI where the CPU has it, else AVX2, else scalar; chosen at run
// time). Weight types: those with cpu::has_q8_gemm_path (Q4_0, Q4_1, Q8_0).
void gemm_q8(const Matrix& w, const float* bias, const float* x, int n_tokens, float* y, int n_threads, GemmQ8Scratch& scratch);

// q8 mode, one token (decode): the weights are read in their stored blocks (packing them would be another pass over
// memory per token), 8 blocks' scales applied at a time; the same kernel choice as gemm_q8 (scalar: vec_dot_q8).
// Weight types: those with cpu::has_q8_path, the preset types included (Q5_0 and Q5_1 in the 8-block rows; the
// K-quants and IQ4_XS against Q8_K activations in super-block rows, gemv_q8k_avx2.cpp, on both SIMD choices; IQ4_NL in
// the 8-block rows).
void gemv_q8(const Matrix& w, const float* bias, const float* x, float* y, int n_threads, GemmQ8Scratch& scratch);

// The kernels gemm_q8 can choose on this CPU, and a way to force one (tests compare every available path).
enum class GemmQ8Kernel { automatic, scalar, avx2, avx512_vnni };
bool gemm_q8_kernel_available(GemmQ8Kernel k);
const char* gemm_q8_kernel_name(GemmQ8Kernel k);
GemmQ8Kernel gemm_q8_kernel_in_use(); // what `automatic` resolves to
void gemm_q8_force_kernel(GemmQ8Kernel k); // automatic restores the default; throws if unavailable

} // namespace winnow::cpu
