// The GPU AdaptiveSoftmax's remaining kernels (issue #15 item 2; launchers: adaptive_head_kernels.h, per-arm logic and
// the reduction orders: adaptive_norm_logic.cuh, whose *_host functions are the CPU twins). Written blind (no GPU on the
// machine that wrote them): one thread per arm, warp shuffles, then one atomic per warp or block; the order-dependent
// sums are made deterministic by writing per-block partials that the host adds in block order. No tuning.
#include "backend/cuda/launch.cuh"
#include "backend/cuda/adaptive_head_kernels.h"
#include "backend/cuda/adaptive_block_sum.cuh"
#include "backend/cuda/adaptive_exact_row.cuh"

#include <string>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/gemv_row.cuh"
#include "winnow/error.h"

namespace winnow::cuda::adaptive {

namespace {

constexpr int kThreads = kNormThreads;
constexpr unsigned kFull = 0xffffffffu;

unsigned blocks_for(int64_t n) { return static_cast<unsigned>(norm_blocks(n)); }

__global__ void reset_stats_kernel(SetStats* s) { *s = SetStats{}; }
__global__ void reset_group_kernel(Group* g) { *g = Group{}; }
__global__ void reset_word_kernel(uint32_t* w) { *w = 0; }

// SetStats per warp by shuffles (sum, min, or, max: exact in any order), one set of atomics per warp with an arm.
__global__ void set_stats_kernel(const uint8_t* in_set, const float* var, const int32_t* T, int64_t n, float thr, int dp, SetStats* out) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    SetStats s;
    if (i < n && in_set[i]) set_stats_arm(var[i], T[i], thr, dp, s);
    for (int o = 16; o > 0; o >>= 1) {
        s.count += __shfl_xor_sync(kFull, s.count, o);
        s.min_T = min(s.min_T, __shfl_xor_sync(kFull, s.min_T, o));
        s.failing |= __shfl_xor_sync(kFull, s.failing, o);
        s.max_var_key = max(s.max_var_key, __shfl_xor_sync(kFull, s.max_var_key, o));
    }
    if (threadIdx.x % 32 == 0 && s.count > 0) {
        atomicAdd(&out->count, s.count);
        atomicMin(&out->min_T, s.min_T);
        if (s.failing) atomicOr(&out->failing, 1);
        if (s.max_var_key) atomicMax(&out->max_var_key, s.max_var_key);
    }
}

// The smallest T below target over the set (warp min, one atomicMin per warp).
__global__ void group_min_kernel(const uint8_t* in_set, const int32_t* T, int64_t n, int target, Group* g) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    int32_t t = kNoArm;
    if (i < n && in_set[i] && T[i] < target) t = T[i];
    for (int o = 16; o > 0; o >>= 1) t = min(t, __shfl_xor_sync(kFull, t, o));
    if (threadIdx.x % 32 == 0 && t != kNoArm) atomicMin(&g->from, t);
}

// Marks the group (T == from; such an arm has T < target) for the masked stream and lists it for the exact rows. Every
// arm's active word is written, so no earlier group's marks survive.
__global__ void group_mark_kernel(const uint8_t* in_set, const int32_t* T, int64_t n, int32_t* active, int32_t* list, Group* g) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const bool mine = in_set[i] && T[i] == g->from;
    active[i] = mine ? -1 : 0;
    if (mine) list[atomicAdd(&g->count, 1)] = static_cast<int32_t>(i);
}

// One warp per listed arm: linear's dot product (gemv_row.cuh), then the exact estimate as the CPU's exact_all writes it.
template <GgmlType W>
__global__ void exact_rows_kernel(const uint8_t* rows, size_t row_bytes, int d, const float* x, const int32_t* list, int count, float beta, int dp,
                                  float* mu, float* var, int32_t* T) {
    const int w = static_cast<int>((static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32), lane = threadIdx.x % 32;
    if (w >= count) return; // whole warps leave together (count is uniform), so the shuffles below see full warps
    exact_row_by_warp<W>(rows, row_bytes, d, x, list[w], beta, dp, mu, var, T, lane);
}

__global__ void max_key_kernel(const float* v, const float* var, int64_t n, float c2, bool log_alpha_of, uint32_t* key) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    uint32_t k = 0;
    if (i < n) k = max_key(log_alpha_of ? log_alpha(v[i], var[i], c2) : v[i]);
    for (int o = 16; o > 0; o >>= 1) k = max(k, __shfl_xor_sync(kFull, k, o));
    if (threadIdx.x % 32 == 0 && k) atomicMax(key, k);
}

__global__ void norm_weights_kernel(const float* mu, const float* var, int64_t n, float c2, float* e, const uint32_t* key, double* partials) {
    __shared__ double warp_sums[kNormWarps];
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    const float la_max = max_from_key(*key);
    double ve = 0, vg = 0;
    if (i < n) {
        const float w = norm_weight(log_alpha(mu[i], var[i], c2), la_max);
        e[i] = w;
        ve = w;
        vg = sqrt_rn(w);
    }
    const double pe = block_sum_in_order(ve, warp_sums);
    const double pg = block_sum_in_order(vg, warp_sums);
    if (threadIdx.x == 0) partials[blockIdx.x] = pe, partials[gridDim.x + blockIdx.x] = pg;
}

