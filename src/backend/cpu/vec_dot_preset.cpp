// The f32 dot mode's product for the preset weight types (io/quant.h: Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL,
// IQ4_XS).
//
// Every one of them stores a weight as w = scale * q + offset, with a small integer q and, per sub-block of 16 or 32
// weights, an fp32 scale and offset (ggml's reference decoders compute exactly these two products). So the dot
// product of a row with x is
//   sum over sub-blocks of  scale * (sum q x)  +  offset * (sum x),
// with q decoded to int8 (AVX2: 32 values in a register, the high bits spread with byte shifts and shuffles; else into
// an array a super-block at a time), the q x sums in fp32 lanes, and the sums of x per 32 weights (Q2_K: per 16, its
// sub-block) prepared once per activation (PreparedActivation::block_sums). The result is the decoded row's dot
// product in another summation order.
#include "backend/cpu/vec_dot_preset.h"

#include <algorithm>
#include <cstring>

#include "backend/cpu/simd.h"
#include "io/quant.h"

namespace winnow::cpu {

namespace {

#ifndef WINNOW_AVX2
// The portable path: a super-block decoded into arrays, then multiplied.

// One super-block (256 weights; Q5_0 / Q5_1: 8 blocks of 32) decoded: w[j] = scale[j / len] * q[j] + offset[j / len].
struct Decoded {
    alignas(32) int8_t q[256];
    float scale[16];
    float offset[16]; // 0 where the type has none
    int len;          // weights per sub-block: 16 (Q6_K) or 32
    int subs;         // sub-blocks decoded
};

// Q5_0 / Q5_1: `blocks` blocks of 32 from src; q = the 5-bit value (- 16 for Q5_0).
template <bool with_min>
void decode_q5(const uint8_t* src, int blocks, Decoded& out) {
    constexpr size_t stride = with_min ? sizeof(BlockQ5_1) : sizeof(BlockQ5_0);
    out.len = 32, out.subs = blocks;
    for (int b = 0; b < blocks; ++b) {
        const uint8_t* blk = src + b * stride;
        out.scale[b] = half_at(blk);
        out.offset[b] = with_min ? half_at(blk + 2) : 0.0f;
        const uint8_t* qh_at = blk + (with_min ? 4 : 2);
        uint32_t qh;
        std::memcpy(&qh, qh_at, 4);
        const uint8_t* qs = qh_at + 4;
        int8_t* q = out.q + 32 * b;
        constexpr int bias = with_min ? 0 : 16;
        for (int j = 0; j < 16; ++j) {
            q[j] = static_cast<int8_t>(((qs[j] & 0x0f) | (((qh >> j) & 1) << 4)) - bias);
            q[j + 16] = static_cast<int8_t>(((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - bias);
        }
    }
}

// IQ4_NL: `blocks` blocks of 32 from src; q = the grid value kIq4nlValues[nibble].
void decode_iq4_nl(const uint8_t* src, int blocks, Decoded& out) {
    out.len = 32, out.subs = blocks;
    for (int b = 0; b < blocks; ++b) {
        const uint8_t* blk = src + b * sizeof(BlockIQ4_NL);
        out.scale[b] = half_at(blk), out.offset[b] = 0.0f;
        for (int j = 0; j < 32; ++j) out.q[32 * b + j] = static_cast<int8_t>(iq4_grid_value(blk + 2, j));
    }
}

// IQ4_XS: one super-block, 8 sub-blocks of 32; scale = d * (s - 32), q = the grid value of the nibble.
void decode_iq4_xs(const uint8_t* blk, Decoded& out) {
    out.len = 32, out.subs = 8;
    uint16_t scales_h;
    std::memcpy(&scales_h, blk + 2, 2);
    for (int b = 0; b < 8; ++b) {
        out.scale[b] = half_at(blk) * static_cast<float>(iq4_xs_scale(b, scales_h, blk + 4) - 32), out.offset[b] = 0.0f;
        for (int j = 0; j < 32; ++j) out.q[32 * b + j] = static_cast<int8_t>(iq4_grid_value(blk + 8 + 16 * b, j));
    }
}

// Q4_K / Q5_K: w = (d * sc) * q - dmin * m per sub-block of 32.
template <bool five>
void decode_q45_k(const uint8_t* blk, Decoded& out) {
    out.len = 32, out.subs = 8;
    const float d = half_at(blk), dmin = half_at(blk + 2);
    const uint8_t* scales = blk + 4;
    const uint8_t* qh = blk + 16;
    const uint8_t* qs = blk + (five ? 48 : 16);
    for (int j = 0; j < 8; ++j) {
        int sc, m;
        k_scale_min(j, scales, sc, m);
        out.scale[j] = d * sc;
        out.offset[j] = -(dmin * m);
    }
    for (int pair = 0; pair < 4; ++pair) {
        int8_t* q = out.q + 64 * pair;
        const uint8_t* p = qs + 32 * pair;
        for (int l = 0; l < 32; ++l) {
            q[l] = static_cast<int8_t>(p[l] & 0x0f);
            q[l + 32] = static_cast<int8_t>(p[l] >> 4);
        }
        if constexpr (five)
            for (int l = 0; l < 32; ++l) {
                q[l] = static_cast<int8_t>(q[l] | (((qh[l] >> (2 * pair)) & 1) << 4));
                q[l + 32] = static_cast<int8_t>(q[l + 32] | (((qh[l] >> (2 * pair + 1)) & 1) << 4));
            }
    }
}

// Q6_K: w = (d * sc) * (q - 32) per sub-block of 16.
void decode_q6_k(const uint8_t* blk, Decoded& out) {
    out.len = 16, out.subs = 16;
    const float d = half_at(blk + 208);
    const auto* sc = reinterpret_cast<const int8_t*>(blk + 192);
    for (int j = 0; j < 16; ++j) out.scale[j] = d * sc[j], out.offset[j] = 0.0f;
    for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = blk + 64 * h;
        const uint8_t* qh = blk + 128 + 32 * h;
        int8_t* q = out.q + 128 * h;
        for (int l = 0; l < 32; ++l) {
            q[l] = static_cast<int8_t>(((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32);
            q[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32);
            q[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            q[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

// Q2_K: w = (d * (sc & 15)) * q - dmin * (sc >> 4) per sub-block of 16; Q3_K: w = (d * (s - 32)) * (q - 4 or q).
// Element 128 h + 32 j + l: bits 2j, 2j + 1 of qs[32 h + l] (Q3_K's third bit: bit 4h + j of hmask[l]).
template <bool three>
void decode_q23_k(const uint8_t* blk, Decoded& out) {
    out.len = 16, out.subs = 16;
    const uint8_t* qs = blk + (three ? 32 : 16);
    if constexpr (three) {
        const float d = half_at(blk + 108);
        for (int j = 0; j < 16; ++j) out.scale[j] = d * static_cast<float>(q3_k_scale(j, blk + 96) - 32), out.offset[j] = 0.0f;
    } else {
        const float d = half_at(blk + 80), dmin = half_at(blk + 82);
        for (int j = 0; j < 16; ++j) out.scale[j] = d * static_cast<float>(blk[j] & 0x0f), out.offset[j] = -(dmin * static_cast<float>(blk[j] >> 4));
    }
    for (int e = 0; e < 256; ++e) out.q[e] = static_cast<int8_t>(k_2bit_field(qs, e) - (three && !q3_k_high_bit(blk, e) ? 4 : 0));
}

// sum over the decoded sub-blocks of scale * (sum q x) + offset * (sum x); xsums[k]: the sum of x over the k-th
// sub-block (32 weights; Q2_K's 16), only read where an offset is not 0, so Q6_K, Q3_K and Q5_0 need none.
float decoded_dot(const Decoded& dec, const float* x, const float* xsums) {
    float tail = 0.0f;
    float sum = 0.0f;
    for (int s = 0; s < dec.subs; ++s) {
        float part = 0.0f;
        for (int j = 0; j < dec.len; ++j) part += static_cast<float>(dec.q[s * dec.len + j]) * x[s * dec.len + j];
        sum += dec.scale[s] * part;
    }
    for (int s = 0; s < dec.subs; ++s)
        if (dec.offset[s] != 0.0f) tail += dec.offset[s] * xsums[s];
    return sum + tail;
}
#else
// The AVX2 path: each block's values decoded into registers (32 int8 values) and multiplied at once.

// The 32 fifth bits of a Q5 block (bit j of qh for weight j) as 32 bytes of 0x10 or 0.
inline __m256i fifth_bits(uint32_t qh) {
    const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(qh)), // byte j / 8 of qh in byte j
                                              _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3,
                                                               3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL)); // bit j % 8 in byte j
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit), _mm256_set1_epi8(0x10));
}

// sum q_j x_j over 16 int8 values and 16 fp32 x, in fp32 lanes
inline __m256 dot16(__m128i q, const float* x) {
    const __m256 a = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), _mm256_loadu_ps(x));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8))), _mm256_loadu_ps(x + 8), a);
}

