#pragma once
// Integer dot products with activations quantized per 32-block to 8 bits, the scheme llama.cpp's CPU backend
// uses: Q4_1 weights pair with Q8_1 activations (scale d and d*sum(q)), Q4_0 and Q8_0 weights with Q8_0.
// Faster than the fp32-activation path and numerically what llama.cpp computes; the fp32 path (vec_dot.h)
// stays the reference. Activation quantization follows ggml's AVX2 quantizer (scale 127/amax, ties to even).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "io/ggml_type.h"

namespace winnow::cpu {

struct BlockQ8_1 { uint16_t d; uint16_t s; int8_t qs[32]; }; // s = fp16(d * sum(qs))
static_assert(sizeof(BlockQ8_1) == 36);

// True when weights of this type have an 8-bit-activation dot product.
bool has_q8_path(GgmlType weight_type);
// Bytes of the quantized activation for n values paired with `weight_type`.
size_t q8_activation_bytes(GgmlType weight_type, size_t n);
void quantize_activation_q8(GgmlType weight_type, const float* x, size_t n, uint8_t* out);
float vec_dot_q8(GgmlType weight_type, const void* row, const uint8_t* xq, size_t n);

} // namespace winnow::cpu
