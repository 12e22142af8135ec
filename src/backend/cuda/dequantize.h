#pragma once
// Decodes stored weights (F32, F16, BF16, Q8_0, Q4_0, Q4_1 and the preset Q5_0 ... Q6_K, IQ4_NL, IQ4_XS) to fp32 on
// the GPU, each element as weight_at reads it. The CPU reference is winnow::dequantize_row (src/io/quant.cpp,
// src/io/quant_preset.cpp); tests/gpu compares the two bit for bit.
#include <cstddef>
#include <cuda_runtime.h>

#include "io/ggml_type.h"

namespace winnow::cuda {

// The stored weight types the CUDA kernels read (weight_access.cuh's dispatch_weight_type): F32, F16, BF16, Q8_0, Q4_0,
// Q4_1, and since 2026-12-06 the preset Q5_0, Q5_1, Q4_K, Q5_K, Q6_K (before, place_weights converted those to F16),
// since 2026-12-07 also Q2_K, Q3_K, IQ4_NL and IQ4_XS.
// The kernels that take no preset type (dispatch_core_weight_type) take is_core_type's.
inline bool is_device_weight_type(GgmlType t) { return is_core_type(t) || is_preset_type(t); }

// src and dst are device pointers; n is a multiple of the type's block size.
void dequantize(GgmlType type, const void* src, float* dst, size_t n, cudaStream_t stream = nullptr);

} // namespace winnow::cuda
