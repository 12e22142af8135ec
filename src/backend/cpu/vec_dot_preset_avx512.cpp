// The f32 dot mode's product for the preset weight types (Q5_0, Q5_1, Q4_K, Q5_K, Q6_K: vec_dot_preset.cpp) on
// AVX-512F. Compiled for AVX-512F whatever -march the build uses and chosen at run time with vec_dot's other AVX-512
// kernel (vec_dot_avx512.cpp, whose rules it follows: no shared inline helper, so that nothing compiled here with
// AVX-512 can be the copy the linker keeps for code that runs on an AVX2-only host).
//
// The same sums as the AVX2 kernel, sum over sub-blocks of scale * (sum q x) + offset * (sum x), with each group of
// 16 weights widened once from its 16 bytes to 16 int32 lanes: the nibble (and, for the 5- and 6-bit types, the high
// bits, shifted per lane) masked out in those lanes, converted and multiplied by 16 activations. The AVX2 kernel
// widens 8 at a time, from bytes already decoded in a 256-bit register. Its order of additions differs, so the two
// differ by rounding.
#include "backend/cpu/vec_dot_avx512.h"

#include <immintrin.h>

// GCC 12's false "may be used uninitialized" on the intrinsics' placeholder operand (see vec_dot_avx512.cpp)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <cstring>

#include "io/quant.h"

