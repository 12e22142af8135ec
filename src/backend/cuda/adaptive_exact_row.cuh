#pragma once
// An arm's exact finish by one warp, shared by the host-driven kernel (adaptive_head_gpu.cu: exact_rows_kernel) and the
// persistent query (adaptive_persistent.cu), so that both give its estimate the same bits: linear's warp dot product
// on the stored row (gemv_row.cuh), then mu = beta * dot as the CPU's exact_all writes it, var = 0, T = d'. Every lane
// of the warp calls it (the dot product's shuffles); lane 0 writes. Device code, for the .cu files that include it.
#include <cstddef>
#include <cstdint>

#include "backend/cuda/adaptive_warmup_logic.cuh" // ArmState, mul_rn
#include "backend/cuda/gemv_row.cuh"

namespace winnow::cuda::adaptive {

template <GgmlType W>
__device__ inline void exact_row_by_warp(const uint8_t* rows, size_t row_bytes, int d, const float* x, int32_t i, float beta, int dp,
                                         float* mu, float* var, int32_t* T, int lane) {
    const float dot = warp_row_dot<W>(rows + static_cast<size_t>(i) * row_bytes, x, d, lane);
    if (lane == 0) {
        mu[i] = mul_rn(beta, dot);
        var[i] = 0.0f;
        T[i] = dp;
    }
}

} // namespace winnow::cuda::adaptive
