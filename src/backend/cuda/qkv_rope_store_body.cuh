#pragma once
// The body of qkv_rope_store.cu's kernel (that file says what it computes), for its own launch and for the step
// program's stage (step_program.cu): `block` is the block's index in the launch's grid, kStageThreads threads a block,
// one item per warp.
#include "backend/cuda/gemv_input.cuh"
#include "backend/cuda/gemv_row.cuh"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/qkv_rope_store_logic.cuh"
#include "backend/cuda/rope_pair.cuh"
#include "backend/cuda/rope_store_kv_target.cuh"
#include "backend/cuda/stage.h"

namespace winnow::cuda {
namespace {

constexpr int kQkvWarpsPerBlock = kStageThreads / 32; // 256 threads: rms_norm_kernel's strides, so the staged norm has its bits

// The item of this thread's warp in block `block`.
__device__ __forceinline__ int qkv_warp_item(uint3 block) { return static_cast<int>(block.x) * kQkvWarpsPerBlock + static_cast<int>(threadIdx.x / 32); }

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

// Block `block` of the fused launch (every thread must call it: it synchronises the block before any thread returns).
template <GgmlType T, GgmlType C>
__device__ __forceinline__ void qkv_rope_store_body(const QkvArgs& args, uint3 block) {
    const LinearParts& p = args.p;
    const RopeStoreKvArgs& a = args.a;
    const RopeStoreKvShape& shape = args.shape;
    const int64_t cols = args.cols;
    const int lane = threadIdx.x % 32, t = block.y;
    const float* xt = gemv_input<true>(args.x, cols, t, args.norm_w, args.eps); // every thread, before any returns
    const int idx = qkv_warp_item(block);
    if (idx >= args.items) return;
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
        const float2 r = rope_rotate(xs.x, xs.y, it.index, a.rope_dim, pos, a.base, a.freq_factors);
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
} // namespace winnow::cuda
