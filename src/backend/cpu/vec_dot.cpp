#include "backend/cpu/vec_dot.h"

#include <cstdint>

#include "backend/cpu/simd.h"
#include "io/quant.h"
#include "winnow/error.h"

namespace winnow::cpu {

void prepare_activation(GgmlType type, const float* x, size_t n, PreparedActivation& out) {
    out.x = x;
    if (type != GgmlType::Q4_0 && type != GgmlType::Q4_1) return;
    const size_t nb = n / kQuantBlock;
    out.block_sums.resize(nb);
    out.nibble_x.resize(n);
    for (size_t b = 0; b < nb; ++b) {
        const float* xb = x + b * kQuantBlock;
        float s = 0.0f;
        for (int j = 0; j < kQuantBlock; ++j) s += xb[j];
        out.block_sums[b] = s;
        // 32-bit word k of a block's nibbles holds weights 4k..4k+3 (low nibbles) and 16+4k..16+4k+3 (high)
        float* xp = out.nibble_x.data() + b * kQuantBlock;
        for (int k = 0; k < 4; ++k)
            for (int i = 0; i < 4; ++i) {
                xp[8 * k + i] = xb[4 * k + i];
                xp[8 * k + 4 + i] = xb[16 + 4 * k + i];
            }
    }
}

#ifdef WINNOW_AVX2
namespace {

inline __m256 u8x8_to_ps(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)); }

// sum_j q_j * x_j over one block of 32 nibbles (unsigned 0..15), in vector form. `xp` is the block's
// activations in nibble order (see nibble_order): lane group k holds the weights of 32-bit word k of qs,
// so a broadcast and a variable shift unpack them without any cross-lane shuffle.
inline __m256 nibble_block_dot(const uint8_t* qs, const float* xp) {
    const __m256i shifts = _mm256_setr_epi32(0, 8, 16, 24, 4, 12, 20, 28);
    const __m256i mask = _mm256_set1_epi32(0x0f);
    __m256 p[2];
    for (int k = 0; k < 4; ++k) {
        int32_t word;
        __builtin_memcpy(&word, qs + 4 * k, 4);
        const __m256i q = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(word), shifts), mask);
        const __m256 prod_in = _mm256_loadu_ps(xp + 8 * k);
        p[k & 1] = k < 2 ? _mm256_mul_ps(_mm256_cvtepi32_ps(q), prod_in) : _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), prod_in, p[k & 1]);
    }
    return _mm256_add_ps(p[0], p[1]);
}

} // namespace
#endif

float vec_dot_f32(const float* a, const float* b, size_t n) { return dot_f32(a, b, n); }

float vec_dot(GgmlType type, const void* row, const PreparedActivation& a, size_t n) {
    const float* x = a.x;
    switch (type) {
    case GgmlType::F32:
        return vec_dot_f32(static_cast<const float*>(row), x, n);
    case GgmlType::F16: {
        auto* w = static_cast<const uint16_t*>(row);
        size_t i = 0;
        float s = 0.0f;
#ifdef WINNOW_AVX2
        __m256 acc = _mm256_setzero_ps();
        for (; i + 8 <= n; i += 8)
            acc = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i))), _mm256_loadu_ps(x + i), acc);
        s = hsum(acc);
#endif
        for (; i < n; ++i) s += fp16_to_fp32(w[i]) * x[i];
        return s;
    }
    case GgmlType::BF16: {
        auto* w = static_cast<const uint16_t*>(row);
        size_t i = 0;
        float s = 0.0f;
#ifdef WINNOW_AVX2
        __m256 acc = _mm256_setzero_ps();
        for (; i + 8 <= n; i += 8) {
            const __m256i wi = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i))), 16);
            acc = _mm256_fmadd_ps(_mm256_castsi256_ps(wi), _mm256_loadu_ps(x + i), acc);
        }
        s = hsum(acc);
#endif
        for (; i < n; ++i) s += bf16_to_fp32(w[i]) * x[i];
        return s;
    }
    case GgmlType::Q8_0: {
        auto* b = static_cast<const BlockQ8_0*>(row);
        const size_t nb = n / kQuantBlock;
#ifdef WINNOW_AVX2
        __m256 acc = _mm256_setzero_ps();
        for (size_t i = 0; i < nb; ++i) {
            const float* xb = x + i * 32;
            __m256 p = _mm256_setzero_ps();
            for (int k = 0; k < 4; ++k) {
                const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b[i].qs + 8 * k));
                p = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), _mm256_loadu_ps(xb + 8 * k), p);
            }
            acc = _mm256_fmadd_ps(_mm256_set1_ps(half_to_float(b[i].d)), p, acc);
        }
        return hsum(acc);
#else
        float s = 0.0f;
        for (size_t i = 0; i < nb; ++i) {
            float p = 0.0f;
            for (int j = 0; j < 32; ++j) p += b[i].qs[j] * x[i * 32 + j];
            s += half_to_float(b[i].d) * p;
        }
        return s;
#endif
    }
    case GgmlType::Q4_0:
    case GgmlType::Q4_1: {
        // w = q*d + m (Q4_1) or (q - 8)*d (Q4_0): dot = sum_b d_b * sum(q x) + off_b * sum(x_b)
        const bool q41 = type == GgmlType::Q4_1;
        const size_t stride = q41 ? sizeof(BlockQ4_1) : sizeof(BlockQ4_0);
        const auto* base = static_cast<const uint8_t*>(row);
        const size_t nb = n / kQuantBlock;
        float offset_sum = 0.0f;
#ifdef WINNOW_AVX2
        __m256 acc = _mm256_setzero_ps();
#else
        float s = 0.0f;
#endif
        for (size_t i = 0; i < nb; ++i) {
            const uint8_t* blk = base + i * stride;
            const float d = half_at(blk);
            float off;
            const uint8_t* qs;
            if (q41) {
                off = half_at(blk + 2);
                qs = blk + 4;
            } else {
                off = -8.0f * d;
                qs = blk + 2;
            }
            offset_sum += off * a.block_sums[i];
#ifdef WINNOW_AVX2
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), nibble_block_dot(qs, a.nibble_x.data() + i * 32), acc);
#else
            float p = 0.0f;
            for (int j = 0; j < 16; ++j) p += (qs[j] & 0x0f) * x[i * 32 + j] + (qs[j] >> 4) * x[i * 32 + j + 16];
            s += d * p;
#endif
        }
#ifdef WINNOW_AVX2
        return hsum(acc) + offset_sum;
#else
        return s + offset_sum;
#endif
    }
    default:
        throw Error(ErrorKind::unsupported, std::string("no dot product for tensor type ") + ggml_type_name(type));
    }
}

} // namespace winnow::cpu
