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

// How many bf16 slices hold the decoded weights of `type` exactly: 1 (BF16), 2 (F16, Q4_0), or 0 (F32, Q8_0, Q4_1:
// these stay on the fp32 sgemm).
int split_weight_slices(GgmlType type);

// The decoded values of a stored matrix (rows x cols, rows row_bytes apart, any weight type; the activations as F32)
// as `slices` (1 to 3) stacked bf16 matrices: dst[s * rows * cols + r * cols + c].
void launch_split(GgmlType type, const void* src, size_t row_bytes, int64_t rows, int64_t cols, int slices, uint16_t* dst, cudaStream_t s);

// What the combining kernel reads and writes for a chunk of n tokens.
struct SplitProductOutputs {
    const float* products;  // cuBLAS's column-major (w_slices * rows) x (3 * n) result
    const uint16_t* a;      // the weight slices the GEMM read (slice s of row r at row s * rows + r), leading dimension lda
    int64_t lda;
    const float* x;         // the chunk's activations, n x cols: a NaN from the slices is recomputed from them (finish())
    int64_t rows, cols, n;
    int w_slices;
    const float* bias;      // rows values, or null
    float* y;               // n x rows, row-major
};
// y[t][r] = the sum of the partial products for token t, row r, smallest first, plus bias[r] (split_product::finish).
void launch_combine_split_products(const SplitProductOutputs& o, cudaStream_t s);

} // namespace winnow::cuda
