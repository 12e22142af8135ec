// Per-row and elementwise kernels: embedding lookup, RMSNorm, LayerNorm, RoPE, cache writes, GELU, SwiGLU, residual
// adds. Twins: the CPU backend's ops of the same names, i.e. the loops of backend/cpu/reference_ops.h.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/rope_pair.cuh"
#include "backend/cuda/weight_access.cuh"

namespace winnow::cuda {

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

template <GgmlType T>
__global__ void get_rows_kernel(const uint8_t* __restrict__ table, size_t row_bytes, int64_t n_rows, int64_t cols, const int32_t* __restrict__ ids,
                                float* __restrict__ out) {
    pdl_wait();
    pdl_launch_dependents();
    const int i = blockIdx.x;
    const int32_t id = ids[i];
    if (id < 0 || id >= n_rows) return; // the host checked the ids before uploading them
    const uint8_t* row = table + static_cast<size_t>(id) * row_bytes;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) out[static_cast<size_t>(i) * cols + c] = weight_at<T>(row, c);
}

// One block per row; the sums in fp32 across the block (the reference sums in double: the difference is far under
// the harness tolerance).
__global__ void rms_norm_kernel(const float* __restrict__ x, const float* __restrict__ w, float eps, float* __restrict__ y, int64_t cols) {
    pdl_wait();
    pdl_launch_dependents();
    __shared__ float scratch[32];
    const float* xr = x + static_cast<size_t>(blockIdx.x) * cols;
    float* yr = y + static_cast<size_t>(blockIdx.x) * cols;
    float ss = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) ss = fmaf(xr[c], xr[c], ss);
    ss = block_sum(ss, scratch);
    const float r = 1.0f / sqrtf(ss / cols + eps);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = xr[c] * r * w[c];
}

__global__ void layer_norm_kernel(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b, float eps,
                                  float* __restrict__ y, int64_t cols) {
    pdl_wait();
    pdl_launch_dependents();
    __shared__ float scratch[32];
    const float* xr = x + static_cast<size_t>(blockIdx.x) * cols;
    float* yr = y + static_cast<size_t>(blockIdx.x) * cols;
    float s = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += xr[c];
    const float mean = block_sum(s, scratch) / cols;
    float v = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) v = fmaf(xr[c] - mean, xr[c] - mean, v);
    const float r = 1.0f / sqrtf(block_sum(v, scratch) / cols + eps);
    // rounded as written (nvcc would fuse the last product into the add; the emulator and the CPU do not)
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = __fadd_rn(__fmul_rn(__fmul_rn(xr[c] - mean, r), w[c]), b[c]);
}

// One thread per (row, head, pair); the rotation is rope_pair.cuh's, which the fused rope_store_kv kernel shares.
__global__ void rope_kernel(float* __restrict__ x, int64_t rows, int n_heads, int head_dim, int rope_dim, int pos0, float base, bool adjacent,
                            const int32_t* __restrict__ pos_dev, const float* __restrict__ freq_factors) {
    pdl_wait();
    pdl_launch_dependents();
    if (pos_dev) pos0 = *pos_dev;
    const int half = rope_dim / 2;
    const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= rows * n_heads * half) return;
    const int i = static_cast<int>(idx % half);
    const int h = static_cast<int>((idx / half) % n_heads);
    const int64_t t = idx / (static_cast<int64_t>(half) * n_heads);
    float* xh = x + (static_cast<size_t>(t) * n_heads + h) * head_dim;
    const RotatedPair r = rope_rotated_pair(xh, i, half, rope_dim, pos0 + t, base, adjacent, freq_factors);
    xh[r.a] = r.xa;
    xh[r.b] = r.xb;
}

template <GgmlType T>
__global__ void copy_rows_kernel(const float* __restrict__ src, void* __restrict__ dst, int64_t n) {
    pdl_wait();
    pdl_launch_dependents();
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) store_act<T>(dst, i, src[i]);
}

template <GgmlType T>
__global__ void copy_rows_at_kernel(const float* __restrict__ src, int64_t src_rows, void* __restrict__ dst, int64_t dst_rows, int64_t cols,
                                    const int32_t* __restrict__ row_dev) {
    pdl_wait();
    pdl_launch_dependents();
    const int64_t row = *row_dev;
    // The host cannot check a row it never sees; the CPU backend's copy_rows throws on it, so reaching this is a bug in
    // the caller (a recorded step replayed past its cache). Trap, a sticky error the next sync reports, rather than
    // leave the cache stale without a word. (row > dst_rows - src_rows, not row + src_rows: no overflow past the test.)
    if (row < 0 || row > dst_rows - src_rows) __trap();
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < src_rows * cols) store_act<T>(dst, row * cols + i, src[i]);
}

__global__ void gelu_kernel(float* __restrict__ x, int64_t n) {
    pdl_wait();
    pdl_launch_dependents();
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float v = x[i];
    // the cubic term's product rounded before the add, as the emulator and the CPU round it (nvcc would fuse them)
    x[i] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * __fadd_rn(v, __fmul_rn(0.044715f * v * v, v))));
}

