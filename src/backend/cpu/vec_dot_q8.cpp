#include "backend/cpu/vec_dot_q8.h"

#include <algorithm>
#include <cmath>

#include "backend/cpu/simd.h"
#include "io/quant.h"
#include "winnow/error.h"

namespace winnow::cpu {

bool has_q8_gemm_path(GgmlType t) { return t == GgmlType::Q4_0 || t == GgmlType::Q4_1 || t == GgmlType::Q8_0; }

bool has_q8_path(GgmlType t) {
    return has_q8_gemm_path(t) || t == GgmlType::Q5_0 || t == GgmlType::Q5_1 || t == GgmlType::IQ4_NL || uses_q8_k(t);
}

bool uses_q8_1(GgmlType t) { return t == GgmlType::Q4_1 || t == GgmlType::Q5_1; }

bool uses_q8_k(GgmlType t) {
    return t == GgmlType::Q2_K || t == GgmlType::Q3_K || t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q6_K || t == GgmlType::IQ4_XS;
}

size_t q8_activation_bytes(GgmlType t, size_t n) {
    if (uses_q8_k(t)) return n / kQuantBlockK * sizeof(BlockQ8_K);
    return n / kQuantBlock * (uses_q8_1(t) ? sizeof(BlockQ8_1) : sizeof(BlockQ8_0));
}

void quantize_activation_q8(GgmlType t, const float* x, size_t n, uint8_t* out) {
    if (uses_q8_k(t)) {
        quantize_activation_q8_k(x, n, out);
        return;
    }
    const bool with_sum = uses_q8_1(t);
    const size_t stride = with_sum ? sizeof(BlockQ8_1) : sizeof(BlockQ8_0);
    for (size_t b = 0; b < n / kQuantBlock; ++b) {
        const float* xb = x + b * kQuantBlock;
        float amax = 0.0f;
        for (int j = 0; j < kQuantBlock; ++j) amax = std::max(amax, std::fabs(xb[j]));
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        uint8_t* blk = out + b * stride;
        int8_t* qs = reinterpret_cast<int8_t*>(blk + (with_sum ? 4 : 2));
        int sum = 0;
        for (int j = 0; j < kQuantBlock; ++j) {
            qs[j] = round_to_q8(xb[j] * id);
            sum += qs[j];
        }
        const uint16_t dh = fp32_to_fp16(d);
        __builtin_memcpy(blk, &dh, 2);
        if (with_sum) {
            const uint16_t sh = fp32_to_fp16(d * static_cast<float>(sum));
            __builtin_memcpy(blk + 2, &sh, 2);
        }
    }
}

namespace {

#ifdef WINNOW_AVX2
// 32 nibbles -> 32 bytes: weights 0..15 (low nibbles) then 16..31 (high nibbles), matching the q8 order.
inline __m256i unpack_nibbles(const uint8_t* qs) {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

// Sum of products of unsigned bytes a and signed bytes b, as 8 floats (each the sum of 4 products).
inline __m256 dot_u8_i8(__m256i a, __m256i b) {
    const __m256i pairs = _mm256_maddubs_epi16(a, b);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

// Signed x signed bytes: move the sign of a onto b so maddubs can take |a| as its unsigned operand.
inline __m256 dot_i8_i8(__m256i a, __m256i b) { return dot_u8_i8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a)); }

#endif

} // namespace

float vec_dot_q8(GgmlType t, const void* row, const uint8_t* xq, size_t n) {
    const size_t nb = n / kQuantBlock;
    const auto* w = static_cast<const uint8_t*>(row);
    switch (t) {
    case GgmlType::Q4_1: {
        float offset_sum = 0.0f;
#ifdef WINNOW_AVX2
        __m256 acc = _mm256_setzero_ps();
#else
        float s = 0.0f;
#endif
        for (size_t i = 0; i < nb; ++i) {
            const uint8_t* wb = w + i * sizeof(BlockQ4_1);
            const uint8_t* xb = xq + i * sizeof(BlockQ8_1);
            offset_sum += half_at(wb + 2) * half_at(xb + 2); // m_w * (d_x * sum(q_x))
            const float scale = half_at(wb) * half_at(xb);
#ifdef WINNOW_AVX2
            const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + 4));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(scale), dot_u8_i8(unpack_nibbles(wb + 4), qx), acc);
#else
            int sumi = 0;
            const auto* qx = reinterpret_cast<const int8_t*>(xb + 4);
            for (int j = 0; j < 16; ++j) sumi += (wb[4 + j] & 0x0f) * qx[j] + (wb[4 + j] >> 4) * qx[j + 16];
            s += scale * static_cast<float>(sumi);
#endif
        }
#ifdef WINNOW_AVX2
        return hsum(acc) + offset_sum;
#else
        return s + offset_sum;
#endif
    }
    case GgmlType::Q4_0:
    case GgmlType::Q8_0: {
        const bool q4 = t == GgmlType::Q4_0;
        const size_t wstride = q4 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
#ifdef WINNOW_AVX2
        __m256 acc = _mm256_setzero_ps();
#else
        float s = 0.0f;
#endif
        for (size_t i = 0; i < nb; ++i) {
            const uint8_t* wb = w + i * wstride;
            const uint8_t* xb = xq + i * sizeof(BlockQ8_0);
            const float scale = half_at(wb) * half_at(xb);
#ifdef WINNOW_AVX2
            const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + 2));
            const __m256i qw = q4 ? _mm256_sub_epi8(unpack_nibbles(wb + 2), _mm256_set1_epi8(8))
                                  : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb + 2));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(scale), dot_i8_i8(qw, qx), acc);
#else
            int sumi = 0;
            const auto* qx = reinterpret_cast<const int8_t*>(xb + 2);
            if (q4) {
                for (int j = 0; j < 16; ++j) sumi += ((wb[2 + j] & 0x0f) - 8) * qx[j] + ((wb[2 + j] >> 4) - 8) * qx[j + 16];
            } else {
                const auto* qw = reinterpret_cast<const int8_t*>(wb + 2);
                for (int j = 0; j < 32; ++j) sumi += qw[j] * qx[j];
            }
            s += scale * static_cast<float>(sumi);
#endif
        }
#ifdef WINNOW_AVX2
        return hsum(acc);
#else
        return s;
#endif
    }
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::IQ4_NL:
    case GgmlType::IQ4_XS:
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K: return vec_dot_q8_preset(t, row, xq, n);
    default:
        throw Error(ErrorKind::unsupported, std::string("no 8-bit-activation dot product for ") + ggml_type_name(t));
    }
}

} // namespace winnow::cpu
