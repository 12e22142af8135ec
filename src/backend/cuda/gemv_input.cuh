#pragma once
// The input row of a GEMV block, optionally with its RMSNorm staged in shared memory: linear.cu's fused norm GEMVs and
// qkv_rope_store.cu's fused projections share it, so both give the bits of rms_norm_kernel then the GEMV. And the
// fields of one part of a LinearParts kernel argument.
#include <cstdint>

#include "backend/cuda/shared_memory.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/weight_access.cuh"

namespace winnow::cuda {

// The input row a GEMV block reads. Without a norm, x's row t in global memory. With one (kNorm), the block first
// stages the RMSNorm of that row in shared memory, xn[c] = x[c] * r * w[c], with rms_norm_kernel's bits: the same
// 256-thread strides, block_sum and expressions (elementwise.cu), so that norm + GEMV in one launch gives the bits of
// the two launches. Every thread of the block must call it (it synchronises), before any thread returns. (x is not
// __restrict__: warp_row_dot says why.)
template <bool kNorm>
__device__ __forceinline__ const float* gemv_input(const float* x, int64_t cols, int t, const float* __restrict__ norm_w, float eps) {
    const float* xt = x + static_cast<size_t>(t) * cols;
    if constexpr (!kNorm) {
        return xt;
    } else {
        WINNOW_DYNAMIC_SHARED(float, staged); // cols floats (the launch's dynamic shared memory), 16-byte aligned for
                                                       // warp_row_dot's vector loads (the unfused GEMV's path and bits)
        __shared__ float scratch[32];
        // A row of up to kHeld elements per thread (2,048 at 256 threads) is loaded in one go, every load issued before
        // the first is summed: one L2 round trip where the loop below makes one per stride, a cost every fused GEMV
        // pays before its first weight product. The sums and products are the loop's, in its order.
        constexpr int kHeld = 8;
        if (cols <= static_cast<int64_t>(kHeld) * blockDim.x) {
            float xv[kHeld], wv[kHeld];
#pragma unroll
            for (int k = 0; k < kHeld; ++k) {
                const int64_t c = threadIdx.x + static_cast<int64_t>(k) * blockDim.x;
                xv[k] = c < cols ? xt[c] : 0.0f;
                wv[k] = c < cols ? norm_w[c] : 0.0f;
            }
            float ss = 0.0f;
#pragma unroll
            for (int k = 0; k < kHeld; ++k)
                if (threadIdx.x + static_cast<int64_t>(k) * blockDim.x < cols) ss = fmaf(xv[k], xv[k], ss);
            ss = block_sum(ss, scratch);
            const float r = 1.0f / sqrtf(ss / cols + eps);
#pragma unroll
            for (int k = 0; k < kHeld; ++k) {
                const int64_t c = threadIdx.x + static_cast<int64_t>(k) * blockDim.x;
                if (c < cols) staged[c] = xv[k] * r * wv[k];
            }
            __syncthreads();
            return staged;
        }
        float ss = 0.0f;
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) ss = fmaf(xt[c], xt[c], ss);
        ss = block_sum(ss, scratch);
        const float r = 1.0f / sqrtf(ss / cols + eps);
        for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) staged[c] = xt[c] * r * norm_w[c];
        __syncthreads();
        return staged;
    }
}

// Part i's fields of a LinearParts kernel argument, read with constant indices only: a dynamic index into an array of
// the kernel's parameter would copy the whole argument to local memory (a stack frame in every thread).
struct LinearPartView {
    const uint8_t* w;
    size_t row_bytes;
    int64_t rows;
    const float* bias;
    float* y;
};
__device__ __forceinline__ LinearPartView linear_part(const LinearParts& p, int i) {
    LinearPartView v{p.w[0], p.row_bytes[0], p.rows[0], p.bias[0], p.y[0]};
#pragma unroll
    for (int k = 1; k < kMaxLinearParts; ++k)
        if (i == k) v = {p.w[k], p.row_bytes[k], p.rows[k], p.bias[k], p.y[k]};
    return v;
}

// The part that row r of the parts' rows laid end to end falls in (p.count when none), and r made relative to it.
__device__ __forceinline__ int linear_part_of(const LinearParts& p, int64_t& r) {
    int i = 0;
#pragma unroll
    for (int k = 0; k < kMaxLinearParts; ++k)
        if (i == k && k < p.count && r >= p.rows[k]) r -= p.rows[k], i = k + 1;
    return i;
}

} // namespace winnow::cuda
