#pragma once
// The last block to finish a shared piece of work: flash-decoding's split merges (attention_parts.cuh, the block-sparse
// attention) and the sample op's finish over its slices (sample.cu) are done by whichever block arrives last, so that
// neither needs a launch of its own.
#include "backend/cuda/cuda_check.h"

namespace winnow::cuda {

// Whether this block is the last of `expected` blocks to arrive at *arrivals. Every thread's global writes before the
// call are visible to the last block (each writer fences, then one count per block; the last block fences again before
// it reads), and the last block resets the count to 0 for the next launch (a recorded step replays the same counters).
__device__ inline bool arrive_last(int* arrivals, int expected) {
    __shared__ bool last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        last = atomicAdd(arrivals, 1) == expected - 1;
        if (last) {
            atomicExch(arrivals, 0);
            __threadfence();
        }
    }
    __syncthreads();
    return last;
}

} // namespace winnow::cuda