// acc += scale * sum q_j x_j over 32 int8 values q and 32 fp32 x
inline __m256 add_scaled_dot32(__m256 acc, float scale, __m256i q, const float* x) {
    const __m256 part = _mm256_add_ps(dot16(_mm256_castsi256_si128(q), x), dot16(_mm256_extracti128_si256(q, 1), x + 16));
    return _mm256_fmadd_ps(_mm256_set1_ps(scale), part, acc);
}

inline __m256i low_nibbles(__m256i v) { return _mm256_and_si256(v, _mm256_set1_epi8(0x0f)); }
inline __m256i high_nibbles(__m256i v) { return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0f)); }
// bits [k, k + width) of each byte, moved to bit `to` (within the byte: width + to <= 8)
inline __m256i byte_bits(__m256i v, int k, int width, int to) {
    const __m256i field = _mm256_and_si256(_mm256_srli_epi16(v, k), _mm256_set1_epi8(static_cast<char>((1 << width) - 1)));
    return _mm256_slli_epi16(field, to);
}

template <bool with_min>
float q5_row_dot(const uint8_t* row, const float* x, const float* block_sums, size_t blocks) {
    constexpr size_t stride = with_min ? sizeof(BlockQ5_1) : sizeof(BlockQ5_0);
    __m256 acc = _mm256_setzero_ps();
    float tail = 0.0f;
    for (size_t b = 0; b < blocks; ++b) {
        const uint8_t* blk = row + b * stride;
        const uint8_t* qh_at = blk + (with_min ? 4 : 2);
        uint32_t qh;
        std::memcpy(&qh, qh_at, 4);
        const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qh_at + 4));
        const __m128i lo = _mm_and_si128(packed, _mm_set1_epi8(0x0f)), hi = _mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0f));
        __m256i q = _mm256_or_si256(_mm256_set_m128i(hi, lo), fifth_bits(qh));
        if constexpr (!with_min) q = _mm256_sub_epi8(q, _mm256_set1_epi8(16));
        acc = add_scaled_dot32(acc, half_at(blk), q, x + b * kQuantBlock);
        if constexpr (with_min) tail += half_at(blk + 2) * block_sums[b];
    }
    return hsum(acc) + tail;
}

