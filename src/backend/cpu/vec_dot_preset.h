#pragma once
// vec_dot's kernel for the preset weight types (io/quant.h: Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS): each super-block decoded
// to int8 values with per-sub-block scales and offsets, then multiplied in fp32 SIMD lanes (vec_dot_preset.cpp).
#include <cstddef>

#include "io/ggml_type.h"

namespace winnow::cpu {

// Whether the type's weights carry an offset per sub-block (Q5_1's m, the K-quants' mins), so that the dot product
// needs the activation's sums per preset_block_sum_length values (PreparedActivation::block_sums).
bool preset_needs_block_sums(GgmlType type);
int preset_block_sum_length(GgmlType type); // 16 for Q2_K, whose mins are per 16 weights; else 32

// dot(row, x) over n weights of a preset type; block_sums: x's sums per preset_block_sum_length values where the type
// needs them.
float preset_row_dot(GgmlType type, const void* row, const float* x, const float* block_sums, size_t n);

} // namespace winnow::cpu
