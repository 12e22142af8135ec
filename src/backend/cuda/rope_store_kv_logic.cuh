#pragma once
// How the fused rope_store_kv kernel (backend/cuda/rope_store_kv.cu) splits a layer's work among its threads, written
// once for the device and the host so that a machine without a GPU can check it (tests/ops/test_rope_store_kv_logic.cpp):
// every element of q, k and v of every row must be handled by exactly one thread, or the fused op's bits would not be
// the four ops' (a pair rotated twice, a cache element never written, two threads racing on one element).
// Thread idx handles item idx % items_per_row of row idx / items_per_row; a row's items come in four ranges:
//   q_pair: pair `index` of q's head `head`, rotated in place (rope);
//   k_pair: pair `index` of k's head `head`, rotated in place and both its dims cached (rope, then copy_rows);
//   k_dim:  dim `index` of k's head `head`, one rope leaves as it is (index >= 2 * half), cached (copy_rows);
//   v_dim:  dim `index` of v's head `head`, cached (copy_rows).
// A k element is cached by the thread that rotated it, so no thread reads what another writes.
#include <cstdint>

#ifdef __CUDACC__
#define WINNOW_ROPE_FN __host__ __device__ __forceinline__
#else
#define WINNOW_ROPE_FN inline
#endif

namespace winnow::cuda {

// The two dims pair i of a head rotates, of half = rope_dim / 2 pairs: (2i, 2i + 1) for adjacent pairs (GGUF's llama),
// else (i, i + half) (rotate-half, NeoX / Hugging Face), as ref::rope_rotate_pair has them.
struct RopePairDims {
    int a, b;
};
WINNOW_ROPE_FN RopePairDims rope_pair_dims(int i, int half, bool adjacent) { return adjacent ? RopePairDims{2 * i, 2 * i + 1} : RopePairDims{i, i + half}; }

struct RopeStoreKvShape {
    int n_head = 0, n_head_kv = 0, head_dim = 0;
    int half = 0; // pairs rotated per head: rope_dim / 2, 0 without rotation
};

enum class RopeStoreKvKind { q_pair, k_pair, k_dim, v_dim };

struct RopeStoreKvItem {
    RopeStoreKvKind kind;
    int64_t row;
    int head;
    int index; // the pair (q_pair, k_pair) or the dim within the head (k_dim, v_dim)
};

WINNOW_ROPE_FN int64_t rope_store_kv_items_per_row(const RopeStoreKvShape& s) {
    // q's pairs, k's pairs, k's unrotated dims (head_dim - 2 half per head), v's dims
    return static_cast<int64_t>(s.n_head) * s.half + static_cast<int64_t>(s.n_head_kv) * (2 * s.head_dim - s.half);
}

WINNOW_ROPE_FN RopeStoreKvItem rope_store_kv_item(const RopeStoreKvShape& s, int64_t idx) {
    const int64_t per_row = rope_store_kv_items_per_row(s);
    const int64_t row = idx / per_row;
    int64_t j = idx % per_row;
    const int64_t n_q = static_cast<int64_t>(s.n_head) * s.half, n_kp = static_cast<int64_t>(s.n_head_kv) * s.half;
    const int tail = s.head_dim - 2 * s.half; // the dims of a head rope leaves as they are
    const int64_t n_kt = static_cast<int64_t>(s.n_head_kv) * tail;
    // (a range that is empty is never entered, so half or tail 0 is never a divisor)
    if (j < n_q) return {RopeStoreKvKind::q_pair, row, static_cast<int>(j / s.half), static_cast<int>(j % s.half)};
    j -= n_q;
    if (j < n_kp) return {RopeStoreKvKind::k_pair, row, static_cast<int>(j / s.half), static_cast<int>(j % s.half)};
    j -= n_kp;
    if (j < n_kt) return {RopeStoreKvKind::k_dim, row, static_cast<int>(j / tail), 2 * s.half + static_cast<int>(j % tail)};
    j -= n_kt;
    return {RopeStoreKvKind::v_dim, row, static_cast<int>(j / s.head_dim), static_cast<int>(j % s.head_dim)};
}

} // namespace winnow::cuda
