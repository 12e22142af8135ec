#pragma once
// vec_dot's quantized rows on AVX-512F (vec_dot_avx512.cpp): call only where the CPU has AVX-512F
// (vec_dot_kernel_available(VecDotKernel::avx512)); vec_dot chooses it by itself.
#include <cstddef>
#include <cstdint>

#include "io/ggml_type.h"

namespace winnow::cpu {

// dot(row, x) over nb blocks of a Q8_0, Q4_0 or Q4_1 row; block_sums: x's per-block sums (Q4_0 / Q4_1), else unused.
float quant_row_dot_avx512(GgmlType type, const uint8_t* row, const float* x, const float* block_sums, size_t nb);
// dot(row, x) over n weights of a preset type (Q5_0, Q5_1, Q4_K, Q5_K, Q6_K: vec_dot_preset_avx512.cpp); block_sums:
// x's sums per 32 weights where the type has offsets (preset_needs_block_sums), else unused.
float preset_row_dot_avx512(GgmlType type, const uint8_t* row, const float* x, const float* block_sums, size_t n);

} // namespace winnow::cpu