// IQ4_NL / IQ4_XS: 32 nibbles (16 bytes at qs, Q4_0's order) mapped to their grid values by one byte shuffle of
// `table` (kIq4nlValues in both 128-bit lanes).
inline __m256i iq4_grid_values(__m256i table, const uint8_t* qs) {
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m128i lo = _mm_and_si128(packed, _mm_set1_epi8(0x0f)), hi = _mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0f));
    return _mm256_shuffle_epi8(table, _mm256_set_m128i(hi, lo));
}
inline __m256i iq4_table() { return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues))); }

float iq4_nl_row_dot(const uint8_t* row, const float* x, size_t blocks) {
    const __m256i table = iq4_table();
    __m256 acc = _mm256_setzero_ps();
    for (size_t b = 0; b < blocks; ++b) {
        const uint8_t* blk = row + b * sizeof(BlockIQ4_NL);
        acc = add_scaled_dot32(acc, half_at(blk), iq4_grid_values(table, blk + 2), x + b * kQuantBlock);
    }
    return hsum(acc);
}

// IQ4_XS: per sub-block of 32, the scale d * (s - 32) and the grid values as IQ4_NL's.
float iq4_xs_row_dot(const uint8_t* row, const float* x, size_t blocks) {
    const __m256i table = iq4_table();
    __m256 acc = _mm256_setzero_ps();
    for (size_t b = 0; b < blocks; ++b) {
        const uint8_t* blk = row + b * sizeof(BlockIQ4_XS);
        const float d = half_at(blk);
        uint16_t scales_h;
        std::memcpy(&scales_h, blk + 2, 2);
        for (int j = 0; j < 8; ++j)
            acc = add_scaled_dot32(acc, d * static_cast<float>(iq4_xs_scale(j, scales_h, blk + 4) - 32), iq4_grid_values(table, blk + 8 + 16 * j),
                                   x + b * kQuantBlockK + 32 * j);
    }
    return hsum(acc);
}

