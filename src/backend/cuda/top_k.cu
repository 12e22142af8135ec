// The exact head's selection on the device: the best k logits (ties: lower id first) by k block-wide argmax passes,
// each pass taking the best element after the previous pick in the order (value descending, id ascending); and the
// log-normalizer log sum exp, summed in double. One block of 1024 threads: the logits are read k (+2) times, which
// for a vocabulary of 50K and k <= 64 is microseconds. Twin: CpuBackend::top_k.
#include <climits>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/weight_access.cuh"

namespace winnow::cuda {

namespace {

constexpr int kThreads = 1024;

__device__ __forceinline__ bool better(float v, int32_t i, float bv, int32_t bi) { return v > bv || (v == bv && i < bi); }

__global__ void top_k_kernel(const float* __restrict__ logits, int64_t n, int k, int32_t* __restrict__ ids, float* __restrict__ values,
                             double* __restrict__ log_norm) {
    __shared__ float wv[32];
    __shared__ int32_t wi[32];
    __shared__ float prev_v;
    __shared__ int32_t prev_i;
    __shared__ float top_v;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    for (int r = 0; r < k; ++r) {
        float bv = -INFINITY;
        int32_t bi = INT_MAX;
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
            const float v = logits[i];
            const bool after_prev = r == 0 || v < prev_v || (v == prev_v && i > prev_i);
            if (after_prev && better(v, static_cast<int32_t>(i), bv, bi)) {
                bv = v;
                bi = static_cast<int32_t>(i);
            }
        }
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (better(ov, oi, bv, bi)) { bv = ov; bi = oi; }
        }
        if (lane == 0) { wv[warp] = bv; wi[warp] = bi; }
        __syncthreads();
        if (warp == 0) {
            bv = wv[lane];
            bi = wi[lane];
            for (int o = 16; o > 0; o >>= 1) {
                const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
                const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
                if (better(ov, oi, bv, bi)) { bv = ov; bi = oi; }
            }
            if (lane == 0) {
                ids[r] = bi;
                values[r] = bv;
                prev_v = bv;
                prev_i = bi;
                if (r == 0) top_v = bv;
            }
        }
        __syncthreads();
    }
    if (!log_norm) return;
    __shared__ double ws[32];
    const double mx = top_v;
    double s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += exp(static_cast<double>(logits[i]) - mx);
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) ws[warp] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0;
        for (int w = 0; w < kThreads / 32; ++w) total += ws[w];
        *log_norm = mx + log(total);
    }
}

} // namespace

void launch_top_k(const float* logits, int64_t n, int k, int32_t* ids, float* values, double* log_norm, cudaStream_t s) {
    top_k_kernel<<<1, kThreads, 0, s>>>(logits, n, k, ids, values, log_norm);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
