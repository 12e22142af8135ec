#pragma once
// A float's bits and their order, the same on the host and the device: the CUDA kernels' *_logic.cuh headers build
// their sort and reduction keys from these (sampling's top-k, the adaptive head's argmax, sparse attention's unit
// selection), and their host runs use the same functions.
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define WINNOW_BITS_FN __host__ __device__ __forceinline__
#else
#define WINNOW_BITS_FN inline
#endif

namespace winnow::cuda {

WINNOW_BITS_FN uint32_t float_bits(float v) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(v);
#else
    uint32_t b;
    std::memcpy(&b, &v, sizeof b);
    return b;
#endif
}

WINNOW_BITS_FN float float_from_bits(uint32_t b) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(b);
#else
    float v;
    std::memcpy(&v, &b, sizeof v);
    return v;
#endif
}

// Monotone map of floats to unsigned integers: negatives flipped below the positives, so that unsigned order is the
// floats' order (-0 and +0 are one value, as the host's comparisons have them; a NaN maps wherever its bits fall, so
// callers decide about NaNs first).
WINNOW_BITS_FN uint32_t ordered_bits(float v) {
    if (v == 0.0f) v = 0.0f;
    const uint32_t b = float_bits(v);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

} // namespace winnow::cuda