template <bool five>
float q45_k_row_dot(const uint8_t* row, const float* x, const float* block_sums, size_t blocks) {
    constexpr size_t stride = five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
    __m256 acc = _mm256_setzero_ps();
    float tail = 0.0f;
    for (size_t b = 0; b < blocks; ++b) {
        const uint8_t* blk = row + b * stride;
        const float d = half_at(blk), dmin = half_at(blk + 2);
        const uint8_t* qs = blk + (five ? 48 : 16);
        const __m256i qh = five ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16)) : _mm256_setzero_si256();
        const float* xb = x + b * kQuantBlockK;
        for (int pair = 0; pair < 4; ++pair) {
            int sc0, m0, sc1, m1;
            k_scale_min(2 * pair, blk + 4, sc0, m0);
            k_scale_min(2 * pair + 1, blk + 4, sc1, m1);
            const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * pair));
            __m256i q0 = low_nibbles(packed), q1 = high_nibbles(packed);
            if constexpr (five) {
                q0 = _mm256_or_si256(q0, byte_bits(qh, 2 * pair, 1, 4));
                q1 = _mm256_or_si256(q1, byte_bits(qh, 2 * pair + 1, 1, 4));
            }
            acc = add_scaled_dot32(acc, d * sc0, q0, xb + 64 * pair);
            acc = add_scaled_dot32(acc, d * sc1, q1, xb + 64 * pair + 32);
            const float* sums = block_sums + b * 8 + 2 * pair;
            tail += -(dmin * m0) * sums[0] + -(dmin * m1) * sums[1];
        }
    }
    return hsum(acc) + tail;
}

float q6_k_row_dot(const uint8_t* row, const float* x, size_t blocks) {
    __m256 acc = _mm256_setzero_ps();
    const __m256i bias = _mm256_set1_epi8(32);
    for (size_t b = 0; b < blocks; ++b) {
        const uint8_t* blk = row + b * sizeof(BlockQ6_K);
        const float d = half_at(blk + 208);
        const auto* sc = reinterpret_cast<const int8_t*>(blk + 192);
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = blk + 64 * h;
            const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
            const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
            const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h));
            // weights l, l + 32, l + 64, l + 96 of the half (l = 0..31), each 32 values over two 16-weight sub-blocks
            const __m256i q[4] = {_mm256_sub_epi8(_mm256_or_si256(low_nibbles(a), byte_bits(qh, 0, 2, 4)), bias),
                                  _mm256_sub_epi8(_mm256_or_si256(low_nibbles(c), byte_bits(qh, 2, 2, 4)), bias),
                                  _mm256_sub_epi8(_mm256_or_si256(high_nibbles(a), byte_bits(qh, 4, 2, 4)), bias),
                                  _mm256_sub_epi8(_mm256_or_si256(high_nibbles(c), byte_bits(qh, 6, 2, 4)), bias)};
            const float* xh = x + b * kQuantBlockK + 128 * h;
            const int8_t* sch = sc + 8 * h;
            for (int k = 0; k < 4; ++k) {
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sch[2 * k]), dot16(_mm256_castsi256_si128(q[k]), xh + 32 * k), acc);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sch[2 * k + 1]), dot16(_mm256_extracti128_si256(q[k], 1), xh + 32 * k + 16), acc);
            }
        }
    }
    return hsum(acc);
}

// Q2_K and Q3_K: per half (128 weights) the 32 bytes qs hold 2 bits of weights l, l + 32, l + 64, l + 96 (bit pairs 0,
// 2, 4, 6 of byte l); each 32 weights are two sub-blocks of 16. Q2_K's offsets use x's sums per 16 (block_sums).
template <bool three>
float q23_k_row_dot(const uint8_t* row, const float* x, const float* block_sums, size_t blocks) {
    constexpr size_t stride = three ? sizeof(BlockQ3_K) : sizeof(BlockQ2_K);
    __m256 acc = _mm256_setzero_ps();
    float tail = 0.0f;
    for (size_t b = 0; b < blocks; ++b) {
        const uint8_t* blk = row + b * stride;
        const float* xb = x + b * kQuantBlockK;
        float scale[16];
        if constexpr (three) {
            const float d = half_at(blk + 108);
            for (int j = 0; j < 16; ++j) scale[j] = d * static_cast<float>(q3_k_scale(j, blk + 96) - 32);
        } else {
            const float d = half_at(blk + 80), dmin = half_at(blk + 82);
            const float* sums = block_sums + b * 16;
            for (int j = 0; j < 16; ++j) scale[j] = d * static_cast<float>(blk[j] & 0x0f), tail += -(dmin * static_cast<float>(blk[j] >> 4)) * sums[j];
        }
        const __m256i hmask = three ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk)) : _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + (three ? 32 : 16) + 32 * h));
            for (int j = 0; j < 4; ++j) {
                __m256i q = byte_bits(qs, 2 * j, 2, 0);
                if constexpr (three) q = _mm256_sub_epi8(_mm256_or_si256(q, byte_bits(hmask, 4 * h + j, 1, 2)), _mm256_set1_epi8(4));
                const int sub = 8 * h + 2 * j;
                const float* xs = xb + 16 * sub;
                acc = _mm256_fmadd_ps(_mm256_set1_ps(scale[sub]), dot16(_mm256_castsi256_si128(q), xs), acc);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(scale[sub + 1]), dot16(_mm256_extracti128_si256(q, 1), xs + 16), acc);
            }
        }
    }
    return hsum(acc) + tail;
}
#endif

} // namespace