namespace winnow::cpu {

namespace {

inline float half_value(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

// bytes p[0..16) as 16 int32 lanes
inline __m512i widen(const uint8_t* p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

inline __m512i lanes_and(__m512i v, int mask) { return _mm512_and_si512(v, _mm512_set1_epi32(mask)); }

// sum over 16 lanes of q_j * x_j, as 16 lanes
inline __m512 times_x(__m512i q, const float* x) { return _mm512_mul_ps(_mm512_cvtepi32_ps(q), _mm512_loadu_ps(x)); }

// io/quant.h's k_scale_min, again here: that one is inline, and its copy compiled in this file could be the one the
// linker keeps for every caller (see the top of this file)
void sub_block_scale_min(int j, const uint8_t* s, int& sc, int& m) {
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// 16 lanes of the 2-bit (or 1-bit) field at bit `at` of each lane, moved to bits 4-5
inline __m512i high_bits(__m512i v, int at, int mask) { return _mm512_slli_epi32(lanes_and(_mm512_srli_epi32(v, at), mask), 4); }

// Q5_0 / Q5_1: per block of 32, q = nibble | fifth bit << 4 (Q5_0: minus 16); bit j of qh is weight j's fifth bit.
template <bool with_min>
float q5_row_dot(const uint8_t* row, const float* x, const float* block_sums, size_t blocks) {
    constexpr size_t stride = with_min ? sizeof(BlockQ5_1) : sizeof(BlockQ5_0);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i lane_hi = _mm512_add_epi32(lane, _mm512_set1_epi32(16));
    const __m512i bias = _mm512_set1_epi32(with_min ? 0 : 16);
    __m512 acc = _mm512_setzero_ps();
    float tail = 0.0f;
    for (size_t b = 0; b < blocks; ++b) {
        const uint8_t* blk = row + b * stride;
        const uint8_t* qh_at = blk + (with_min ? 4 : 2);
        uint32_t qh;
        std::memcpy(&qh, qh_at, 4);
        const __m512i qhv = _mm512_set1_epi32(static_cast<int>(qh));
        const __m512i bytes = widen(qh_at + 4); // lane j: weight j (low nibble) and weight j + 16 (high nibble)
        const __m512i lo = _mm512_sub_epi32(_mm512_or_si512(lanes_and(bytes, 0x0f), _mm512_slli_epi32(lanes_and(_mm512_srlv_epi32(qhv, lane), 1), 4)), bias);
        const __m512i hi = _mm512_sub_epi32(_mm512_or_si512(_mm512_srli_epi32(bytes, 4), _mm512_slli_epi32(lanes_and(_mm512_srlv_epi32(qhv, lane_hi), 1), 4)), bias);
        const float* xb = x + b * kQuantBlock;
        const __m512 part = _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), _mm512_loadu_ps(xb + 16), times_x(lo, xb));
        acc = _mm512_fmadd_ps(_mm512_set1_ps(half_value(blk)), part, acc);
        if constexpr (with_min) tail += half_value(blk + 2) * block_sums[b];
    }
    return _mm512_reduce_add_ps(acc) + tail;
}

// Q4_K / Q5_K: per pair of sub-blocks (64 weights), 32 bytes whose low nibbles are sub-block 2p's weights and high
// nibbles sub-block 2p + 1's; Q5_K's fifth bits at bits 2p and 2p + 1 of qh[l].
template <bool five>
float q45_k_row_dot(const uint8_t* row, const float* x, const float* block_sums, size_t blocks) {
    constexpr size_t stride = five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
    __m512 acc = _mm512_setzero_ps();
    float tail = 0.0f;
    for (size_t b = 0; b < blocks; ++b) {
        const uint8_t* blk = row + b * stride;
        const float d = half_value(blk), dmin = half_value(blk + 2);
        const uint8_t* qs = blk + (five ? 48 : 16);
        const float* xb = x + b * kQuantBlockK;
        __m512i qh[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
        if constexpr (five) qh[0] = widen(blk + 16), qh[1] = widen(blk + 32);
        for (int pair = 0; pair < 4; ++pair) {
            int sc0, m0, sc1, m1;
            sub_block_scale_min(2 * pair, blk + 4, sc0, m0);
            sub_block_scale_min(2 * pair + 1, blk + 4, sc1, m1);
            __m512 first = _mm512_setzero_ps(), second = _mm512_setzero_ps();
            for (int half = 0; half < 2; ++half) { // weights l = 16 half ... 16 half + 15 of each sub-block
                const __m512i bytes = widen(qs + 32 * pair + 16 * half);
                __m512i q0 = lanes_and(bytes, 0x0f), q1 = _mm512_srli_epi32(bytes, 4);
                if constexpr (five) {
                    q0 = _mm512_or_si512(q0, high_bits(qh[half], 2 * pair, 1));
                    q1 = _mm512_or_si512(q1, high_bits(qh[half], 2 * pair + 1, 1));
                }
                first = _mm512_add_ps(first, times_x(q0, xb + 64 * pair + 16 * half));
                second = _mm512_add_ps(second, times_x(q1, xb + 64 * pair + 32 + 16 * half));
            }
            acc = _mm512_fmadd_ps(_mm512_set1_ps(d * sc0), first, acc);
            acc = _mm512_fmadd_ps(_mm512_set1_ps(d * sc1), second, acc);
            const float* sums = block_sums + b * 8 + 2 * pair;
            tail += -(dmin * m0) * sums[0] + -(dmin * m1) * sums[1];
        }
    }
    return _mm512_reduce_add_ps(acc) + tail;
}

// Q6_K: per half (128 weights) and 16 lanes l (0-15 or 16-31), weight l + 32 k takes the low (k < 2) or high nibble of
// ql[l + 32 (k & 1)] and bits 2k, 2k + 1 of qh[l]; each such group of 16 is one sub-block, scale sc[2k + l / 16].
float q6_k_row_dot(const uint8_t* row, const float* x, size_t blocks) {
    const __m512i bias = _mm512_set1_epi32(32);
    __m512 acc = _mm512_setzero_ps();
    for (size_t b = 0; b < blocks; ++b) {
        const uint8_t* blk = row + b * sizeof(BlockQ6_K);
        const float d = half_value(blk + 208);
        const auto* sc = reinterpret_cast<const int8_t*>(blk + 192);
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = blk + 64 * h;
            const uint8_t* qh = blk + 128 + 32 * h;
            const float* xh = x + b * kQuantBlockK + 128 * h;
            for (int part = 0; part < 2; ++part) {
                const __m512i a = widen(ql + 16 * part), c = widen(ql + 32 + 16 * part), hb = widen(qh + 16 * part);
                const __m512i q[4] = {_mm512_sub_epi32(_mm512_or_si512(lanes_and(a, 0x0f), high_bits(hb, 0, 3)), bias),
                                      _mm512_sub_epi32(_mm512_or_si512(lanes_and(c, 0x0f), high_bits(hb, 2, 3)), bias),
                                      _mm512_sub_epi32(_mm512_or_si512(_mm512_srli_epi32(a, 4), high_bits(hb, 4, 3)), bias),
                                      _mm512_sub_epi32(_mm512_or_si512(_mm512_srli_epi32(c, 4), high_bits(hb, 6, 3)), bias)};
                for (int k = 0; k < 4; ++k)
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(d * sc[8 * h + 2 * k + part]), times_x(q[k], xh + 32 * k + 16 * part), acc);
            }
        }
    }
    return _mm512_reduce_add_ps(acc);
}

} // namespace

float preset_row_dot_avx512(GgmlType type, const uint8_t* row, const float* x, const float* block_sums, size_t n) {
    switch (type) {
    case GgmlType::Q5_0: return q5_row_dot<false>(row, x, block_sums, n / kQuantBlock);
    case GgmlType::Q5_1: return q5_row_dot<true>(row, x, block_sums, n / kQuantBlock);
    case GgmlType::Q4_K: return q45_k_row_dot<false>(row, x, block_sums, n / kQuantBlockK);
    case GgmlType::Q5_K: return q45_k_row_dot<true>(row, x, block_sums, n / kQuantBlockK);
    default: return q6_k_row_dot(row, x, n / kQuantBlockK);
    }
}

} // namespace winnow::cpu
