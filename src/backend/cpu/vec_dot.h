#pragma once
// Dot products of one stored weight row (any supported type) with an fp32 vector, accumulated in fp32.
#include <cstddef>
#include <vector>

#include "io/ggml_type.h"

namespace winnow::cpu {

// An activation vector prepared once (per linear() call) for dot products with many rows of one type.
struct PreparedActivation {
    const float* x = nullptr;      // the values
    std::vector<float> block_sums; // 4-bit types: per-block sums, for the offset term (m, or -8d) of each block
};
void prepare_activation(GgmlType type, const float* x, size_t n, PreparedActivation& out);

// dot(row, x) for n elements (a multiple of 32 for quantized types), x prepared for `type`.
float vec_dot(GgmlType type, const void* row, const PreparedActivation& x, size_t n);
float vec_dot_f32(const float* a, const float* b, size_t n);

} // namespace winnow::cpu
