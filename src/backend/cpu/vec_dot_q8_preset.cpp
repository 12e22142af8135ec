// The 8-bit-activation products of the preset weight types (Q5_0, Q5_1, Q2_K ... Q6_K, IQ4_NL, IQ4_XS), written plainly: the
// reference that the one-token SIMD kernels (gemv_q8_row.inc, gemv_q8k_avx2.cpp) are tested against, and the path of
// CPUs without AVX2. Every weight is scale * q + offset with a small integer q; with the activation x = dx * qx the
// integer sums of q * qx are exact, so per block (or super-block) only the scales are applied in floats:
//   Q5_0: (d * dx) * sum (q - 16) qx                      (Q8_0 activations)
//   Q5_1: (d * dx) * sum q qx + m * s_x                  (Q8_1: s_x = dx * sum qx, rounded to fp16 as ggml stores it)
//   Q4_K, Q5_K: (d * dx) * sum_j sc_j (q qx)_j - (dmin * dx) * sum_j m_j (sum qx)_j    over 8 sub-blocks of 32
//   Q6_K: (d * dx) * sum_j sc_j (sum (q - 32) qx)_j                                     over 16 sub-blocks of 16
//   Q2_K: (d * dx) * sum_j (sc_j & 15) (q qx)_j - (dmin * dx) * sum_j (sc_j >> 4) (sum qx)_j   over 16 of 16
//   Q3_K: (d * dx) * sum_j (s_j - 32) (sum q qx)_j, q = 2 bits - 4 or 2 bits                 over 16 of 16
//   IQ4_NL: (d * dx) * sum value[q] qx                  (Q8_0 activations)
//   IQ4_XS: (d * dx) * sum_j (s_j - 32) (sum value[q] qx)_j                                    over 8 of 32
// which is what ggml's vec_dot_<type>_q8_<x> compute, in another order of the float additions.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/simd.h"
#include "backend/cpu/vec_dot_q8.h"
#include "io/quant.h"
#include "winnow/error.h"

