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

// dst[s * count + i] = slice s of src[i], for s < slices (bf16 bits). count floats in, slices * count out.
void launch_split_bf16(const float* src, size_t count, int slices, uint16_t* dst, cudaStream_t s);

// y[t][r] (n x rows, row-major) = the sum of the partial products for token t, row r, smallest first, plus bias[r]
// (bias may be null). products: cuBLAS's column-major (w_slices * rows) x (3 * n) result.
void launch_combine_split_products(const float* products, int64_t rows, int64_t n, int w_slices, const float* bias, float* y, cudaStream_t s);

} // namespace winnow::cuda
