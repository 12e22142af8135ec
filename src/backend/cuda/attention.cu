// Dense causal GQA attention over the KV cache (F32, F16 or BF16): one block per (query row, head); each thread scores
// whole keys (key_dot), a block-wide softmax over the scores held in shared memory, then each thread accumulates one
// output dimension over the keys. The twin is CpuBackend::attention; the reference is
// ref::attention_cached. Decode rows over long contexts take the flash-decoding split below instead. A block mask
// (SPION) goes to sparse_attention.cu, whose work follows the kept keys.
#include <atomic>
#include <climits>

#include "backend/cuda/shared_memory.cuh"
#include "backend/cuda/attention_parts.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/weight_access.cuh"

namespace winnow::cuda {

namespace {

constexpr int kThreads = 128;

// Scores q.k * scale of keys [j0, j1) of one (row, head) into sc[j - j0]: one thread per key (key_dot). Ends with a
// barrier, so every score is visible to the whole block.
template <GgmlType C>
__device__ void score_keys(const float* qs, const void* __restrict__ k, int64_t kv_dim, int kvh, int hd, float scale, int j0, int j1, float* sc) {
    for (int j = j0 + threadIdx.x; j < j1; j += blockDim.x)
        sc[j - j0] = key_dot<C>(qs, k, j * kv_dim + static_cast<int64_t>(kvh) * hd, hd) * scale;
    __syncthreads();
}

// The query row of (row t, head h) into shared memory (qs[hd]).
__device__ void load_query(const float* q, float* qs, int t, int h, int n_head, int hd) {
    const float* qrow = q + (static_cast<size_t>(t) * n_head + h) * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = qrow[d];
    __syncthreads();
}

template <GgmlType C>
__global__ void attention_kernel(const float* __restrict__ q, const void* __restrict__ k, const void* __restrict__ v, float* __restrict__ out,
                                 int pos0, int n_head, int n_head_kv, int hd, float scale, const int32_t* __restrict__ pos_dev, int max_keys) {
    pdl_wait();
    pdl_launch_dependents();
    WINNOW_DYNAMIC_SHARED(float, shared); // q row [hd], then scores [n_keys]
    __shared__ float scratch[32];
    // a recorded decode step: the position of this replay, within the keys the shared memory holds
    first_position(pos0, pos_dev, static_cast<int>(gridDim.y), max_keys);
    const int h = blockIdx.x, t = blockIdx.y;
    const int q_pos = pos0 + t, n_keys = q_pos + 1;
    const int kvh = h / (n_head / n_head_kv);
    const int64_t kv_dim = static_cast<int64_t>(n_head_kv) * hd;
    float* qs = shared;
    float* sc = shared + hd;
    load_query(q, qs, t, h, n_head, hd);
    score_keys<C>(qs, k, kv_dim, kvh, hd, scale, 0, n_keys, sc);
    const ScoreStats st = exponentiate_scores(sc, n_keys, scratch);
    weigh_values<C>(sc, n_keys, [](int j) { return j; }, v, kv_dim, kvh, hd, 1.0f / st.sum, out + (static_cast<size_t>(t) * n_head + h) * hd);
}

// ---- flash-decoding: a few query rows over many keys. One block per (head, row, split of kSplitKeys keys) writes its
// split's max score, exp-sum, dropped-key count and unnormalised output; the last block of a (head, row) to finish
// rescales the splits to the common max and normalises (the log-sum-exp merge the CPU kernel's decode splits use), so
// the op is one launch. A row then spreads over ceil(keys / 256) blocks instead of one, and the scores of a split fit
// any shared memory.

// Whether this block is the last of `expected` blocks to arrive at *arrivals. Every thread's global writes before the
// call are visible to the last block (each writer fences, then one count per block; the last block fences again before
// it reads), and the last block resets the count to 0 for the next launch (a recorded step replays the same counters).
__device__ bool arrive_last(int* arrivals, int expected) {
    __shared__ bool last;
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        last = atomicAdd(arrivals, 1) == expected - 1;
        if (last) {
            atomicExch(arrivals, 0);
            __threadfence();
        }
    }
    __syncthreads();
    return last;
}

template <GgmlType C>
__global__ void attention_split_kernel(const float* __restrict__ q, const void* __restrict__ k, const void* __restrict__ v, float* part,
                                       int* __restrict__ arrivals, float* __restrict__ out, int pos0, int n_head, int n_head_kv, int hd, float scale,
                                       const int32_t* __restrict__ pos_dev, int max_keys, int n_splits) {
    pdl_wait();
    pdl_launch_dependents();
    WINNOW_DYNAMIC_SHARED(float, shared); // q row [hd], then this split's scores [kSplitKeys]
    __shared__ float scratch[32];
    first_position(pos0, pos_dev, static_cast<int>(gridDim.y), max_keys);
    const int h = blockIdx.x, t = blockIdx.y, split = blockIdx.z;
    const int q_pos = pos0 + t, n_keys = q_pos + 1;
    const int kvh = h / (n_head / n_head_kv);
    const int64_t kv_dim = static_cast<int64_t>(n_head_kv) * hd;
    float* recs = part + (static_cast<size_t>(t) * n_head + h) * n_splits * (kRecordHeader + hd);
    float* rec = recs + static_cast<size_t>(split) * (kRecordHeader + hd);
    const int j0 = split * kSplitKeys, j1 = min(n_keys, j0 + kSplitKeys);
    if (j0 >= j1) { // a split beyond this row's keys (a recorded step sizes the grid for the whole cache): it still arrives
        if (threadIdx.x == 0) rec[0] = -INFINITY, rec[1] = 0.0f, rec[2] = 0.0f;
        for (int d = threadIdx.x; d < hd; d += blockDim.x) rec[kRecordHeader + d] = 0.0f;
    } else {
        float* qs = shared;
        float* sc = shared + hd;
        load_query(q, qs, t, h, n_head, hd);
        score_keys<C>(qs, k, kv_dim, kvh, hd, scale, j0, j1, sc);
        const ScoreStats st = exponentiate_scores(sc, j1 - j0, scratch);
        if (threadIdx.x == 0) rec[0] = st.max, rec[1] = st.sum, rec[2] = 0.0f;
        weigh_values<C>(sc, j1 - j0, [j0](int j) { return j0 + j; }, v, kv_dim, kvh, hd, 1.0f, rec + kRecordHeader);
    }
    if (!arrive_last(arrivals + static_cast<size_t>(t) * n_head + h, static_cast<int>(gridDim.z))) return;
    const int used = min(n_splits, (n_keys + kSplitKeys - 1) / kSplitKeys);
    merge_splits(recs, used, hd, false, out + (static_cast<size_t>(t) * n_head + h) * hd);
}

} // namespace