__global__ void reset_count_kernel(int32_t* c) { *c = 0; }

__global__ void norm_filter_kernel(bool first, const float* e, const float* var, const int32_t* T, int64_t n, int dp, double f, double a, double b,
                                   uint8_t* todo, int32_t* count) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    bool flag = false;
    if (i < n) {
        flag = (first || todo[i]) && norm_fails(e[i], var[i], T[i], dp, f, a, b);
        todo[i] = flag;
    }
    const int block = __syncthreads_count(flag);
    if (threadIdx.x == 0 && block) atomicAdd(count, block);
}

__global__ void sum_exp_kernel(const float* v, int64_t n, const uint32_t* key, double* partials) {
    __shared__ double warp_sums[kNormWarps];
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    const float mx = max_from_key(*key);
    const double t = i < n ? static_cast<double>(exp_f(sub_rn(v[i], mx))) : 0.0;
    const double p = block_sum_in_order(t, warp_sums);
    if (threadIdx.x == 0) partials[blockIdx.x] = p;
}

void check_launch() { WINNOW_CUDA_CHECK(cudaGetLastError()); }

} // namespace

void launch_set_stats(const uint8_t* in_set, const float* var, const int32_t* T, int64_t n, float thr, int dp, SetStats* out, cudaStream_t stream) {
    launch_plain(reset_stats_kernel, 1, 1, 0, stream, out);
    check_launch();
    if (n <= 0) return;
    launch_plain(set_stats_kernel, blocks_for(n), kThreads, 0, stream, in_set, var, T, n, thr, dp, out);
    check_launch();
}

void launch_mark_group(const uint8_t* in_set, const int32_t* T, int64_t n, int target, int32_t* active, int32_t* list, Group* out,
                       cudaStream_t stream) {
    launch_plain(reset_group_kernel, 1, 1, 0, stream, out);
    check_launch();
    if (n <= 0) return;
    launch_plain(group_min_kernel, blocks_for(n), kThreads, 0, stream, in_set, T, n, target, out);
    check_launch();
    launch_plain(group_mark_kernel, blocks_for(n), kThreads, 0, stream, in_set, T, n, active, list, out);
    check_launch();
}

bool exact_rows_supported(GgmlType type) { return is_core_type(type); } // dispatch_core_weight_type's types

void launch_exact_rows(GgmlType type, const uint8_t* rows, size_t row_bytes, int d, const float* x, const int32_t* list, int count, float beta,
                       int dp, float* mu, float* var, int32_t* T, cudaStream_t stream) {
    if (!exact_rows_supported(type)) throw Error(ErrorKind::invalid_argument, "adaptive head (cuda): exact rows of this weight type are not supported");
    if (count <= 0) return;
    constexpr int kWarps = kThreads / 32;
    const unsigned grid = static_cast<unsigned>((count + kWarps - 1) / kWarps);
    dispatch_core_weight_type(type, [&]<GgmlType W>() { launch_plain(exact_rows_kernel<W>, grid, kThreads, 0, stream, rows, row_bytes, d, x, list, count, beta, dp, mu, var, T); });
    check_launch();
}

void launch_norm_weights(const float* mu, const float* var, int64_t n, float c2, float* e, uint32_t* max_key, double* partials, cudaStream_t stream) {
    launch_plain(reset_word_kernel, 1, 1, 0, stream, max_key);
    check_launch();
    if (n <= 0) return;
    launch_plain(max_key_kernel, blocks_for(n), kThreads, 0, stream, mu, var, n, c2, true, max_key);
    check_launch();
    launch_plain(norm_weights_kernel, blocks_for(n), kThreads, 0, stream, mu, var, n, c2, e, max_key, partials);
    check_launch();
}

void launch_norm_filter(bool first, const float* e, const float* var, const int32_t* T, int64_t n, int dp, double f, double a, double b,
                        uint8_t* todo, int32_t* count, cudaStream_t stream) {
    launch_plain(reset_count_kernel, 1, 1, 0, stream, count);
    check_launch();
    if (n <= 0) return;
    launch_plain(norm_filter_kernel, blocks_for(n), kThreads, 0, stream, first, e, var, T, n, dp, f, a, b, todo, count);
    check_launch();
}

void launch_sum_exp(const float* v, int64_t n, uint32_t* max_key, double* partials, cudaStream_t stream) {
    launch_plain(reset_word_kernel, 1, 1, 0, stream, max_key);
    check_launch();
    if (n <= 0) return;
    launch_plain(max_key_kernel, blocks_for(n), kThreads, 0, stream, v, nullptr, n, 0.0f, false, max_key);
    check_launch();
    launch_plain(sum_exp_kernel, blocks_for(n), kThreads, 0, stream, v, n, max_key, partials);
    check_launch();
}

} // namespace winnow::cuda::adaptive
