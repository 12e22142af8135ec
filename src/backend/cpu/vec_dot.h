#pragma once
// Dot products of one stored weight row (any supported type) with an fp32 vector, accumulated in fp32.
#include <cstddef>

#include "io/ggml_type.h"

namespace winnow::cpu {

// Per-32-element block sums of x, used by the 4-bit types whose offset term (m or -8d) multiplies sum(x).
void block_sums(const float* x, float* sums, size_t n);

// dot(row, x) for n elements (a multiple of 32 for quantized types). `xsums` are block_sums(x).
float vec_dot(GgmlType type, const void* row, const float* x, const float* xsums, size_t n);
float vec_dot_f32(const float* a, const float* b, size_t n);

} // namespace winnow::cpu
