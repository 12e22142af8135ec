#pragma once
// Small SIMD helpers shared by the CPU dot-product kernels. WINNOW_AVX2 is set when the build targets a CPU with
// AVX2 + FMA + F16C (the kernels then take their vector paths; otherwise the scalar ones).
#include <cstdint>
#include <cstring>

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define WINNOW_AVX2 1
#endif

#include "io/quant.h"

namespace winnow::cpu {

// fp16 bits -> float, exact (block scales are fp16); F16C does it in one instruction.
inline float half_to_float(uint16_t h) {
#ifdef WINNOW_AVX2
    return _cvtsh_ss(h);
#else
    return fp16_to_fp32(h);
#endif
}

// The fp16 at an unaligned address inside a quant block.
inline float half_at(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return half_to_float(h);
}

#ifdef WINNOW_AVX2
// Sum of the 8 lanes.
inline float hsum(__m256 v) {
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}
#endif

} // namespace winnow::cpu
