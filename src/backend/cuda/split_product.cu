#include "backend/cuda/split_product.h"

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/split_product_logic.cuh"
#include "backend/cuda/weight_access.cuh"

namespace winnow::cuda {

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

// The values the splitting kernel cuts, element (r, c) of a rows x cols matrix, one functor per kind of source.
// A stored weight row, decoded as the CPU's dequantize_row decodes it.
template <GgmlType T>
struct StoredWeights {
    const uint8_t* src;
    size_t row_bytes;
    __device__ float operator()(int64_t r, int64_t c) const { return weight_at<T>(src + r * row_bytes, c); }
};
// Q4_1's augmented columns (split_product_logic.cuh): d q of column c < cols (exact: at most 15 significant bits), then
// each block's m.
struct Q4_1Augmented {
    const uint8_t* src;
    size_t row_bytes;
    int64_t cols;
    __device__ float operator()(int64_t r, int64_t c) const {
        const uint8_t* row = src + r * row_bytes;
        if (c >= cols) return q4_1_parts(row, (c - cols) * split_product::kBlockSumWidth).m;
        const Q4_1Parts p = q4_1_parts(row, c);
        return __fmul_rn(static_cast<float>(p.q), p.d);
    }
};
// A token row's augmented activations: its values, then its block sums when there are any.
struct AugmentedActivations {
    const float* x;
    int64_t cols;
    __device__ float operator()(int64_t r, int64_t c) const { return split_product::augmented_activation(x + r * cols, cols, c); }
};

// One thread per value of a rows x cols matrix: its value cut into slices, each written where the GEMM reads that
// slice's copy of the matrix. No fp32 copy of a quantized matrix in between.
template <class Values>
__global__ void split_kernel(const Values values, int64_t rows, int64_t cols, int slices, uint16_t* __restrict__ dst) {
    const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    const int64_t count = rows * cols;
    if (i >= count) return;
    uint16_t parts[split_product::kActivationSlices];
    split_product::split(values(i / cols, i % cols), slices, parts);
    for (int s = 0; s < slices; ++s) dst[s * count + i] = parts[s];
}

template <class Values>
void launch_split_kernel(const Values& values, int64_t rows, int64_t cols, int slices, uint16_t* dst, cudaStream_t s) {
    if (slices < 1 || slices > split_product::kActivationSlices)
        throw Error(ErrorKind::invalid_argument, "split_product: " + std::to_string(slices) + " slices (1 to 3)");
    if (rows * cols == 0) return;
    launch_plain(split_kernel<Values>, blocks_for(rows * cols), kThreads, 0, s, values, rows, cols, slices, dst);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

// One thread per output: consecutive threads take consecutive rows, which are consecutive in every product column.
template <GgmlType T>
__global__ void combine_kernel(const SplitProductOutputs o) {
    const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i >= o.rows * o.n) return;
    const int64_t t = i / o.rows, r = i % o.rows;
    const StoredWeights<T> weight{static_cast<const uint8_t*>(o.w), o.row_bytes};
    o.y[i] = split_product::finish(o.products, weight, o.x, o.cols, r, t, o.rows, o.n, o.w_slices, o.bias);
}

} // namespace

int split_weight_slices(GgmlType type) {
    switch (type) {
    case GgmlType::BF16: return 1;
    case GgmlType::F16:
    case GgmlType::Q4_0:
    case GgmlType::Q4_1: return 2;
    default: return 0;
    }
}

bool split_block_sums(GgmlType type) { return type == GgmlType::Q4_1; }

void launch_split_weights(GgmlType type, const void* src, size_t row_bytes, int64_t rows, int64_t cols, int slices, uint16_t* dst, cudaStream_t s) {
    const auto* bytes = static_cast<const uint8_t*>(src);
    if (split_block_sums(type)) {
        if (cols % split_product::kBlockSumWidth != 0)
            throw Error(ErrorKind::invalid_argument, "split_product: Q4_1 rows of " + std::to_string(cols) + " columns (a multiple of 32)");
        return launch_split_kernel(Q4_1Augmented{bytes, row_bytes, cols}, rows, split_product::augmented_cols(cols, true), slices, dst, s);
    }
    dispatch_core_weight_type(type, [&]<GgmlType T>() { launch_split_kernel(StoredWeights<T>{bytes, row_bytes}, rows, cols, slices, dst, s); });
}

void launch_split_activations(const float* x, int64_t rows, int64_t cols, bool block_sums, uint16_t* dst, cudaStream_t s) {
    if (block_sums && cols % split_product::kBlockSumWidth != 0)
        throw Error(ErrorKind::invalid_argument, "split_product: block sums over rows of " + std::to_string(cols) + " columns (a multiple of 32)");
    launch_split_kernel(AugmentedActivations{x, cols}, rows, split_product::augmented_cols(cols, block_sums), split_product::kActivationSlices, dst, s);
}

void launch_combine_split_products(const SplitProductOutputs& o, cudaStream_t s) {
    if (o.w_slices < 1 || o.w_slices > split_product::kMaxWeightSlices)
        throw Error(ErrorKind::invalid_argument, "combine_split_products: " + std::to_string(o.w_slices) + " weight slices (1 or 2)");
    if (o.rows * o.n == 0) return;
    dispatch_core_weight_type(o.type, [&]<GgmlType T>() { launch_plain(combine_kernel<T>, blocks_for(o.rows * o.n), kThreads, 0, s, o); });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