__global__ void swiglu_kernel(const float* __restrict__ gate, const float* up, float* out, int64_t n) { // out may be up
    pdl_wait();
    pdl_launch_dependents();
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];
}

__global__ void geglu_kernel(const float* __restrict__ gate, const float* up, float* out, int64_t n) { // out may be up
    pdl_wait();
    pdl_launch_dependents();
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float g = gate[i];
    // gelu_kernel's rounding of the cubic term, so that this equals gelu_tanh(gate) then the product
    out[i] = 0.5f * g * (1.0f + tanhf(0.7978845608028654f * __fadd_rn(g, __fmul_rn(0.044715f * g * g, g)))) * up[i];
}

__global__ void scale_kernel(float* __restrict__ x, float s, int64_t n) {
    pdl_wait();
    pdl_launch_dependents();
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= s;
}

__global__ void softcap_kernel(float* __restrict__ x, float cap, int64_t n) {
    pdl_wait();
    pdl_launch_dependents();
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) x[i] = cap * tanhf(x[i] / cap);
}

__global__ void add_kernel(float* __restrict__ y, const float* __restrict__ x, int64_t rows, int64_t x_rows, int64_t cols) {
    pdl_wait();
    pdl_launch_dependents();
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    y[i] += x[x_rows == 1 ? i % cols : i];
}

} // namespace

void launch_get_rows(GgmlType type, const uint8_t* table, size_t row_bytes, int64_t n_rows, int64_t cols, const int32_t* ids, int n,
                     float* out, cudaStream_t s) {
    if (n == 0) return;
    dispatch_weight_type(type, [&]<GgmlType T>() { launch(get_rows_kernel<T>, n, kThreads, 0, s, table, row_bytes, n_rows, cols, ids, out); });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

void launch_rms_norm(const float* x, const float* w, float eps, float* y, int64_t rows, int64_t cols, cudaStream_t s) {
    if (rows == 0) return;
    launch(rms_norm_kernel, static_cast<unsigned>(rows), kThreads, 0, s, x, w, eps, y, cols);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

void launch_layer_norm(const float* x, const float* w, const float* b, float eps, float* y, int64_t rows, int64_t cols, cudaStream_t s) {
    if (rows == 0) return;
    launch(layer_norm_kernel, static_cast<unsigned>(rows), kThreads, 0, s, x, w, b, eps, y, cols);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

void launch_rope(float* x, int64_t rows, int n_heads, int head_dim, int rope_dim, int pos0, float base, RopeStyle style, cudaStream_t s,
                 const int32_t* pos_dev, const float* freq_factors) {
    const int64_t n = rows * n_heads * (rope_dim / 2);
    if (style == RopeStyle::none || n == 0) return;
    launch(rope_kernel, blocks_for(n), kThreads, 0, s, x, rows, n_heads, head_dim, rope_dim, pos0, base, style == RopeStyle::adjacent_pairs, pos_dev,
           freq_factors);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

void launch_copy_rows(const float* src, void* dst, GgmlType dst_type, int64_t n, cudaStream_t s) {
    if (n == 0) return;
    dispatch_act_type(dst_type, [&]<GgmlType T>() { launch(copy_rows_kernel<T>, blocks_for(n), kThreads, 0, s, src, dst, n); });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

void launch_copy_rows_at(const float* src, int64_t src_rows, void* dst, GgmlType dst_type, int64_t dst_rows, int64_t cols, const int32_t* row_dev,
                         cudaStream_t s) {
    if (src_rows * cols == 0) return;
    dispatch_act_type(dst_type, [&]<GgmlType T>() {
        launch(copy_rows_at_kernel<T>, blocks_for(src_rows * cols), kThreads, 0, s, src, src_rows, dst, dst_rows, cols, row_dev);
    });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

void launch_gelu_tanh(float* x, int64_t n, cudaStream_t s) {
    if (n == 0) return;
    launch(gelu_kernel, blocks_for(n), kThreads, 0, s, x, n);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

void launch_swiglu(const float* gate, const float* up, float* out, int64_t n, cudaStream_t s) {
    if (n == 0) return;
    launch(swiglu_kernel, blocks_for(n), kThreads, 0, s, gate, up, out, n);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

void launch_geglu(const float* gate, const float* up, float* out, int64_t n, cudaStream_t s) {
    if (n == 0) return;
    launch(geglu_kernel, blocks_for(n), kThreads, 0, s, gate, up, out, n);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

void launch_scale(float* x, float scale, int64_t n, cudaStream_t s) {
    if (n == 0) return;
    launch(scale_kernel, blocks_for(n), kThreads, 0, s, x, scale, n);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

void launch_softcap(float* x, float cap, int64_t n, cudaStream_t s) {
    if (n == 0) return;
    launch(softcap_kernel, blocks_for(n), kThreads, 0, s, x, cap, n);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

void launch_add(float* y, const float* x, int64_t rows, int64_t x_rows, int64_t cols, cudaStream_t s) {
    if (rows * cols == 0) return;
    launch(add_kernel, blocks_for(rows * cols), kThreads, 0, s, y, x, rows, x_rows, cols);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
