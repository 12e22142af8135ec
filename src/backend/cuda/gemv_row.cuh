#pragma once
// One GEMV row's dot product by one warp: lanes stride the row (lane, lane + 32, ...), fused multiply-adds in that
// order, then the warp's butterfly sum. linear's GEMV and the fused head (head_top_k.cu) both call this, so their
// logits are the same bits and the fused head's ids are exactly linear + top_k's.
#include <cstdint>

#include "backend/cuda/weight_access.cuh"

namespace winnow::cuda {

// W.row . x for a row stored as T; the result in every lane.
template <GgmlType T>
__device__ __forceinline__ float warp_row_dot(const uint8_t* __restrict__ row, const float* __restrict__ x, int64_t cols, int lane) {
    float acc = 0.0f;
    for (int64_t c = lane; c < cols; c += 32) acc = fmaf(weight_at<T>(row, c), x[c], acc);
    return warp_sum(acc);
}

} // namespace winnow::cuda
