#pragma once
// Prefill's products (n >= 8 tokens) on bf16 tensor cores at fp32 accuracy: the activations split into three bf16
// slices and the weights into one or two, one cuBLAS bf16 GEMM over all slices at once, and a kernel that adds the
// partial products back together (split_product_logic.cuh says why nothing is lost). The CPU twin is the host run of
// the same logic in tests/ops/test_split_product_logic.cpp; the op harness's linear cases at 9 tokens compare the
// whole path with the double reference.
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

#include "io/ggml_type.h"

namespace winnow::cuda {

// How many bf16 slices hold the decoded weights of `type` exactly: 1 (BF16), 2 (F16, Q4_0, Q4_1 through block sums),
// or 0 (F32, Q8_0: these stay on the fp32 sgemm).
int split_weight_slices(GgmlType type);
// Whether `type`'s slices carry a block-sum column per 32 (Q4_1: split_product_logic.cuh), so that the GEMM runs over
// split_product::augmented_cols(cols, true) columns, the activations' block sums included.
bool split_block_sums(GgmlType type);

// A stored weight matrix (rows x cols, rows row_bytes apart) as `slices` stacked bf16 matrices of
// augmented_cols(cols, split_block_sums(type)) columns each: dst[(s * rows + r) * augmented cols + c].
void launch_split_weights(GgmlType type, const void* src, size_t row_bytes, int64_t rows, int64_t cols, int slices, uint16_t* dst, cudaStream_t s);
// A chunk of activations (rows x cols fp32, row-major) as 3 stacked bf16 matrices of augmented_cols(cols, block_sums)
// columns each, the block sums appended to each row when block_sums.
void launch_split_activations(const float* x, int64_t rows, int64_t cols, bool block_sums, uint16_t* dst, cudaStream_t s);

// What the combining kernel reads and writes for a chunk of n tokens.
struct SplitProductOutputs {
    const float* products;  // cuBLAS's column-major (w_slices * rows) x (3 * n) result
    GgmlType type;          // the stored weights (type, data, row_bytes): a NaN output is recomputed from them (finish())
    const void* w;
    size_t row_bytes;
    const float* x;         // the chunk's activations, n x cols, for the same recomputation
    int64_t rows, cols, n;
    int w_slices;
    const float* bias;      // rows values, or null
    float* y;               // n x rows, row-major
};
// y[t][r] = the sum of the partial products for token t, row r, smallest first, plus bias[r] (split_product::finish).
void launch_combine_split_products(const SplitProductOutputs& o, cudaStream_t s);

} // namespace winnow::cuda
