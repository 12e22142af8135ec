#pragma once
// Scalar reference codecs for the element types winnow computes with, bit-compatible with ggml's
// reference layouts (ggml-common.h / ggml-quants.c): F16, BF16, Q8_0, Q4_0, Q4_1.
#include <cstddef>
#include <cstdint>

#include "io/ggml_type.h"

namespace winnow {

constexpr int kQuantBlock = 32;

struct BlockQ8_0 { uint16_t d; int8_t qs[32]; };
struct BlockQ4_0 { uint16_t d; uint8_t qs[16]; };           // weight j: low nibble of qs[j], weight j+16: high nibble
struct BlockQ4_1 { uint16_t d; uint16_t m; uint8_t qs[16]; }; // same nibble order, x = q*d + m
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20);

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);  // round to nearest even, like F16C
inline float bf16_to_fp32(uint16_t h) {
    uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
}
uint16_t fp32_to_bf16(float f);  // round to nearest even; NaN stays a (quiet) NaN

// Decode n elements (a multiple of the type's block size) of `type` at src into fp32.
void dequantize_row(GgmlType type, const void* src, float* dst, size_t n);
// Encode n fp32 values with ggml's reference quantizer (F16, BF16, Q8_0, Q4_0, Q4_1).
void quantize_row_ref(GgmlType type, const float* src, void* dst, size_t n);

} // namespace winnow
