#pragma once
// The dense attention kernels' shared steps and the flash-decoding split's body (attention.cu runs it as a kernel of
// its own, step_program.cu as a stage of the step program): `block` and `grid` are the block's index and the launch's
// grid (blockIdx and gridDim in a kernel of its own), kStageThreads threads a block.
#include <climits>

#include "backend/cuda/attention_parts.cuh"
#include "backend/cuda/shared_memory.cuh"
#include "backend/cuda/stage.h"

namespace winnow::cuda {
namespace {

static_assert(kStageThreads <= kMaxAttentionThreads);

// Scores q.k * scale of keys [j0, j1) of one (row, head), soft-capped where softcap > 0, into sc[j - j0]: one thread per
// key (key_dot). Ends with a barrier, so every score is visible to the whole block.
template <GgmlType C>
__device__ void score_keys(const float* qs, const void* k, int64_t kv_dim, int kvh, int hd, float scale, float softcap, int j0, int j1, float* sc) {
    for (int j = j0 + threadIdx.x; j < j1; j += blockDim.x)
        sc[j - j0] = softcap_score(key_dot<C>(qs, k, j * kv_dim + static_cast<int64_t>(kvh) * hd, hd) * scale, softcap);
    __syncthreads();
}

// The query row of (row t, head h) into shared memory (qs[hd]).
__device__ void load_query(const float* q, float* qs, int t, int h, int n_head, int hd) {
    const float* qrow = q + (static_cast<size_t>(t) * n_head + h) * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = qrow[d];
    __syncthreads();
}

// ---- flash-decoding: a few query rows over many keys. One block per (head, row, split of kSplitKeys keys, counted from
// the row's first key: 0, or its sliding window's first) writes its
// split's max score, exp-sum, dropped-key count and unnormalised output; the last block of a (head, row) to finish
// rescales the splits to the common max and normalises (the log-sum-exp merge the CPU kernel's decode splits use), so
// the op is one launch. A row then spreads over ceil(keys / 256) blocks instead of one, and the scores of a split fit
// any shared memory.

template <GgmlType C>
__device__ __forceinline__ void attention_split_body(const AttentionSplitArgs& a, uint3 block, uint3 grid) {
    WINNOW_DYNAMIC_SHARED(float, shared); // q row [hd], then this split's scores [kSplitKeys]
    __shared__ float scratch[32];
    int pos0 = a.pos0;
    first_position(pos0, a.pos_dev, static_cast<int>(grid.y), a.max_keys);
    const int h = block.x, t = block.y, split = block.z;
    const int n_head = a.n_head, hd = a.hd, n_splits = a.n_splits;
    const int q_pos = pos0 + t, n_keys = q_pos + 1, lo = first_key(q_pos, a.window); // keys [lo, n_keys), split from lo
    const int kvh = h / (n_head / a.n_head_kv);
    const int64_t kv_dim = static_cast<int64_t>(a.n_head_kv) * hd;
    float* recs = a.part + (static_cast<size_t>(t) * n_head + h) * n_splits * (kRecordHeader + hd);
    float* rec = recs + static_cast<size_t>(split) * (kRecordHeader + hd);
    const int j0 = lo + split * kSplitKeys, j1 = min(n_keys, j0 + kSplitKeys);
    if (j0 >= j1) { // a split beyond this row's keys (a recorded step sizes the grid for the whole cache): it still arrives
        if (threadIdx.x == 0) rec[0] = -INFINITY, rec[1] = 0.0f, rec[2] = 0.0f;
        for (int d = threadIdx.x; d < hd; d += blockDim.x) rec[kRecordHeader + d] = 0.0f;
    } else {
        float* qs = shared;
        float* sc = shared + hd;
        load_query(a.q, qs, t, h, n_head, hd);
        score_keys<C>(qs, a.k, kv_dim, kvh, hd, a.scale, a.softcap, j0, j1, sc);
        const ScoreStats st = exponentiate_scores(sc, j1 - j0, scratch);
        if (threadIdx.x == 0) rec[0] = st.max, rec[1] = st.sum, rec[2] = 0.0f;
        weigh_values<C>(sc, j1 - j0, [j0](int j) { return j0 + j; }, a.v, kv_dim, kvh, hd, 1.0f, rec + kRecordHeader);
    }
    if (!arrive_last(a.arrivals + static_cast<size_t>(t) * n_head + h, static_cast<int>(grid.z))) return;
    const int used = min(n_splits, (n_keys - lo + kSplitKeys - 1) / kSplitKeys);
    merge_splits(recs, used, hd, false, a.out + (static_cast<size_t>(t) * n_head + h) * hd);
}

} // namespace
} // namespace winnow::cuda
