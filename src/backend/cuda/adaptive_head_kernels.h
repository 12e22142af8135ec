#pragma once
// Launchers of the GPU AdaptiveSoftmax's remaining kernels (adaptive_head_gpu.cu): the set statistics pull_to_var and
// the rounds decide on, advance()'s grouping, the exact rows, the normalizer's weights and filter, and the log-sum-exp.
// Per-arm logic and reduction orders: adaptive_norm_logic.cuh (their host twins live there too). Every pointer is
// device memory; n = the head's arms (flags and lists hold n entries). Each runs in `stream` and does not wait: the host
// driver (adaptive_query.h) copies the small results back itself. C++17 (nvcc compiles what includes this).
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

#include "backend/cuda/adaptive_norm_logic.cuh"
#include "io/ggml_type.h"

namespace winnow::cuda::adaptive {

// *out = the SetStats of the arms i < n with in_set[i] != 0 (out is reset first).
void launch_set_stats(const uint8_t* in_set, const float* var, const int32_t* T, int64_t n, float thr, int dp, SetStats* out, cudaStream_t stream);

// advance()'s next group: out->from = the smallest T < target over the set, out->count = the arms of the set with
// T == from; active[i] = -1 for those and 0 for every other arm (the masked stream's selection), and list[0 .. count)
// their indices in no particular order (the exact rows' work list).
void launch_mark_group(const uint8_t* in_set, const int32_t* T, int64_t n, int target, int32_t* active, int32_t* list, Group* out,
                       cudaStream_t stream);

// The exact finish of `count` arms list[0 .. count): mu = beta * <row, x> by linear's warp dot product on the stored
// row (gemv_row.cuh: lanes stride the row, fused multiply-adds, butterfly sum), var = 0, T = dp. type: one of the six
// types warp_row_dot reads (F32, F16, BF16, Q8_0, Q4_0, Q4_1), else winnow::Error.
void launch_exact_rows(GgmlType type, const uint8_t* rows, size_t row_bytes, int d, const float* x, const int32_t* list, int count, float beta,
                       int dp, float* mu, float* var, int32_t* T, cudaStream_t stream);
bool exact_rows_supported(GgmlType type);

// The normalizer's weights: *max_key = the max_key of log_alpha over the n arms, e[i] = norm_weight(..), and
// partials[b], partials[blocks + b] = block b's sums of e and of sqrt(e) (blocks = norm_blocks(n)).
void launch_norm_weights(const float* mu, const float* var, int64_t n, float c2, float* e, uint32_t* max_key, double* partials, cudaStream_t stream);

// todo[i] = (first ? 1 : todo[i]) && norm_fails(e[i], var[i], T[i], dp, f, a, b) for i < n; *count = how many.
void launch_norm_filter(bool first, const float* e, const float* var, const int32_t* T, int64_t n, int dp, double f, double a, double b,
                        uint8_t* todo, int32_t* count, cudaStream_t stream);

// The log-sum-exp's parts: *max_key = the max_key over v[0 .. n), partials[b] = block b's sum of exp(v_i - max).
void launch_sum_exp(const float* v, int64_t n, uint32_t* max_key, double* partials, cudaStream_t stream);

} // namespace winnow::cuda::adaptive
