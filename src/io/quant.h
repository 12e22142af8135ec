#pragma once
// Scalar reference codecs for the element types winnow computes with, bit-compatible with ggml's
// reference layouts (ggml-common.h / ggml-quants.c): F16, BF16, Q8_0, Q4_0, Q4_1, and the types that llama.cpp's
// common presets store: Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS, and IQ4_NL, their fallback where 256-weight
// blocks do not fit a row (decoded by io/quant_preset.cpp, encoded by io/quant_encode_preset.cpp).
#include <cstddef>
#include <cstdint>

#include "io/ggml_type.h"

namespace winnow {

constexpr int kQuantBlock = 32;

struct BlockQ8_0 { uint16_t d; int8_t qs[32]; };
struct BlockQ4_0 { uint16_t d; uint8_t qs[16]; };           // weight j: low nibble of qs[j], weight j+16: high nibble
struct BlockQ4_1 { uint16_t d; uint16_t m; uint8_t qs[16]; }; // same nibble order, x = q*d + m
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20);

// Read-only types. Q5_0 / Q5_1: 32 weights, Q4_0 / Q4_1 plus a fifth bit per weight (qh, bit j for weight j).
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ5_1 { uint16_t d; uint16_t m; uint8_t qh[4]; uint8_t qs[16]; };
// K-quants: super-blocks of 256 weights. Q4_K / Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins (12 bytes);
// Q6_K: 16 sub-blocks of 16 with int8 scales.
constexpr int kQuantBlockK = 256;
struct BlockQ4_K { uint16_t d; uint16_t dmin; uint8_t scales[12]; uint8_t qs[128]; };
struct BlockQ5_K { uint16_t d; uint16_t dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
struct BlockQ6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; };
// Q2_K and Q3_K (llama.cpp's Q2_K and Q3_K_S/M/L presets): 16 sub-blocks of 16 with 2-bit quants. Element
// i = 128 h + 32 j + l (h = 0, 1; j = 0..3; l = 0..31) is bits 2j, 2j + 1 of qs[32 h + l] and belongs to sub-block i / 16.
// Q2_K: w = d * (sc & 15) * q - dmin * (sc >> 4), one byte sc per sub-block.
// Q3_K: w = d * (s - 32) * (q - 4 [where bit 4h + j of hmask[l] is clear]), s a 6-bit scale (q3_k_scale).
struct BlockQ2_K { uint8_t scales[16]; uint8_t qs[64]; uint16_t d; uint16_t dmin; };
struct BlockQ3_K { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; };
// Q2_K / Q3_K element e (0..255): its 2-bit field from the block's 64 quant bytes, and (Q3_K) whether its third bit,
// in the 32 hmask bytes, is set (then q is the field, else the field - 4).
inline int k_2bit_field(const uint8_t* qs, int e) { return (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3; }
inline bool q3_k_high_bit(const uint8_t* hmask, int e) { return (hmask[e % 32] >> (4 * (e / 128) + (e % 128) / 32)) & 1; }
// IQ4_NL: 32 weights, x = d * kIq4nlValues[q] with q 4 bits, nibbles as Q4_0's (weight j < 16 in the low nibble of
// qs[j], weight j + 16 in its high nibble): a non-uniform grid that fits Gaussian weights better than Q4_0's.
struct BlockIQ4_NL { uint16_t d; uint8_t qs[16]; };
constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
// The grid value of weight j (0..31) of an IQ4_NL block or IQ4_XS sub-block whose 16 quant bytes are at qs.
inline int iq4_grid_value(const uint8_t* qs, int j) { return kIq4nlValues[j < 16 ? qs[j] & 0x0f : qs[j - 16] >> 4]; }
// IQ4_XS: IQ4_NL's grid in super-blocks of 256, 8 sub-blocks of 32 whose scales are 6-bit steps of one fp16 d:
// x = d * (s - 32) * kIq4nlValues[q], s = iq4_xs_scale. Sub-block j's 16 quant bytes are qs[16 j ..], nibbles as IQ4_NL's.
struct BlockIQ4_XS { uint16_t d; uint16_t scales_h; uint8_t scales_l[4]; uint8_t qs[128]; };
// The 6-bit scale of sub-block j (0..7), 0..63: its low 4 bits in the low (j even) or high nibble of scales_l[j / 2],
// its top 2 bits at bits 2j of scales_h.
inline int iq4_xs_scale(int j, uint16_t scales_h, const uint8_t* scales_l) {
    return ((scales_l[j / 2] >> (4 * (j % 2))) & 0x0f) | (((scales_h >> (2 * j)) & 3) << 4);
}
// The 6-bit scale of sub-block j (0..15) of a Q3_K block, 0..63 (the weight's scale is that minus 32): its low 4 bits
// in the low (j < 8) or high nibble of byte j % 8, its top 2 bits at bits 2 (j / 4) of byte 8 + j % 4.
inline int q3_k_scale(int j, const uint8_t* s) {
    const int low = j < 8 ? s[j] & 0x0f : s[j - 8] >> 4;
    return low | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4);
}
// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block, packed in its 12 scale bytes: sub-blocks 0-3 in
// the low 6 bits of bytes 0-3 (scales) and 4-7 (mins); sub-blocks 4-7 in the nibbles of bytes 8-11 with their top two
// bits in the high bits of bytes 0-7.
inline void k_scale_min(int j, const uint8_t* s, int& sc, int& m) {
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}
static_assert(sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24 && sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 &&
              sizeof(BlockQ6_K) == 210 && sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 &&
              sizeof(BlockIQ4_NL) == 18 && sizeof(BlockIQ4_XS) == 136);

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
// dequantize_row for the preset types (Q5_0, Q5_1, Q2_K ... Q6_K, IQ4_NL, IQ4_XS): false for any other type.
bool dequantize_preset(GgmlType type, const void* src, float* dst, size_t n);
// (is_preset_type, io/ggml_type.h, says whether a type is one of those.)
// Encode n fp32 values (a multiple of the type's block size, all finite) as `type`: F32, F16, BF16, Q8_0, Q4_0, Q4_1
// as ggml's reference quantizer does, and the preset types through quantize_preset.
void quantize_row_ref(GgmlType type, const float* src, void* dst, size_t n);
// quantize_row_ref for the preset types: Q5_0 / Q5_1 as ggml's reference rounding; IQ4_NL by a search of the block's
// scale over its grid, IQ4_XS the same per sub-block and then 6-bit sub-block scales; the K-quants by a weighted
// least-squares search of each sub-block's scale (and min), then 6- or 8-bit scales per super-block
// (io/quant_encode_preset.cpp says how). False for any other type.
bool quantize_preset(GgmlType type, const float* src, void* dst, size_t n);

} // namespace winnow
