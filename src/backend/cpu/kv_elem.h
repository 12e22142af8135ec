#pragma once
// The element types of a KV cache on the CPU (F32, F16, BF16), as traits the attention kernel is templated on: a
// read widens 8 lanes (or one value) to fp32 exactly, so a half cache costs a conversion per load and no precision
// beyond the rounding it was written with. Writes (copy_rows) round fp32 to nearest even, as F16C's
// _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT) and io/quant.h's scalar codecs do, so a vector and a scalar tail
// give the same bits (checked on 2^24 random fp32 bit patterns; only an f16 NaN's payload may differ).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "backend/cpu/simd.h"
#include "io/ggml_type.h"
#include "io/quant.h"

namespace winnow::cpu {

struct KvF32 {
    using T = float;
    static float load1(const T* p) { return *p; }
#ifdef WINNOW_AVX2
    static __m256 load8(const T* p) { return _mm256_loadu_ps(p); }
#endif
};

struct KvF16 {
    using T = uint16_t;
    static float load1(const T* p) { return half_to_float(*p); }
#ifdef WINNOW_AVX2
    static __m256 load8(const T* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
#endif
};

struct KvBF16 {
    using T = uint16_t;
    static float load1(const T* p) { return bf16_to_fp32(*p); }
#ifdef WINNOW_AVX2
    // bf16 is the top half of an fp32: widen to 32 bits and shift into place
    static __m256 load8(const T* p) {
        const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
    }
#endif
};

inline bool is_kv_type(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }

#ifdef WINNOW_AVX2
// 8 fp32 -> 8 bf16, round to nearest even; a NaN stays a quiet NaN (fp32_to_bf16's rule, lane for lane).
inline __m128i bf16_from_ps(__m256 x) {
    const __m256i u = _mm256_castps_si256(x);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    r = _mm256_blendv_epi8(r, _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(64)), nan);
    // every lane is in [0, 0xffff]: the saturating pack keeps it; the permute gathers the two 128-bit halves' results
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08));
}
#endif

// dst[i] = src[i] in the cache's type (copy_rows): fp32 is copied, f16 and bf16 are rounded to nearest even.
inline void store_kv(GgmlType type, const float* src, void* dst, size_t n) {
    if (type == GgmlType::F32) {
        std::memcpy(dst, src, n * sizeof(float));
        return;
    }
    auto* d = static_cast<uint16_t*>(dst);
    size_t i = 0;
#ifdef WINNOW_AVX2
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(src + i);
        const __m128i h = type == GgmlType::F16 ? _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT) : bf16_from_ps(x);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i), h);
    }
#endif
    for (; i < n; ++i) d[i] = type == GgmlType::F16 ? fp32_to_fp16(src[i]) : fp32_to_bf16(src[i]);
}

} // namespace winnow::cpu
