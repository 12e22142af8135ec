// Backend::rms_norm_qkv_rope_store_kv on the device: a LLaMA layer's input RMSNorm, q/k/v projections, RoPE and k/v
// cache writes in one decode launch, where rms_norm_linear_parts + rope_store_kv take two. Each block stages the
// norm (gemv_input.cuh, rms_norm_kernel's bits); each warp computes one item (qkv_rope_store_logic.cuh): one output
// row, or the two rows of a rotated pair, whose rotation (rope_pair.cuh) needs both. The dot products and their
// epilogue are gemv_parts_kernel's and the rotation and cache conversion rope_store_kv_kernel's, so the op has the bits
// of the two launches it replaces (the op harness holds it to them).
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/gemv_input.cuh"
#include "backend/cuda/gemv_row.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/qkv_rope_store_logic.cuh"
#include "backend/cuda/rope_pair.cuh"
#include "backend/cuda/rope_store_kv_target.cuh"

namespace winnow::cuda {

namespace {

constexpr int kWarpsPerBlock = 8; // 256 threads: rms_norm_kernel's strides, so the staged norm has its bits

// Row r of part i (0: q, 1: k, 2: v) times the staged input, with gemv_parts_kernel's epilogue (+ bias, or + 0.0f).
template <GgmlType T>
__device__ __forceinline__ float projection(const LinearParts& p, int i, int64_t r, const float* xt, int64_t cols, int lane) {
    const LinearPartView part = linear_part(p, i);
    const float acc = warp_row_dot<T>(part.w + static_cast<size_t>(r) * part.row_bytes, xt, cols, lane);
    return acc + (part.bias ? part.bias[r] : 0.0f);
}

// The weight rows of warp item idx (none past the items): part and row as the kernel's switch below picks them; the
// second only for a rotated pair.
struct ItemRows {
    WeightBytes first, second;
};
__device__ __forceinline__ ItemRows item_weight_rows(const LinearParts& p, const RopeStoreKvShape& shape, int hd, bool adjacent, int idx, int items) {
    if (idx >= items) return {};
    const QkvRopeItem it = qkv_rope_item(shape, idx);
    const bool pair = it.kind == QkvRopeKind::q_pair || it.kind == QkvRopeKind::k_pair;
    const int part = it.kind == QkvRopeKind::q_pair || it.kind == QkvRopeKind::q_dim ? 0 : it.kind == QkvRopeKind::v_dim ? 2 : 1;
    const LinearPartView v = linear_part(p, part);
    const int64_t head_row = static_cast<int64_t>(it.head) * hd;
    const auto row = [&](int64_t r) { return WeightBytes{v.w + static_cast<size_t>(r) * v.row_bytes, v.row_bytes}; };
    if (!pair) return {row(head_row + it.index), {}};
    const RopePairDims d = rope_pair_dims(it.index, shape.half, adjacent);
    return {row(head_row + d.a), row(head_row + d.b)};
}

__device__ __forceinline__ void pdl_wait_prefetching(bool on, ItemRows rows) { pdl_wait_prefetching(on, rows.first, rows.second); }

// Rows a and b of one part times the staged input, each with projection()'s bits, in one walk (warp_row_dot2).
template <GgmlType T>
__device__ __forceinline__ float2 projection_pair(const LinearParts& p, int i, int64_t a, int64_t b, const float* xt, int64_t cols, int lane) {
    const LinearPartView part = linear_part(p, i);
    const float2 acc = warp_row_dot2<T>(part.w + static_cast<size_t>(a) * part.row_bytes, part.w + static_cast<size_t>(b) * part.row_bytes, xt, cols, lane);
    return make_float2(acc.x + (part.bias ? part.bias[a] : 0.0f), acc.y + (part.bias ? part.bias[b] : 0.0f));
}

template <GgmlType T, GgmlType C>
__global__ void qkv_rope_store_kernel(LinearParts p, int64_t cols, const float* __restrict__ x, const float* __restrict__ norm_w, float eps,
                                      RopeStoreKvArgs a, RopeStoreKvShape shape, int items, bool prefetch) {
    pdl_wait_prefetching(prefetch, item_weight_rows(p, shape, a.head_dim, a.adjacent, blockIdx.x * kWarpsPerBlock + threadIdx.x / 32, items));
    pdl_launch_dependents();
    const int lane = threadIdx.x % 32, t = blockIdx.y;
    const float* xt = gemv_input<true>(x, cols, t, norm_w, eps); // every thread, before any returns
    const int idx = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
    if (idx >= items) return;
    const QkvRopeItem it = qkv_rope_item(shape, idx);
    const int hd = a.head_dim;
    const int64_t q_dim = static_cast<int64_t>(a.n_head) * hd;
    const auto [pos, cache_at, kv_at] = kv_row_target(a, t, it.head); // rope_store_kv_kernel's
    switch (it.kind) {
    case QkvRopeKind::q_pair:
    case QkvRopeKind::k_pair: {
        const bool is_q = it.kind == QkvRopeKind::q_pair;
        const int part = is_q ? 0 : 1;
        const RopePairDims d = rope_pair_dims(it.index, shape.half, a.adjacent);
        const int64_t head_row = static_cast<int64_t>(it.head) * hd;
        const float2 xs = projection_pair<T>(p, part, head_row + d.a, head_row + d.b, xt, cols, lane);
        const float2 r = rope_rotate(xs.x, xs.y, it.index, a.rope_dim, pos, a.base);
        if (lane != 0) return;
        float* out = is_q ? a.q + t * q_dim + head_row : a.k + kv_at;
        out[d.a] = r.x;
        out[d.b] = r.y;
        if (!is_q) {
            store_act<C>(a.k_cache, cache_at + d.a, r.x);
            store_act<C>(a.k_cache, cache_at + d.b, r.y);
        }
        return;
    }
    case QkvRopeKind::q_dim: {
        const int64_t r = static_cast<int64_t>(it.head) * hd + it.index;
        const float y = projection<T>(p, 0, r, xt, cols, lane);
        if (lane == 0) a.q[t * q_dim + r] = y;
        return;
    }
    case QkvRopeKind::k_dim:
    case QkvRopeKind::v_dim: {
        const bool is_k = it.kind == QkvRopeKind::k_dim;
        const int64_t r = static_cast<int64_t>(it.head) * hd + it.index;
        const float y = projection<T>(p, is_k ? 1 : 2, r, xt, cols, lane);
        if (lane != 0) return;
        (is_k ? a.k : const_cast<float*>(a.v))[kv_at + it.index] = y;
        store_act<C>(is_k ? a.k_cache : a.v_cache, cache_at + it.index, y);
        return;
    }
    }
}

} // namespace

void launch_qkv_rope_store(GgmlType weight_type, const LinearParts& qkv, int64_t cols, const float* x, const float* norm_w, float norm_eps,
                           const RopeStoreKvArgs& rs, GgmlType cache_type, cudaStream_t s) {
    const RopeStoreKvShape shape{rs.n_head, rs.n_head_kv, rs.head_dim, rs.rope_dim / 2};
    const int items = qkv_rope_items_per_row(shape);
    if (items == 0 || rs.rows == 0) return;
    const dim3 grid(static_cast<unsigned>((items + kWarpsPerBlock - 1) / kWarpsPerBlock), static_cast<unsigned>(rs.rows));
    const size_t staged = static_cast<size_t>(cols) * sizeof(float);
    dispatch_weight_type(weight_type, [&]<GgmlType T>() {
        dispatch_act_type(cache_type, [&]<GgmlType C>() {
            launch(qkv_rope_store_kernel<T, C>, grid, kWarpsPerBlock * 32, staged, s, qkv, cols, x, norm_w, norm_eps, rs, shape, items,
                   weight_prefetch_enabled());
        });
    });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
