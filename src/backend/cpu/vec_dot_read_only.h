#pragma once
// vec_dot's kernel for the read-only weight types (io/quant.h: Q5_0, Q5_1, Q4_K, Q5_K, Q6_K): each super-block decoded
// to int8 values with per-sub-block scales and offsets, then multiplied in fp32 SIMD lanes (vec_dot_read_only.cpp).
#include <cstddef>

#include "io/ggml_type.h"

namespace winnow::cpu {

// Whether the type's weights carry an offset per 32 (Q5_1's m, the K-quants' mins), so that the dot product needs the
// activation's sums per 32 values (PreparedActivation::block_sums).
bool read_only_needs_block_sums(GgmlType type);

// dot(row, x) over n weights of a read-only type; block_sums: x's sums per 32 values where the type needs them.
float read_only_row_dot(GgmlType type, const void* row, const float* x, const float* block_sums, size_t n);

} // namespace winnow::cpu
