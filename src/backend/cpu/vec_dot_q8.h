#pragma once
// Integer dot products with activations quantized to 8 bits, the scheme llama.cpp's CPU backend uses, paired per
// weight type as ggml pairs them (its vec_dot_type):
//   - Q4_0, Q5_0, Q8_0, IQ4_NL weights with Q8_0 activations (a scale d per 32 values);
//   - Q4_1, Q5_1 with Q8_1 (d and d*sum(q) per 32);
//   - the K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and IQ4_XS with Q8_K (a float d per 256 values and the sums of each
//     16 quants).
// Faster than the fp32-activation path and numerically what llama.cpp computes; the fp32 path (vec_dot.h) stays the
// reference. The 32-block activations follow ggml's AVX2 quantizer (scale 127/amax, ties to even); Q8_K follows
// ggml's quantize_row_q8_K (scaled by the signed value of largest magnitude to -127, ties to even), bit for bit.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "io/ggml_type.h"

namespace winnow::cpu {

struct BlockQ8_1 { uint16_t d; uint16_t s; int8_t qs[32]; }; // s = fp16(d * sum(qs))
static_assert(sizeof(BlockQ8_1) == 36);
// ggml's block_q8_K: value j = d * qs[j]; bsums[k] = the sum of qs[16k .. 16k + 15]
struct BlockQ8_K { float d; int8_t qs[256]; int16_t bsums[16]; };
static_assert(sizeof(BlockQ8_K) == 292);

// v rounded to the nearest integer, ties to even (_mm256_round_ps, ggml's nearest_int), as an 8-bit quant. Finite
// activations scale into [-127, 127]; an Inf or NaN among them (a diverged model) would not, and is clamped (NaN to 0)
// instead of being converted out of range, which is undefined behaviour.
inline int8_t round_to_q8(float v) {
    const float r = __builtin_nearbyintf(v);
    return r >= 127.0f ? int8_t{127} : r <= -127.0f ? int8_t{-127} : r == r ? static_cast<int8_t>(r) : int8_t{0};
}

// True when weights of this type have an 8-bit-activation dot product (one token, decode).
bool has_q8_path(GgmlType weight_type);
// True when they also have the tiled 8-bit prefill product (gemm_q8). The preset types (Q5_0, Q5_1, the K-quants)
// have none: their prefill decodes weight blocks for sgemm in both dot modes, which is the faster of the two here.
bool has_q8_gemm_path(GgmlType weight_type);
// Whether the type's activations are Q8_1 (d and d*sum per 32) / Q8_K (blocks of 256) rather than Q8_0.
bool uses_q8_1(GgmlType weight_type);
bool uses_q8_k(GgmlType weight_type);
// Bytes of the quantized activation for n values paired with `weight_type`.
size_t q8_activation_bytes(GgmlType weight_type, size_t n);
void quantize_activation_q8(GgmlType weight_type, const float* x, size_t n, uint8_t* out);
// dot(row, x) with x quantized by quantize_activation_q8 for the same type. The Q4_0/Q4_1/Q8_0 cases run in AVX2's
// lanes where the build has AVX2 (gemm_q8's tiles give the same bits); the preset types' are the plain scalar
// reference (vec_dot_q8_preset.cpp) that the one-token kernels (gemm_q8_operands.h) are checked against.
float vec_dot_q8(GgmlType weight_type, const void* row, const uint8_t* xq, size_t n);

// The preset types' halves of the above (vec_dot_q8_preset.cpp).
void quantize_activation_q8_k(const float* x, size_t n, uint8_t* out); // n / 256 BlockQ8_K, as bytes
float vec_dot_q8_preset(GgmlType weight_type, const void* row, const uint8_t* xq, size_t n);

} // namespace winnow::cpu
