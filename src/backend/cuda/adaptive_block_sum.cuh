#pragma once
// A block's sum of one double per thread in the order adaptive_norm_logic.cuh documents (and its block_sum_host
// reproduces): each warp's xor butterfly, then thread 0 adds the warps' values in warp order. For blocks of
// kNormThreads threads; warp_sums: kNormWarps doubles of shared memory (static or dynamic: the caller's). Device code,
// for the .cu files that include it.
#include "backend/cuda/adaptive_norm_logic.cuh"

namespace winnow::cuda::adaptive {

__device__ inline double block_sum_in_order(double v, double* warp_sums) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = v;
    __syncthreads();
    double block = 0;
    if (threadIdx.x == 0) {
        block = warp_sums[0];
        for (int w = 1; w < kNormWarps; ++w) block += warp_sums[w];
    }
    __syncthreads(); // warp_sums may be reused by the caller's next sum
    return block;    // valid in thread 0
}

} // namespace winnow::cuda::adaptive