bool preset_needs_block_sums(GgmlType type) {
    return type == GgmlType::Q5_1 || type == GgmlType::Q2_K || type == GgmlType::Q4_K || type == GgmlType::Q5_K;
}

int preset_block_sum_length(GgmlType type) { return type == GgmlType::Q2_K ? 16 : kQuantBlock; }

float preset_row_dot(GgmlType type, const void* row, const float* x, const float* block_sums, size_t n) {
    const auto* base = static_cast<const uint8_t*>(row);
#ifdef WINNOW_AVX2
    switch (type) {
    case GgmlType::Q5_0: return q5_row_dot<false>(base, x, block_sums, n / kQuantBlock);
    case GgmlType::Q5_1: return q5_row_dot<true>(base, x, block_sums, n / kQuantBlock);
    case GgmlType::Q4_K: return q45_k_row_dot<false>(base, x, block_sums, n / kQuantBlockK);
    case GgmlType::Q5_K: return q45_k_row_dot<true>(base, x, block_sums, n / kQuantBlockK);
    case GgmlType::IQ4_NL: return iq4_nl_row_dot(base, x, n / kQuantBlock);
    case GgmlType::IQ4_XS: return iq4_xs_row_dot(base, x, n / kQuantBlockK);
    case GgmlType::Q2_K: return q23_k_row_dot<false>(base, x, block_sums, n / kQuantBlockK);
    case GgmlType::Q3_K: return q23_k_row_dot<true>(base, x, block_sums, n / kQuantBlockK);
    default: return q6_k_row_dot(base, x, n / kQuantBlockK);
    }
#else
    Decoded dec;
    float s = 0.0f;
    if (type == GgmlType::Q5_0 || type == GgmlType::Q5_1 || type == GgmlType::IQ4_NL) {
        const size_t stride = ggml_row_bytes(type, kQuantBlock), blocks = n / kQuantBlock;
        for (size_t b = 0; b < blocks; b += 8) {
            const int count = static_cast<int>(std::min<size_t>(8, blocks - b));
            if (type == GgmlType::Q5_1) decode_q5<true>(base + b * stride, count, dec);
            else if (type == GgmlType::Q5_0) decode_q5<false>(base + b * stride, count, dec);
            else decode_iq4_nl(base + b * stride, count, dec);
            s += decoded_dot(dec, x + b * kQuantBlock, block_sums ? block_sums + b : nullptr);
        }
        return s;
    }
    const size_t stride = ggml_row_bytes(type, kQuantBlockK);
    const size_t sums_per_block = kQuantBlockK / preset_block_sum_length(type);
    for (size_t b = 0; b < n / kQuantBlockK; ++b) {
        const uint8_t* blk = base + b * stride;
        if (type == GgmlType::Q4_K) decode_q45_k<false>(blk, dec);
        else if (type == GgmlType::Q5_K) decode_q45_k<true>(blk, dec);
        else if (type == GgmlType::Q2_K) decode_q23_k<false>(blk, dec);
        else if (type == GgmlType::Q3_K) decode_q23_k<true>(blk, dec);
        else if (type == GgmlType::IQ4_XS) decode_iq4_xs(blk, dec);
        else decode_q6_k(blk, dec);
        s += decoded_dot(dec, x + b * kQuantBlockK, block_sums ? block_sums + b * sums_per_block : nullptr);
    }
    return s;
#endif
}

} // namespace winnow::cpu
