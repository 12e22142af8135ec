// Batch-1 GEMV on the stored weight formats, decoded in registers: one warp per output row (16-byte or whole-block
// loads per lane where aligned), a shuffle reduction (gemv_row.cuh, shared with the fused head). The twin is
// CpuBackend::linear (f32 mode); the fused variants' twins are the unfused op sequences (Backend's defaults).
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/gemv_input.cuh"
#include "backend/cuda/gemv_row.cuh"
#include "backend/cuda/launch.cuh"

namespace winnow::cuda {

namespace {

constexpr int kWarpsPerBlock = 8;

// The output row of this thread's warp: the launches below give each warp one row, kWarpsPerBlock to a block.
__device__ __forceinline__ int64_t warp_row_index() { return static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; }

// Row r's bytes of a weight matrix, none past its rows: what pdl_wait_prefetching asks L2 for.
__device__ __forceinline__ WeightBytes weight_row(const uint8_t* w, size_t row_bytes, int64_t rows, int64_t r) {
    return r < rows ? WeightBytes{w + static_cast<size_t>(r) * row_bytes, row_bytes} : WeightBytes{};
}

// Row r (of the parts' rows laid end to end) of the part it falls in.
__device__ __forceinline__ WeightBytes parts_weight_row(const LinearParts& p, int64_t r) {
    const int i = linear_part_of(p, r);
    if (i >= p.count) return {};
    const LinearPartView part = linear_part(p, i);
    return {part.w + static_cast<size_t>(r) * part.row_bytes, part.row_bytes};
}

template <GgmlType T>
__global__ void gemv_kernel(const uint8_t* __restrict__ w, size_t row_bytes, int64_t rows, int64_t cols, const float* __restrict__ bias,
                            const float* __restrict__ x, float* __restrict__ y, bool accumulate, bool prefetch) {
    pdl_wait_prefetching(prefetch, weight_row(w, row_bytes, rows, warp_row_index()));
    pdl_launch_dependents();
    const int64_t r = warp_row_index();
    const int lane = threadIdx.x % 32;
    const int t = blockIdx.y;
    if (r >= rows) return;
    const uint8_t* row = w + static_cast<size_t>(r) * row_bytes;
    const float* xt = x + static_cast<size_t>(t) * cols;
    const float acc = warp_row_dot<T>(row, xt, cols, lane);
    if (lane == 0) {
        const float v = acc + (bias ? bias[r] : 0.0f);
        float* out = y + static_cast<size_t>(t) * rows + r;
        *out = accumulate ? *out + v : v; // accumulate: linear then add's bits, without the add's launch
    }
}

// Up to three GEMVs of one input in one launch (LinearParts): the rows of every part in a row, each warp one row of
// one part, with gemv_kernel's epilogue, so each part gets gemv_kernel's bits. kNorm: of the input's RMSNorm.
template <GgmlType T, bool kNorm>
__global__ void gemv_parts_kernel(LinearParts p, int64_t cols, const float* __restrict__ x, const float* __restrict__ norm_w, float eps, bool prefetch) {
    pdl_wait_prefetching(prefetch, parts_weight_row(p, warp_row_index()));
    pdl_launch_dependents();
    int64_t r = warp_row_index();
    const int lane = threadIdx.x % 32;
    const int t = blockIdx.y;
    const float* xt = gemv_input<kNorm>(x, cols, t, norm_w, eps);
    const int i = linear_part_of(p, r);
    if (i >= p.count) return;
    const LinearPartView part = linear_part(p, i);
    const float acc = warp_row_dot<T>(part.w + static_cast<size_t>(r) * part.row_bytes, xt, cols, lane);
    if (lane == 0) part.y[static_cast<size_t>(t) * part.rows + r] = acc + (part.bias ? part.bias[r] : 0.0f);
}

// y[t][r] = silu(g) * u for g, u = W_gate.row(r) . x[t], W_up.row(r) . x[t]: one warp both rows, in one walk
// (warp_row_dot2). Each of g and u gets gemv_kernel's epilogue without a bias (acc + 0.0f: -0 becomes +0 there too) and the product swiglu_kernel's
// expression, so the bits of gemv, gemv, swiglu. kNorm: of the input's RMSNorm.
template <GgmlType T, bool kNorm>
__global__ void gemv_swiglu_kernel(const uint8_t* __restrict__ w_gate, const uint8_t* __restrict__ w_up, size_t row_bytes, int64_t rows, int64_t cols,
                                   const float* __restrict__ x, float* __restrict__ y, const float* __restrict__ norm_w, float eps, bool prefetch) {
    pdl_wait_prefetching(prefetch, weight_row(w_gate, row_bytes, rows, warp_row_index()), weight_row(w_up, row_bytes, rows, warp_row_index()));
    pdl_launch_dependents();
    const int64_t r = warp_row_index();
    const int lane = threadIdx.x % 32;
    const int t = blockIdx.y;
    const float* xt = gemv_input<kNorm>(x, cols, t, norm_w, eps);
    if (r >= rows) return;
    const float2 gu = warp_row_dot2<T>(w_gate + static_cast<size_t>(r) * row_bytes, w_up + static_cast<size_t>(r) * row_bytes, xt, cols, lane);
    const float g = gu.x + 0.0f, u = gu.y + 0.0f;
    if (lane == 0) y[static_cast<size_t>(t) * rows + r] = g / (1.0f + expf(-g)) * u;
}

} // namespace

void launch_gemv_parts(GgmlType type, const LinearParts& p, int64_t cols, const float* x, int n_tokens, cudaStream_t s, const float* norm_w, float norm_eps) {
    int64_t rows = 0;
    for (int i = 0; i < p.count; ++i) rows += p.rows[i];
    if (rows == 0 || n_tokens == 0) return;
    const dim3 grid(static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock), static_cast<unsigned>(n_tokens));
    const size_t staged = norm_w ? static_cast<size_t>(cols) * sizeof(float) : 0;
    dispatch_weight_type(type, [&]<GgmlType T>() {
        if (norm_w) launch(gemv_parts_kernel<T, true>, grid, kWarpsPerBlock * 32, staged, s, p, cols, x, norm_w, norm_eps, weight_prefetch_enabled());
        else launch(gemv_parts_kernel<T, false>, grid, kWarpsPerBlock * 32, 0, s, p, cols, x, nullptr, 0.0f, weight_prefetch_enabled());
    });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

void launch_gemv_swiglu(GgmlType type, const uint8_t* w_gate, const uint8_t* w_up, size_t row_bytes, int64_t rows, int64_t cols, const float* x, float* y,
                        int n_tokens, cudaStream_t s, const float* norm_w, float norm_eps) {
    if (rows == 0 || n_tokens == 0) return;
    const dim3 grid(static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock), static_cast<unsigned>(n_tokens));
    const size_t staged = norm_w ? static_cast<size_t>(cols) * sizeof(float) : 0;
    dispatch_weight_type(type, [&]<GgmlType T>() {
        if (norm_w) launch(gemv_swiglu_kernel<T, true>, grid, kWarpsPerBlock * 32, staged, s, w_gate, w_up, row_bytes, rows, cols, x, y, norm_w, norm_eps,
                                 weight_prefetch_enabled());
        else launch(gemv_swiglu_kernel<T, false>, grid, kWarpsPerBlock * 32, 0, s, w_gate, w_up, row_bytes, rows, cols, x, y, nullptr, 0.0f,
                                 weight_prefetch_enabled());
    });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

void launch_gemv(GgmlType type, const uint8_t* w, size_t row_bytes, int64_t rows, int64_t cols, const float* bias, const float* x,
                 float* y, int n_tokens, cudaStream_t s, bool accumulate) {
    if (rows == 0 || n_tokens == 0) return;
    const dim3 grid(static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock), static_cast<unsigned>(n_tokens));
    dispatch_weight_type(type, [&]<GgmlType T>() { launch(gemv_kernel<T>, grid, kWarpsPerBlock * 32, 0, s, w, row_bytes, rows, cols, bias, x, y, accumulate,
                                                                           weight_prefetch_enabled()); });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
