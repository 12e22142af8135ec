#pragma once
// How the fused qkv_rope_store kernel (backend/cuda/qkv_rope_store.cu: a LLaMA layer's input RMSNorm, q/k/v
// projections, RoPE and k/v cache writes in one decode launch) splits a row's work among its warps, written once for
// the device and the host so that a machine without a GPU can check it (tests/ops/test_qkv_rope_store_logic.cpp):
// every output element of q, k and v must be computed by exactly one warp, and each rotated pair by the warp that
// computes both of its dims (the rotation needs both projections).
// Warp item idx of a row is one of five kinds, in this order:
//   q_pair: pair `index` of q's head `head`: two rows of W_q, rotated, written to q;
//   q_dim:  dim `index` of q's head `head` that rope leaves alone (index >= 2 * half): one row of W_q, written to q;
//   k_pair: pair `index` of k's head `head`: two rows of W_k, rotated, written to k and the k cache;
//   k_dim:  an unrotated dim of k's head `head`: one row of W_k, written to k and the k cache;
//   v_dim:  dim `index` of v's head `head`: one row of W_v, written to v and the v cache.
#include <cstdint>

#include "backend/cuda/rope_store_kv_logic.cuh"

#ifdef __CUDACC__
#define WINNOW_QKV_FN __host__ __device__ __forceinline__
#else
#define WINNOW_QKV_FN inline
#endif

namespace winnow::cuda {

enum class QkvRopeKind { q_pair, q_dim, k_pair, k_dim, v_dim };

struct QkvRopeItem {
    QkvRopeKind kind;
    int head;
    int index; // the pair (q_pair, k_pair) or the dim within the head (q_dim, k_dim, v_dim)
};

// Warp items per row: each head of q and k has half pairs and head_dim - 2 half unrotated dims; v's heads have head_dim
// dims. (RopeStoreKvShape: n_head, n_head_kv, head_dim, half = rope_dim / 2.)
WINNOW_QKV_FN int qkv_rope_items_per_row(const RopeStoreKvShape& s) {
    const int per_rope_head = s.head_dim - s.half; // half pairs + (head_dim - 2 half) dims
    return s.n_head * per_rope_head + s.n_head_kv * per_rope_head + s.n_head_kv * s.head_dim;
}

WINNOW_QKV_FN QkvRopeItem qkv_rope_item(const RopeStoreKvShape& s, int idx) {
    const int tail = s.head_dim - 2 * s.half;
    const int n_qp = s.n_head * s.half, n_qd = s.n_head * tail, n_kp = s.n_head_kv * s.half, n_kd = s.n_head_kv * tail;
    // (a range that is empty is never entered, so half or tail 0 is never a divisor)
    if (idx < n_qp) return {QkvRopeKind::q_pair, idx / s.half, idx % s.half};
    idx -= n_qp;
    if (idx < n_qd) return {QkvRopeKind::q_dim, idx / tail, 2 * s.half + idx % tail};
    idx -= n_qd;
    if (idx < n_kp) return {QkvRopeKind::k_pair, idx / s.half, idx % s.half};
    idx -= n_kp;
    if (idx < n_kd) return {QkvRopeKind::k_dim, idx / tail, 2 * s.half + idx % tail};
    idx -= n_kd;
    return {QkvRopeKind::v_dim, idx / s.head_dim, idx % s.head_dim};
}

} // namespace winnow::cuda

#undef WINNOW_QKV_FN
