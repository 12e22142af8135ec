#pragma once
// Dot products of one stored weight row (any supported type) with an fp32 vector, accumulated in fp32.
#include <cstddef>
#include <vector>

#include "io/ggml_type.h"

namespace winnow::cpu {

// An activation vector prepared once (per linear() call) for dot products with many rows of one type.
struct PreparedActivation {
    const float* x = nullptr;      // the values
    std::vector<float> block_sums; // types with an offset per block (Q4_0's -8d, Q4_1's m, Q5_1, Q4_K, Q5_K): x's sums per
                                   // 32 (Q2_K: per 16, its sub-block)
};
void prepare_activation(GgmlType type, const float* x, size_t n, PreparedActivation& out);

// dot(row, x) for n elements (a multiple of the type's block), x prepared for `type`. The preset types (io/quant.h:
// Q5_0, Q5_1, Q2_K ... Q6_K, IQ4_NL, IQ4_XS) go through vec_dot_preset.h.
float vec_dot(GgmlType type, const void* row, const PreparedActivation& x, size_t n);
float vec_dot_f32(const float* a, const float* b, size_t n);

// The kernel of vec_dot's quantized rows (Q8_0, Q4_0, Q4_1): `baseline`, the one the build's -march gives (AVX2, or
// plain loops below it), or `avx512`, compiled for AVX-512F whatever -march is and chosen at run time where the CPU has
// it (`automatic`). The environment's WINNOW_CPU_DOT_KERNEL (baseline or avx512) forces one for A/B measurements.
// The two sum in another order, so their results differ by rounding.
enum class VecDotKernel { automatic, baseline, avx512 };
bool vec_dot_kernel_available(VecDotKernel k);
VecDotKernel vec_dot_kernel_in_use(); // the kernel vec_dot runs now: the forced one, else the environment's, else the best
void vec_dot_force_kernel(VecDotKernel k); // automatic restores the default; throws if unavailable
const char* vec_dot_kernel_name(VecDotKernel k); // baseline is named by its instructions: "avx2" or "scalar"

} // namespace winnow::cpu
