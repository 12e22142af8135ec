#pragma once
// A float's bits and their order, and an fp16 value widened, the same on the host and the device: the CUDA kernels'
// *_logic.cuh headers build their sort and reduction keys from these (sampling's top-k, the adaptive head's argmax,
// sparse attention's unit selection) and read fp16 data with half_to_float, and their host runs use the same functions.
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#include <cuda_fp16.h>
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

// An fp16 value (its bits) widened exactly: the device's conversion instruction, and on the host the same value from
// the bits (tests/ops/test_sparse_select_logic.cpp checks it against io/quant's decoder on all 65536 values).
WINNOW_BITS_FN float half_to_float(uint16_t h) {
#ifdef __CUDA_ARCH__
    return __half2float(__ushort_as_half(h));
#else
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0) { // zero or subnormal: man * 2^-24, exact in fp32
        const float f = static_cast<float>(man) * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    if (exp == 31) return float_from_bits(sign | 0x7f800000u | (man << 13)); // infinity or NaN
    return float_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
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
