// Batch-1 GEMV on the stored weight formats, decoded in registers: one warp per output row, lanes striding the row,
// a shuffle reduction (gemv_row.cuh, shared with the fused head). The twin is CpuBackend::linear (f32 mode).
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/gemv_row.cuh"

namespace winnow::cuda {

namespace {

constexpr int kWarpsPerBlock = 8;

template <GgmlType T>
__global__ void gemv_kernel(const uint8_t* __restrict__ w, size_t row_bytes, int64_t rows, int64_t cols, const float* __restrict__ bias,
                            const float* __restrict__ x, float* __restrict__ y) {
    const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int t = blockIdx.y;
    if (r >= rows) return;
    const uint8_t* row = w + static_cast<size_t>(r) * row_bytes;
    const float* xt = x + static_cast<size_t>(t) * cols;
    const float acc = warp_row_dot<T>(row, xt, cols, lane);
    if (lane == 0) y[static_cast<size_t>(t) * rows + r] = acc + (bias ? bias[r] : 0.0f);
}

} // namespace

void launch_gemv(GgmlType type, const uint8_t* w, size_t row_bytes, int64_t rows, int64_t cols, const float* bias, const float* x,
                 float* y, int n_tokens, cudaStream_t s) {
    if (rows == 0 || n_tokens == 0) return;
    const dim3 grid(static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock), static_cast<unsigned>(n_tokens));
    dispatch_weight_type(type, [&]<GgmlType T>() { gemv_kernel<T><<<grid, kWarpsPerBlock * 32, 0, s>>>(w, row_bytes, rows, cols, bias, x, y); });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
