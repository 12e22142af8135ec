#pragma once
// Decodes stored weights (F32, F16, BF16, Q8_0, Q4_0, Q4_1) to fp32 on the GPU. The CPU reference is
// winnow::dequantize_row (src/io/quant.cpp); tests/gpu compares the two bit for bit.
#include <cstddef>
#include <cuda_runtime.h>

#include "io/ggml_type.h"

namespace winnow::cuda {

// src and dst are device pointers; n is a multiple of the type's block size.
void dequantize(GgmlType type, const void* src, float* dst, size_t n, cudaStream_t stream = nullptr);

} // namespace winnow::cuda
