#include <cstdint>
#include <cuda_fp16.h>

#include "backend/cuda/launch.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dequantize.h"

namespace winnow::cuda {

namespace {

__device__ __forceinline__ float half_bits_to_float(uint16_t h) { return __half2float(__ushort_as_half(h)); }

__device__ __forceinline__ uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// One thread per output element; blocks of 32 weights are decoded exactly as the CPU reference does
// (products and sums in separate fp32 operations, no fused multiply-add, so results are bit-identical).
__global__ void dequantize_kernel(uint32_t type, const uint8_t* __restrict__ src, float* __restrict__ dst, size_t n) {
    const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
    if (i >= n) return;
    switch (static_cast<GgmlType>(type)) {
    case GgmlType::F32: dst[i] = reinterpret_cast<const float*>(src)[i]; return;
    case GgmlType::F16: dst[i] = half_bits_to_float(load_u16(src + 2 * i)); return;
    case GgmlType::BF16: dst[i] = __uint_as_float(static_cast<uint32_t>(load_u16(src + 2 * i)) << 16); return;
    case GgmlType::Q8_0: {
        const uint8_t* b = src + (i / 32) * 34;
        dst[i] = __fmul_rn(static_cast<float>(static_cast<int8_t>(b[2 + i % 32])), half_bits_to_float(load_u16(b)));
        return;
    }
    case GgmlType::Q4_0: {
        const uint8_t* b = src + (i / 32) * 18;
        const int j = i % 32;
        const int q = j < 16 ? (b[2 + j] & 0x0f) : (b[2 + j - 16] >> 4);
        dst[i] = __fmul_rn(static_cast<float>(q - 8), half_bits_to_float(load_u16(b)));
        return;
    }
    case GgmlType::Q4_1: {
        const uint8_t* b = src + (i / 32) * 20;
        const int j = i % 32;
        const int q = j < 16 ? (b[4 + j] & 0x0f) : (b[4 + j - 16] >> 4);
        dst[i] = __fadd_rn(__fmul_rn(static_cast<float>(q), half_bits_to_float(load_u16(b))), half_bits_to_float(load_u16(b + 2)));
        return;
    }
    default: return;
    }
}

} // namespace

void dequantize(GgmlType type, const void* src, float* dst, size_t n, cudaStream_t stream) {
    if (!is_device_weight_type(type))
        throw Error(ErrorKind::unsupported, std::string("cuda::dequantize: unsupported type ") + ggml_type_name(type));
    if (n == 0) return;
    constexpr int threads = 256;
    const unsigned blocks = static_cast<unsigned>((n + threads - 1) / threads);
    launch_plain(dequantize_kernel, blocks, threads, 0, stream, static_cast<uint32_t>(type), static_cast<const uint8_t*>(src), dst, n);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
