// vec_dot's quantized rows (Q8_0, Q4_0, Q4_1 against fp32 activations: the f32 dot mode's decode) on AVX-512.
// Compiled for AVX-512F whatever -march the build uses and chosen at run time (vec_dot.cpp), like the q8 prefill
// kernels. It calls no shared inline helper (simd.h's, io/quant.h's; io/quant.h is included for the block layouts
// only): an inline function compiled here with AVX-512 could be the copy the linker keeps for every other file, and
// fault on an AVX2-only host. Its own helpers have internal linkage.
//
// The f32 mode widens every weight to fp32 (it keeps the activations exact), so instructions, not bytes, set its decode
// speed (bench/reports/cpu-dot-kernels.md). Here a block of 32 weights is one widening of its 16 bytes to 16 int32
// lanes (a nibble pair; Q8_0 widens its two 16-byte halves), two conversions, a multiply and a multiply-add, and one
// multiply-add that scales the block into the accumulator (see row_dot); the AVX2 kernel takes four widenings,
// conversions and products on 8 lanes, and a tree of horizontal adds for every 8 blocks.
#include "backend/cpu/vec_dot_avx512.h"

#include <immintrin.h>

// GCC 12 warns that the AVX-512 intrinsics' own placeholder operand (_mm512_undefined_*) "may be used uninitialized"
// (GCC bug 105593, fixed in GCC 13); nothing of ours is uninitialised.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <cstring>

#include "io/quant.h"

namespace winnow::cpu {

namespace {

// a block's 32 weights, as 16 lanes of partial sums of q_j * x_j (unscaled)
inline __m512 nibble_block(const uint8_t* qs, const float* x) {
    // byte j widened to lane j holds weight j (low nibble) and weight j + 16 (high nibble)
    const __m512i bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
    const __m512i lo = _mm512_and_si512(bytes, _mm512_set1_epi32(0x0f)), hi = _mm512_srli_epi32(bytes, 4);
    const __m512 p = _mm512_mul_ps(_mm512_cvtepi32_ps(lo), _mm512_loadu_ps(x));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), _mm512_loadu_ps(x + 16), p);
}

inline __m512 int8_block(const int8_t* qs, const float* x) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)), b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs + 16));
    const __m512 p = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(a)), _mm512_loadu_ps(x));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b)), _mm512_loadu_ps(x + 16), p);
}

// 16 lanes folded to 8 (lane k + lane k + 8); AVX-512F's 64-bit extract, as the 32-bit one needs AVX-512DQ
inline __m256 fold(__m512 v) {
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

inline float sum8(__m256 v) {
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

inline float half1(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

// sum over blocks of d_b * (sum_j q_j x_j) + off_b * (sum_j x_j); off = m (Q4_1), -8 d (Q4_0), 0 (Q8_0).
// Blocks go 16 at a time: one gather reads their 16 scales (and Q4_1's offsets: d and m are one 4-byte word at the
// block's start), and each block's 16 lanes are scaled into the accumulator by its d, taken from that vector by a
// permute. No per-block horizontal sum: the lanes are added once per row.
template <GgmlType T>
float row_dot(const uint8_t* row, const float* x, const float* block_sums, size_t nb) {
    constexpr int stride = T == GgmlType::Q4_1 ? sizeof(BlockQ4_1) : T == GgmlType::Q4_0 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
    constexpr int qs_at = T == GgmlType::Q4_1 ? 4 : 2;
    const auto block = [&](size_t i) {
        const uint8_t* qs = row + i * stride + qs_at;
        if constexpr (T == GgmlType::Q8_0) return int8_block(reinterpret_cast<const int8_t*>(qs), x + i * 32);
        else return nibble_block(qs, x + i * 32);
    };
    const __m512i starts = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(stride));
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps(), off = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= nb; i += 16) {
        const __m512i words = _mm512_i32gather_epi32(starts, row + i * stride, 1);
        const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(words));
        if constexpr (T == GgmlType::Q4_1) off = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(words, 16))), _mm512_loadu_ps(block_sums + i), off);
        if constexpr (T == GgmlType::Q4_0) off = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(-8.0f), d), _mm512_loadu_ps(block_sums + i), off);
        for (int k = 0; k < 16; k += 2) {
            acc0 = _mm512_fmadd_ps(block(i + k), _mm512_permutexvar_ps(_mm512_set1_epi32(k), d), acc0);
            acc1 = _mm512_fmadd_ps(block(i + k + 1), _mm512_permutexvar_ps(_mm512_set1_epi32(k + 1), d), acc1);
        }
    }
    float tail = 0.0f;
    for (; i < nb; ++i) {
        const float d = half1(row + i * stride);
        acc0 = _mm512_fmadd_ps(block(i), _mm512_set1_ps(d), acc0);
        if constexpr (T == GgmlType::Q4_1) tail += half1(row + i * stride + 2) * block_sums[i];
        if constexpr (T == GgmlType::Q4_0) tail += -8.0f * d * block_sums[i];
    }
    return sum8(fold(_mm512_add_ps(acc0, acc1))) + sum8(fold(off)) + tail;
}

} // namespace

float quant_row_dot_avx512(GgmlType type, const uint8_t* row, const float* x, const float* block_sums, size_t nb) {
    switch (type) {
    case GgmlType::Q8_0: return row_dot<GgmlType::Q8_0>(row, x, nullptr, nb);
    case GgmlType::Q4_0: return row_dot<GgmlType::Q4_0>(row, x, block_sums, nb);
    default: return row_dot<GgmlType::Q4_1>(row, x, block_sums, nb);
    }
}

} // namespace winnow::cpu
