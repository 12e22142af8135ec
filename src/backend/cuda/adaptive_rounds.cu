// The GPU AdaptiveSoftmax's elimination round reduction (logic and the argument for its equality with the CPU loop:
// adaptive_rounds_logic.cuh). Three launches in one stream, one thread per arm:
//   1. reset the result (its reductions' identities);
//   2. per block, the min index of S and the max best_key by warp shuffles, then one atomicMin / atomicMax per block
//      (integer min and max: the same result in any order of blocks, so the host's sequential fold's);
//   3. every thread derives b and floor_b from (1)'s two values (the same bits in each), writes its arm's keep flag,
//      and a block's kept count and "all kept exact" go in by one atomicAdd / atomicAnd.
// Twin: adaptive::eliminate_round_host.
#include "backend/cuda/launch.cuh"
#include "backend/cuda/adaptive_rounds.h"

#include <string>

#include "backend/cuda/cuda_check.h"
#include "winnow/error.h"

namespace winnow::cuda::adaptive {

namespace {

constexpr int kThreads = 256;

__global__ void reset_kernel(RoundResult* r) { *r = RoundResult{}; }

__global__ void best_kernel(const float* mu, const uint8_t* in_S, int64_t n_arms, RoundResult* r) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    int32_t first = kNoArm;
    unsigned long long key = 0;
    if (i < n_arms && in_S[i]) {
        first = static_cast<int32_t>(i);
        key = best_key(mu[i], i);
    }
    for (int off = 16; off > 0; off >>= 1) {
        first = min(first, __shfl_xor_sync(0xffffffffu, first, off));
        key = max(key, __shfl_xor_sync(0xffffffffu, key, off));
    }
    __shared__ int32_t firsts[kThreads / 32];
    __shared__ unsigned long long keys[kThreads / 32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) firsts[warp] = first, keys[warp] = key;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < kThreads / 32; ++w) first = min(first, firsts[w]), key = max(key, keys[w]);
        if (first != kNoArm) atomicMin(&r->first, first);
        if (key != 0) atomicMax(&r->key, key);
    }
}

__global__ void keep_kernel(const float* mu, const float* var, const int32_t* T, const uint8_t* in_S, uint8_t* keep, int64_t n_arms, int dp,
                            float width2, RoundResult* r) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    const int32_t b = pick_best(r->first, r->key, mu);
    const float floor_b = b >= 0 ? best_floor(mu[b], var[b], width2) : 0.0f;
    if (i == 0) r->best = b, r->floor_b = floor_b;
    bool kept = false;
    if (i < n_arms) {
        kept = b >= 0 && in_S[i] && keep_arm(mu[i], var[i], floor_b, width2);
        keep[i] = kept;
    }
    const int block_kept = __syncthreads_count(kept);
    const int block_exact = __syncthreads_and(!kept || T[i] >= dp); // kept implies i < n_arms
    if (threadIdx.x == 0) {
        if (block_kept) atomicAdd(&r->kept, block_kept);
        if (!block_exact) atomicAnd(&r->all_exact, 0);
    }
}

} // namespace

void launch_eliminate_round(const float* mu, const float* var, const int32_t* T, const uint8_t* in_S, uint8_t* keep, int64_t n_arms, int dp,
                            float width2, RoundResult* result, cudaStream_t stream) {
    // arm indices must stay below kNoArm (an empty S's `first`) and fit best_key's 32-bit low half
    if (n_arms >= kNoArm) throw Error(ErrorKind::invalid_argument, "eliminate round: " + std::to_string(n_arms) + " arms (at most 2^31 - 2)");
    launch_plain(reset_kernel, 1, 1, 0, stream, result);
    WINNOW_CUDA_CHECK(cudaGetLastError());
    if (n_arms <= 0) return;
    const unsigned blocks = static_cast<unsigned>((n_arms + kThreads - 1) / kThreads);
    launch_plain(best_kernel, blocks, kThreads, 0, stream, mu, in_S, n_arms, result);
    WINNOW_CUDA_CHECK(cudaGetLastError());
    launch_plain(keep_kernel, blocks, kThreads, 0, stream, mu, var, T, in_S, keep, n_arms, dp, width2, result);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda::adaptive
