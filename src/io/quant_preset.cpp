// Decoders of the preset GGUF weight types: Q5_0, Q5_1, the K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL and IQ4_XS,
// which llama.cpp's common presets (Q4_K_M, Q5_K_M, Q6_K, Q3_K_M, Q2_K, IQ4_XS...) store. Written from ggml's block layouts
// (ggml-common.h); each value is computed as ggml's reference dequantizer computes it, one rounding per fp32 operation
// (the build has -ffp-contract=off), so the results equal gguf-py's numpy decoders bit for bit
// (tests/unit/test_quant.cpp against tests/fixtures/quant_oracle.py).
#include <cstring>

#include "io/quant.h"

namespace winnow {

namespace {

float half(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return fp16_to_fp32(h);
}

// Q5_0 / Q5_1: 32 weights; the low nibbles as in Q4_0 / Q4_1, bit j of the 32-bit qh the fifth bit of weight j.
template <bool with_min>
void decode_q5(const uint8_t* src, float* dst, size_t n) {
    constexpr size_t stride = with_min ? sizeof(BlockQ5_1) : sizeof(BlockQ5_0);
    for (size_t i = 0; i < n / kQuantBlock; ++i) {
        const uint8_t* b = src + i * stride;
        const float d = half(b), m = with_min ? half(b + 2) : 0.0f;
        const uint8_t* qh_at = b + (with_min ? 4 : 2);
        uint32_t qh;
        std::memcpy(&qh, qh_at, 4);
        const uint8_t* qs = qh_at + 4;
        float* y = dst + i * kQuantBlock;
        for (int j = 0; j < 16; ++j) {
            const int lo = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1) << 4);
            const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1) << 4);
            if constexpr (with_min) {
                y[j] = lo * d + m;
                y[j + 16] = hi * d + m;
            } else {
                y[j] = (lo - 16) * d;
                y[j + 16] = (hi - 16) * d;
            }
        }
    }
}

// Q4_K / Q5_K: 256 weights in 8 sub-blocks of 32, x = d * scale_j * q - dmin * min_j. The nibbles of 32 bytes give two
// sub-blocks (low nibbles the first); Q5_K's fifth bits: bit 2k of qh[l] for sub-block 2k's weight l, bit 2k+1 for
// sub-block 2k+1's.
template <bool five>
void decode_q45_k(const uint8_t* src, float* dst, size_t n) {
    constexpr size_t stride = five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
    for (size_t i = 0; i < n / kQuantBlockK; ++i) {
        const uint8_t* b = src + i * stride;
        const float d = half(b), dmin = half(b + 2);
        const uint8_t* scales = b + 4;
        const uint8_t* qh = five ? b + 16 : nullptr;
        const uint8_t* qs = b + (five ? 48 : 16);
        float* y = dst + i * kQuantBlockK;
        for (int pair = 0; pair < 4; ++pair, qs += 32, y += 64) {
            int sc0, m0, sc1, m1;
            k_scale_min(2 * pair, scales, sc0, m0);
            k_scale_min(2 * pair + 1, scales, sc1, m1);
            const float d0 = d * sc0, min0 = dmin * m0, d1 = d * sc1, min1 = dmin * m1;
            for (int l = 0; l < 32; ++l) {
                int q0 = qs[l] & 0x0f, q1 = qs[l] >> 4;
                if constexpr (five) {
                    q0 += ((qh[l] >> (2 * pair)) & 1) << 4;
                    q1 += ((qh[l] >> (2 * pair + 1)) & 1) << 4;
                }
                y[l] = d0 * q0 - min0;
                y[l + 32] = d1 * q1 - min1;
            }
        }
    }
}

// Q6_K: 256 weights in 16 sub-blocks of 16 with int8 scales, x = d * scale * (q - 32), q 6 bits: 4 in ql, 2 in qh.
// Each half of 128 weights takes 64 bytes of ql, 32 of qh and 8 scales; weight l + 32 * k of a half (k = 0..3) has
// its low bits in the low (k < 2) or high (k >= 2) nibble of ql[l + 32 * (k & 1)] and its high bits at bits 2k, 2k + 1
// of qh[l].
void decode_q6_k(const uint8_t* src, float* dst, size_t n) {
    for (size_t i = 0; i < n / kQuantBlockK; ++i) {
        const uint8_t* b = src + i * sizeof(BlockQ6_K);
        const uint8_t* ql = b;
        const uint8_t* qh = b + 128;
        const auto* sc = reinterpret_cast<const int8_t*>(b + 192);
        const float d = half(b + 208);
        float* y = dst + i * kQuantBlockK;
        for (int h = 0; h < 2; ++h, ql += 64, qh += 32, sc += 8, y += 128)
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int q0 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q1 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * sc[is] * q0;
                y[l + 32] = d * sc[is + 2] * q1;
                y[l + 64] = d * sc[is + 4] * q2;
                y[l + 96] = d * sc[is + 6] * q3;
            }
    }
}

