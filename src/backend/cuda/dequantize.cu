#include <cstdint>

#include "backend/cuda/launch.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dequantize.h"
#include "backend/cuda/weight_access.cuh"

namespace winnow::cuda {

namespace {

// One thread per output element, decoded by weight_at: the GEMV's element values, which equal the CPU reference's bit
// for bit (products and sums in separate fp32 operations, no fused multiply-add). The buffer is whole blocks end to end,
// so element i of it is element i of one long row.
template <GgmlType T>
__global__ void dequantize_kernel(const uint8_t* __restrict__ src, float* __restrict__ dst, size_t n) {
    const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
    if (i < n) dst[i] = weight_at<T>(src, static_cast<int64_t>(i));
}

} // namespace

void dequantize(GgmlType type, const void* src, float* dst, size_t n, cudaStream_t stream) {
    if (!is_device_weight_type(type))
        throw Error(ErrorKind::unsupported, std::string("cuda::dequantize: unsupported type ") + ggml_type_name(type));
    if (n == 0) return;
    constexpr int threads = 256;
    const unsigned blocks = static_cast<unsigned>((n + threads - 1) / threads);
    dispatch_weight_type(type, [&]<GgmlType T>() { launch_plain(dequantize_kernel<T>, blocks, threads, 0, stream, static_cast<const uint8_t*>(src), dst, n); });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
