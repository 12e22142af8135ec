#pragma once
// vec_dot's quantized rows on AVX-512F (vec_dot_avx512.cpp): call only where the CPU has AVX-512F
// (vec_dot_kernel_available(VecDotKernel::avx512)); vec_dot chooses it by itself.
#include <cstddef>
#include <cstdint>

#include "io/ggml_type.h"

namespace winnow::cpu {

// dot(row, x) over nb blocks of a Q8_0, Q4_0 or Q4_1 row; block_sums: x's per-block sums (Q4_0 / Q4_1), else unused.
float quant_row_dot_avx512(GgmlType type, const uint8_t* row, const float* x, const float* block_sums, size_t nb);

} // namespace winnow::cpu