namespace winnow::cpu {

namespace {

// The 5-bit value of weight j (0..31) of a Q5_0 / Q5_1 block: its nibble and bit j of qh.
inline int q5_value(const uint8_t* qs, uint32_t qh, int j) {
    const int nibble = j < 16 ? (qs[j] & 0x0f) : (qs[j - 16] >> 4);
    return nibble | static_cast<int>(((qh >> j) & 1u) << 4);
}

template <bool with_min>
float q5_dot(const uint8_t* row, const uint8_t* xq, size_t blocks) {
    constexpr size_t wstride = with_min ? sizeof(BlockQ5_1) : sizeof(BlockQ5_0);
    constexpr size_t xstride = with_min ? sizeof(BlockQ8_1) : sizeof(BlockQ8_0);
    float s = 0.0f;
    for (size_t b = 0; b < blocks; ++b) {
        const uint8_t* w = row + b * wstride;
        const uint8_t* x = xq + b * xstride;
        uint32_t qh;
        std::memcpy(&qh, w + (with_min ? 4 : 2), 4);
        const uint8_t* qs = w + (with_min ? 8 : 6);
        const auto* qx = reinterpret_cast<const int8_t*>(x + (with_min ? 4 : 2));
        int sumi = 0;
        for (int j = 0; j < 32; ++j) sumi += (q5_value(qs, qh, j) - (with_min ? 0 : 16)) * qx[j];
        s += (half_at(w) * half_at(x)) * static_cast<float>(sumi);
        if constexpr (with_min) s += half_at(w + 2) * half_at(x + 2);
    }
    return s;
}

// Super-block b of a Q8_K activation held in bytes, copied out (no BlockQ8_K lvalue over another type's storage)
inline BlockQ8_K q8k_block(const uint8_t* xq, size_t b) {
    BlockQ8_K x;
    std::memcpy(&x, xq + b * sizeof(BlockQ8_K), sizeof(BlockQ8_K));
    return x;
}

// q of weight l (0..31) of sub-block j (0..7) of a Q4_K / Q5_K super-block: sub-blocks 2p and 2p + 1 share the 32
// bytes qs[32p ..] (low and high nibbles); Q5_K's fifth bit of sub-block j is bit j of qh[l].
template <bool five>
inline int q45k_value(const uint8_t* blk, int j, int l) {
    const uint8_t* qs = blk + (five ? 48 : 16);
    int q = (qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0x0f;
    if constexpr (five) q |= ((blk[16 + l] >> j) & 1) << 4;
    return q;
}

template <bool five>
float q45k_dot(const uint8_t* row, const uint8_t* xq, size_t blocks) {
    constexpr size_t stride = five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
    float s = 0.0f;
    for (size_t b = 0; b < blocks; ++b) {
        const uint8_t* blk = row + b * stride;
        const BlockQ8_K xb = q8k_block(xq, b);
        int scaled = 0, offsets = 0; // sum_j sc_j (q qx)_j and sum_j m_j (sum qx)_j, both exact
        for (int j = 0; j < 8; ++j) {
            int sc, m;
            k_scale_min(j, blk + 4, sc, m);
            int sumi = 0;
            for (int l = 0; l < 32; ++l) sumi += q45k_value<five>(blk, j, l) * xb.qs[32 * j + l];
            scaled += sc * sumi;
            offsets += m * (xb.bsums[2 * j] + xb.bsums[2 * j + 1]);
        }
        const float dx = xb.d;
        s += (half_at(blk) * dx) * static_cast<float>(scaled) - (half_at(blk + 2) * dx) * static_cast<float>(offsets);
    }
    return s;
}

// q - 32 of weight i (0..255) of a Q6_K super-block: each half of 128 weights takes its low 4 bits from 64 bytes of
// ql (weights l and l + 64 of the half share byte l: low and high nibble, l < 64) and its top 2 bits from 32 bytes of
// qh (weights l, l + 32, l + 64, l + 96 in bit pairs 0, 2, 4, 6 of byte l).
inline int q6k_value(const uint8_t* blk, int i) {
    const int h = i / 128, k = i % 128;
    const uint8_t* ql = blk + 64 * h;
    const uint8_t* qh = blk + 128 + 32 * h;
    const int low = (ql[k % 64] >> (4 * (k / 64))) & 0x0f;
    const int high = (qh[k % 32] >> (2 * (k / 32))) & 3;
    return (low | (high << 4)) - 32;
}

float q6k_dot(const uint8_t* row, const uint8_t* xq, size_t blocks) {
    float s = 0.0f;
    for (size_t b = 0; b < blocks; ++b) {
        const uint8_t* blk = row + b * sizeof(BlockQ6_K);
        const BlockQ8_K xb = q8k_block(xq, b);
        const auto* sc = reinterpret_cast<const int8_t*>(blk + 192);
        int scaled = 0;
        for (int j = 0; j < 16; ++j) {
            int sumi = 0;
            for (int l = 0; l < 16; ++l) sumi += q6k_value(blk, 16 * j + l) * xb.qs[16 * j + l];
            scaled += sc[j] * sumi;
        }
        s += (half_at(blk + 208) * xb.d) * static_cast<float>(scaled);
    }
    return s;
}

// q of Q2_K / Q3_K element e (0..255): its 2-bit field; Q3_K's less 4 where its third bit (hmask) is clear.
template <bool three>
inline int q23k_value(const uint8_t* blk, int e) {
    if constexpr (three) return k_2bit_field(blk + 32, e) - (q3_k_high_bit(blk, e) ? 0 : 4);
    return k_2bit_field(blk + 16, e);
}

template <bool three>
float q23k_dot(const uint8_t* row, const uint8_t* xq, size_t blocks) {
    constexpr size_t stride = three ? sizeof(BlockQ3_K) : sizeof(BlockQ2_K);
    float s = 0.0f;
    for (size_t b = 0; b < blocks; ++b) {
        const uint8_t* blk = row + b * stride;
        const BlockQ8_K xb = q8k_block(xq, b);
        int scaled = 0, offsets = 0; // both exact
        for (int j = 0; j < 16; ++j) {
            int sumi = 0;
            for (int l = 0; l < 16; ++l) sumi += q23k_value<three>(blk, 16 * j + l) * xb.qs[16 * j + l];
            if constexpr (three) {
                scaled += (q3_k_scale(j, blk + 96) - 32) * sumi;
            } else {
                scaled += (blk[j] & 0x0f) * sumi;
                offsets += (blk[j] >> 4) * xb.bsums[j];
            }
        }
        if constexpr (three) s += (half_at(blk + 108) * xb.d) * static_cast<float>(scaled);
        else s += (half_at(blk + 80) * xb.d) * static_cast<float>(scaled) - (half_at(blk + 82) * xb.d) * static_cast<float>(offsets);
    }
    return s;
}

// sum value[q] qx over 32 IQ4 weights (quant bytes at qs) and 32 activation quants, exact.
int iq4_group_dot(const uint8_t* qs, const int8_t* qx) {
    int sum = 0;
    for (int j = 0; j < 32; ++j) sum += iq4_grid_value(qs, j) * qx[j];
    return sum;
}

// IQ4_NL with Q8_0: (d * dx) * sum value[q] qx per block of 32.
float iq4_nl_dot(const uint8_t* row, const uint8_t* xq, size_t blocks) {
    float s = 0.0f;
    for (size_t b = 0; b < blocks; ++b) {
        const uint8_t* w = row + b * sizeof(BlockIQ4_NL);
        const uint8_t* x = xq + b * sizeof(BlockQ8_0);
        s += (half_at(w) * half_at(x)) * static_cast<float>(iq4_group_dot(w + 2, reinterpret_cast<const int8_t*>(x + 2)));
    }
    return s;
}

// IQ4_XS with Q8_K: (d * dx) * sum_j (s_j - 32) (sum value[q] qx)_j, the integer sum exact (at most 8 * 32 * 32 * 127^2).
float iq4_xs_dot(const uint8_t* row, const uint8_t* xq, size_t blocks) {
    float s = 0.0f;
    for (size_t b = 0; b < blocks; ++b) {
        const uint8_t* w = row + b * sizeof(BlockIQ4_XS);
        const BlockQ8_K xb = q8k_block(xq, b);
        uint16_t scales_h;
        std::memcpy(&scales_h, w + 2, 2);
        int sumi = 0;
        for (int j = 0; j < 8; ++j) sumi += (iq4_xs_scale(j, scales_h, w + 4) - 32) * iq4_group_dot(w + 8 + 16 * j, xb.qs + 32 * j);
        s += (half_at(w) * xb.d) * static_cast<float>(sumi);
    }
    return s;
}

} // namespace

void quantize_activation_q8_k(const float* x, size_t n, uint8_t* out) {
    for (size_t b = 0; b < n / kQuantBlockK; ++b, x += kQuantBlockK) {
        BlockQ8_K y;
        float amax = 0.0f, max = 0.0f; // the largest magnitude and its signed value (the first, on ties)
        for (int j = 0; j < kQuantBlockK; ++j)
            if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), max = x[j];
        if (amax == 0.0f) {
            std::memset(out + b * sizeof(BlockQ8_K), 0, sizeof(BlockQ8_K));
            continue;
        }
        const float iscale = -127.0f / max; // ggml scales to -127 (not +127): the sign of d follows -max
        for (int j = 0; j < kQuantBlockK; ++j) y.qs[j] = round_to_q8(iscale * x[j]); // ggml: min(127, nearest_int(.))
        for (int k = 0; k < kQuantBlockK / 16; ++k) {
            int sum = 0;
            for (int j = 0; j < 16; ++j) sum += y.qs[16 * k + j];
            y.bsums[k] = static_cast<int16_t>(sum);
        }
        y.d = 1.0f / iscale;
        std::memcpy(out + b * sizeof(BlockQ8_K), &y, sizeof(y));
    }
}

float vec_dot_q8_preset(GgmlType t, const void* row, const uint8_t* xq, size_t n) {
    const auto* w = static_cast<const uint8_t*>(row);
    switch (t) {
    case GgmlType::Q5_0: return q5_dot<false>(w, xq, n / kQuantBlock);
    case GgmlType::Q5_1: return q5_dot<true>(w, xq, n / kQuantBlock);
    case GgmlType::Q4_K: return q45k_dot<false>(w, xq, n / kQuantBlockK);
    case GgmlType::Q5_K: return q45k_dot<true>(w, xq, n / kQuantBlockK);
    case GgmlType::Q6_K: return q6k_dot(w, xq, n / kQuantBlockK);
    case GgmlType::IQ4_NL: return iq4_nl_dot(w, xq, n / kQuantBlock);
    case GgmlType::IQ4_XS: return iq4_xs_dot(w, xq, n / kQuantBlockK);
    case GgmlType::Q2_K: return q23k_dot<false>(w, xq, n / kQuantBlockK);
    case GgmlType::Q3_K: return q23k_dot<true>(w, xq, n / kQuantBlockK);
    default: throw Error(ErrorKind::unsupported, std::string("no 8-bit-activation dot product for ") + ggml_type_name(t));
    }
}

} // namespace winnow::cpu
