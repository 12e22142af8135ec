#pragma once
// The input row of a GEMV block, optionally with its RMSNorm staged in shared memory: linear.cu's fused norm GEMVs and
// qkv_rope_store.cu's fused projections share it, so both give the bits of rms_norm_kernel then the GEMV.
#include <cstdint>

#include "backend/cuda/weight_access.cuh"

namespace winnow::cuda {

// The input row a GEMV block reads. Without a norm, x's row t in global memory. With one (kNorm), the block first
// stages the RMSNorm of that row in shared memory, xn[c] = x[c] * r * w[c], with rms_norm_kernel's bits: the same
// 256-thread strides, block_sum and expressions (elementwise.cu), so that norm + GEMV in one launch gives the bits of
// the two launches. Every thread of the block must call it (it synchronises), before any thread returns.
template <bool kNorm>
__device__ __forceinline__ const float* gemv_input(const float* __restrict__ x, int64_t cols, int t, const float* __restrict__ norm_w, float eps) {
    const float* xt = x + static_cast<size_t>(t) * cols;
    if constexpr (!kNorm) {
        return xt;
    } else {
        extern __shared__ __align__(16) float staged[]; // cols floats (the launch's dynamic shared memory), 16-byte aligned for
                                                       // warp_row_dot's vector loads (the unfused GEMV's path and bits)
        __shared__ float scratch[32];
        float ss = 0.0f;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) ss = fmaf(xt[c], xt[c], ss);
        ss = block_sum(ss, scratch);
        const float r = 1.0f / sqrtf(ss / cols + eps);
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) staged[c] = xt[c] * r * norm_w[c];
        __syncthreads();
        return staged;
    }
}

} // namespace winnow::cuda
