#include "backend/cuda/split_product.h"

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/split_product_logic.cuh"

namespace winnow::cuda {

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

// One thread per value: its slices, each written where the GEMM reads that slice's copy of the matrix.
__global__ void split_kernel(const float* __restrict__ src, size_t count, int slices, uint16_t* __restrict__ dst) {
    const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
    if (i >= count) return;
    uint16_t parts[split_product::kActivationSlices];
    split_product::split(src[i], slices, parts);
    for (int s = 0; s < slices; ++s) dst[s * count + i] = parts[s];
}

// One thread per output: consecutive threads take consecutive rows, which are consecutive in every product column.
__global__ void combine_kernel(const float* __restrict__ products, int64_t rows, int64_t n, int w_slices, const float* __restrict__ bias,
                               float* __restrict__ y) {
    const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i >= rows * n) return;
    const int64_t t = i / rows, r = i % rows;
    y[i] = split_product::combine(products, r, t, rows, n, w_slices, bias);
}

} // namespace

int split_weight_slices(GgmlType type) {
    switch (type) {
    case GgmlType::BF16: return 1;
    case GgmlType::F16:
    case GgmlType::Q4_0: return 2;
    default: return 0;
    }
}

void launch_split_bf16(const float* src, size_t count, int slices, uint16_t* dst, cudaStream_t s) {
    if (slices < 1 || slices > split_product::kActivationSlices)
        throw Error(ErrorKind::invalid_argument, "split_bf16: " + std::to_string(slices) + " slices (1 to 3)");
    if (count == 0) return;
    launch_plain(split_kernel, blocks_for(static_cast<int64_t>(count)), kThreads, 0, s, src, count, slices, dst);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

void launch_combine_split_products(const float* products, int64_t rows, int64_t n, int w_slices, const float* bias, float* y, cudaStream_t s) {
    if (w_slices < 1 || w_slices > split_product::kMaxWeightSlices)
        throw Error(ErrorKind::invalid_argument, "combine_split_products: " + std::to_string(w_slices) + " weight slices (1 or 2)");
    if (rows * n == 0) return;
    launch_plain(combine_kernel, blocks_for(rows * n), kThreads, 0, s, products, rows, n, w_slices, bias, y);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
