// The exact head's selection on the device: the best k logits by k block-wide passes, each taking the smallest key
// after the previous pick's in the order sample_chain::top_k_key (value descending, ties by lower id; NaNs as
// std::max_element has them: one in slot 0 first, the others last), so k = 1 is the host's max_element; and the
// log-normalizer log sum exp, summed in double with the fused head's terms (head_top_k_logic.cuh: a row of -inf gives
// -inf, a NaN gives NaN). One block of 1024 threads: the logits are read k (+2) times, which
// for a vocabulary of 50K and k <= 64 is microseconds. Twin: CpuBackend::top_k. The key order runs on the host in
// tests/ops/test_sample_kernel_logic.cpp (SampleKernelOnHost.TopKKeyOrder).
#include <climits>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/head_top_k_logic.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/sample_chain.cuh"
#include "backend/cuda/weight_access.cuh"

namespace winnow::cuda {

namespace {

constexpr int kThreads = 1024;

__device__ __forceinline__ unsigned long long warp_min(unsigned long long v) {
    for (int o = 16; o > 0; o >>= 1) {
        const unsigned long long other = __shfl_xor_sync(0xffffffffu, v, o);
        v = other < v ? other : v;
    }
    return v;
}

__global__ void top_k_kernel(const float* __restrict__ logits, int64_t n, int k, int32_t* __restrict__ ids, float* __restrict__ values,
                             double* __restrict__ log_norm) {
    pdl_wait();
    pdl_launch_dependents();
    __shared__ unsigned long long wk[32];
    __shared__ unsigned long long prev; // the previous pass's key
    __shared__ float top_v;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int r = 0; r < k; ++r) {
        unsigned long long best = sample_chain::kNone;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
            const unsigned long long key = sample_chain::top_k_key(logits[i], static_cast<uint32_t>(i));
            if ((r == 0 || key > prev) && key < best) best = key;
        }
        best = warp_min(best);
        if (lane == 0) wk[warp] = best;
        __syncthreads();
        if (warp == 0) {
            best = warp_min(wk[lane]);
            if (lane == 0) {
                // k <= n distinct keys: a pass always finds one
                const int32_t id = static_cast<int32_t>(best & 0xFFFFFFFFu);
                ids[r] = id;
                values[r] = logits[id];
                prev = best;
                if (r == 0) top_v = values[r];
            }
        }
        __syncthreads();
    }
    if (!log_norm) return;
    __shared__ double ws[32];
    double s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += head_top_k::exp_term(logits[i], top_v);
    s = warp_sum(s);
    if (lane == 0) ws[warp] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0;
        for (int w = 0; w < kThreads / 32; ++w) total += ws[w];
        *log_norm = head_top_k::log_norm(top_v, total);
    }
}

} // namespace

void launch_top_k(const float* logits, int64_t n, int k, int32_t* ids, float* values, double* log_norm, cudaStream_t s) {
    launch(top_k_kernel, 1, kThreads, 0, s, logits, n, k, ids, values, log_norm);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
