#include "backend/cuda/split_product.h"

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/split_product_logic.cuh"
#include "backend/cuda/weight_access.cuh"

namespace winnow::cuda {

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

// One thread per value of a stored matrix (rows x cols, rows row_bytes apart; activations are an F32 matrix): its decoded
// value (weight_at: the CPU's dequantize_row values) cut into slices, each written where the GEMM reads that slice's
// copy of the matrix. No fp32 copy of a quantized matrix in between.
template <GgmlType T>
__global__ void split_kernel(const uint8_t* __restrict__ src, size_t row_bytes, int64_t rows, int64_t cols, int slices, uint16_t* __restrict__ dst) {
    const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    const int64_t count = rows * cols;
    if (i >= count) return;
    uint16_t parts[split_product::kActivationSlices];
    split_product::split(weight_at<T>(src + (i / cols) * row_bytes, i % cols), slices, parts);
    for (int s = 0; s < slices; ++s) dst[s * count + i] = parts[s];
}

// One thread per output: consecutive threads take consecutive rows, which are consecutive in every product column.
__global__ void combine_kernel(const SplitProductOutputs o) {
    const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i >= o.rows * o.n) return;
    const int64_t t = i / o.rows, r = i % o.rows;
    o.y[i] = split_product::finish(o.products, o.a, o.lda, o.x, o.cols, r, t, o.rows, o.n, o.w_slices, o.bias);
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

void launch_split(GgmlType type, const void* src, size_t row_bytes, int64_t rows, int64_t cols, int slices, uint16_t* dst, cudaStream_t s) {
    if (slices < 1 || slices > split_product::kActivationSlices)
        throw Error(ErrorKind::invalid_argument, "split_product: " + std::to_string(slices) + " slices (1 to 3)");
    if (rows * cols == 0) return;
    dispatch_weight_type(type, [&]<GgmlType T>() {
        launch_plain(split_kernel<T>, blocks_for(rows * cols), kThreads, 0, s, static_cast<const uint8_t*>(src), row_bytes, rows, cols, slices, dst);
    });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

void launch_combine_split_products(const SplitProductOutputs& o, cudaStream_t s) {
    if (o.w_slices < 1 || o.w_slices > split_product::kMaxWeightSlices)
        throw Error(ErrorKind::invalid_argument, "combine_split_products: " + std::to_string(o.w_slices) + " weight slices (1 or 2)");
    if (o.rows * o.n == 0) return;
    launch_plain(combine_kernel, blocks_for(o.rows * o.n), kThreads, 0, s, o);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