void launch_attention(const float* q, const void* k_cache, const void* v_cache, GgmlType cache_type, float* out, int n_tokens, int pos0,
                      int n_head, int n_head_kv, int head_dim, float scale, cudaStream_t s, const int32_t* pos_dev, int max_keys) {
    if (n_tokens == 0) return;
    const int keys = pos_dev ? max_keys : pos0 + n_tokens; // with pos_dev, room for the longest row any replay can have
    const size_t shared_bytes = (static_cast<size_t>(head_dim) + keys) * sizeof(float);
    const int limit = shared_limit();
    if (shared_bytes + 32 * sizeof(float) > static_cast<size_t>(limit))
        throw Error(ErrorKind::unsupported, "cuda attention: " + std::to_string(keys) + " keys exceed this kernel's shared memory (" +
                                                std::to_string(limit / 4 - head_dim - 32) + " keys at most)");
    const dim3 grid(static_cast<unsigned>(n_head), static_cast<unsigned>(n_tokens));
    dispatch_act_type(cache_type, [&]<GgmlType C>() {
        static std::atomic<int> opted_in{48 * 1024};
        opt_in_shared(attention_kernel<C>, shared_bytes, opted_in);
        launch(attention_kernel<C>, grid, kThreads, shared_bytes, s, q, k_cache, v_cache, out, pos0, n_head, n_head_kv, head_dim, scale, pos_dev, keys);
    });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda

namespace winnow::cuda {

size_t attention_split_workspace_floats(int n_tokens, int n_head, int head_dim, int n_splits) {
    return static_cast<size_t>(n_tokens) * n_head * n_splits * (kRecordHeader + head_dim);
}

void launch_attention_split(const float* q, const void* k_cache, const void* v_cache, GgmlType cache_type, float* out, int n_tokens, int pos0,
                            int n_head, int n_head_kv, int head_dim, float scale, float* workspace, int* arrivals, int n_splits, cudaStream_t s,
                            const int32_t* pos_dev, int max_keys) {
    if (n_tokens == 0) return;
    const size_t shared_bytes = (static_cast<size_t>(head_dim) + kSplitKeys) * sizeof(float);
    const dim3 grid(static_cast<unsigned>(n_head), static_cast<unsigned>(n_tokens), static_cast<unsigned>(n_splits));
    dispatch_act_type(cache_type, [&]<GgmlType C>() {
        launch(attention_split_kernel<C>, grid, kThreads, shared_bytes, s, q, k_cache, v_cache, workspace, arrivals, out, pos0, n_head, n_head_kv,
               head_dim, scale, pos_dev, max_keys, n_splits);
    });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