// Q2_K / Q3_K: 16 sub-blocks of 16 with 2-bit quants (io/quant.h has the layouts). Element 128 h + 32 j + l takes
// bits 2j, 2j + 1 of qs[32 h + l]; Q3_K's third bit, bit 4h + j of hmask[l], set means q, clear q - 4.
// Q2_K: x = (d * (sc & 15)) * q - dmin * (sc >> 4).
void decode_q2_k(const uint8_t* src, float* dst, size_t n) {
    for (size_t i = 0; i < n / kQuantBlockK; ++i) {
        const uint8_t* b = src + i * sizeof(BlockQ2_K);
        const uint8_t* sc = b;
        const uint8_t* qs = b + 16;
        const float d = half(b + 80), dmin = half(b + 82);
        float* y = dst + i * kQuantBlockK;
        for (int j = 0; j < 16; ++j) {
            const float dl = d * static_cast<float>(sc[j] & 0x0f), ml = dmin * static_cast<float>(sc[j] >> 4);
            for (int e = 16 * j; e < 16 * j + 16; ++e) y[e] = dl * static_cast<float>(k_2bit_field(qs, e)) - ml;
        }
    }
}

// Q3_K: x = (d * (s - 32)) * (q - 4 or q).
void decode_q3_k(const uint8_t* src, float* dst, size_t n) {
    for (size_t i = 0; i < n / kQuantBlockK; ++i) {
        const uint8_t* b = src + i * sizeof(BlockQ3_K);
        const uint8_t* hmask = b;
        const uint8_t* qs = b + 32;
        const uint8_t* scales = b + 96;
        const float d = half(b + 108);
        float* y = dst + i * kQuantBlockK;
        for (int j = 0; j < 16; ++j) {
            const float dl = d * static_cast<float>(q3_k_scale(j, scales) - 32);
            for (int e = 16 * j; e < 16 * j + 16; ++e)
                y[e] = dl * static_cast<float>(k_2bit_field(qs, e) - (q3_k_high_bit(hmask, e) ? 0 : 4));
        }
    }
}

// 32 IQ4 weights (quant bytes at qs) with the scale d: y = d * kIq4nlValues[q], one product per weight as ggml's reference.
void decode_iq4_group(float d, const uint8_t* qs, float* y) {
    for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(iq4_grid_value(qs, j));
}

// IQ4_NL: x = d * kIq4nlValues[q].
void decode_iq4_nl(const uint8_t* src, float* dst, size_t n) {
    for (size_t i = 0; i < n / kQuantBlock; ++i) {
        const uint8_t* b = src + i * sizeof(BlockIQ4_NL);
        decode_iq4_group(half(b), b + 2, dst + i * kQuantBlock);
    }
}

// IQ4_XS: x = (d * (s - 32)) * kIq4nlValues[q] per sub-block of 32.
void decode_iq4_xs(const uint8_t* src, float* dst, size_t n) {
    for (size_t i = 0; i < n / kQuantBlockK; ++i) {
        const uint8_t* b = src + i * sizeof(BlockIQ4_XS);
        const float d = half(b);
        uint16_t scales_h;
        std::memcpy(&scales_h, b + 2, 2);
        for (int j = 0; j < 8; ++j)
            decode_iq4_group(d * static_cast<float>(iq4_xs_scale(j, scales_h, b + 4) - 32), b + 8 + 16 * j, dst + i * kQuantBlockK + 32 * j);
    }
}

} // namespace

bool dequantize_preset(GgmlType type, const void* src, float* dst, size_t n) {
    const auto* s = static_cast<const uint8_t*>(src);
    switch (type) {
    case GgmlType::Q5_0: decode_q5<false>(s, dst, n); return true;
    case GgmlType::Q5_1: decode_q5<true>(s, dst, n); return true;
    case GgmlType::IQ4_NL: decode_iq4_nl(s, dst, n); return true;
    case GgmlType::IQ4_XS: decode_iq4_xs(s, dst, n); return true;
    case GgmlType::Q2_K: decode_q2_k(s, dst, n); return true;
    case GgmlType::Q3_K: decode_q3_k(s, dst, n); return true;
    case GgmlType::Q4_K: decode_q45_k<false>(s, dst, n); return true;
    case GgmlType::Q5_K: decode_q45_k<true>(s, dst, n); return true;
    case GgmlType::Q6_K: decode_q6_k(s, dst, n); return true;
    default: return false;
    }
}

} // namespace winnow
