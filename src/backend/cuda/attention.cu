// Dense causal GQA attention over the KV cache (F32, F16 or BF16): one block per (query row, head); each thread scores
// whole keys (key_dot), a block-wide softmax over the scores held in shared memory, then each thread accumulates one
// output dimension over the keys. The twin is CpuBackend::attention; the reference is
// ref::attention_cached. Decode rows over long contexts take the flash-decoding split below instead. A block mask
// (SPION) goes to sparse_attention.cu, whose work follows the kept keys.
#include <algorithm>
#include <atomic>
#include <climits>

#include "backend/cuda/shared_memory.cuh"
#include "backend/cuda/attention_split_body.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/weight_access.cuh"

namespace winnow::cuda {

namespace {

// The split kernel's (a stage's) threads, so that a row short enough for this kernel gets the split kernel's softmax
// sums (their block_sum over as many threads): a recorded step takes the split kernel where op by op takes this one.
constexpr int kThreads = kStageThreads;

template <GgmlType C>
__global__ void attention_kernel(const float* __restrict__ q, const void* __restrict__ k, const void* __restrict__ v, float* __restrict__ out,
                                 int pos0, int n_head, int n_head_kv, int hd, float scale, int window, float softcap,
                                 const int32_t* __restrict__ pos_dev, int max_keys) {
    pdl_wait();
    pdl_launch_dependents();
    WINNOW_DYNAMIC_SHARED(float, shared); // q row [hd], then scores [n_keys]
    __shared__ float scratch[32];
    // a recorded decode step: the position of this replay, within the keys the shared memory holds
    first_position(pos0, pos_dev, static_cast<int>(gridDim.y), max_keys);
    const int h = blockIdx.x, t = blockIdx.y;
    const int q_pos = pos0 + t, j0 = first_key(q_pos, window), n_keys = q_pos + 1 - j0; // keys [j0, q_pos]
    const int kvh = h / (n_head / n_head_kv);
    const int64_t kv_dim = static_cast<int64_t>(n_head_kv) * hd;
    float* qs = shared;
    float* sc = shared + hd;
    load_query(q, qs, t, h, n_head, hd);
    score_keys<C>(qs, k, kv_dim, kvh, hd, scale, softcap, j0, q_pos + 1, sc);
    const ScoreStats st = exponentiate_scores(sc, n_keys, scratch);
    weigh_values<C>(sc, n_keys, [j0](int j) { return j0 + j; }, v, kv_dim, kvh, hd, 1.0f / st.sum, out + (static_cast<size_t>(t) * n_head + h) * hd);
}

template <GgmlType C>
__global__ void attention_split_kernel(const AttentionSplitArgs a) {
    pdl_wait();
    pdl_launch_dependents();
    attention_split_body<C>(a, blockIdx, gridDim);
}

} // namespace

void launch_attention(const float* q, const void* k_cache, const void* v_cache, GgmlType cache_type, float* out, int n_tokens, int pos0,
                      int n_head, int n_head_kv, int head_dim, float scale, int window, float softcap, cudaStream_t s, const int32_t* pos_dev,
                      int max_keys) {
    if (n_tokens == 0) return;
    int keys = pos_dev ? max_keys : pos0 + n_tokens; // with pos_dev, room for the longest row any replay can have
    if (window > 0) keys = std::min(keys, window);   // a row's keys: its window at most
    const size_t shared_bytes = (static_cast<size_t>(head_dim) + keys) * sizeof(float);
    const int limit = shared_limit();
    // beside the dynamic part: the block_max / block_sum scratch and weigh_values' partial sums, static
    constexpr int kStaticFloats = 32 + kMaxAttentionThreads;
    if (shared_bytes + kStaticFloats * sizeof(float) > static_cast<size_t>(limit))
        throw Error(ErrorKind::unsupported, "cuda attention: " + std::to_string(keys) + " keys exceed this kernel's shared memory (" +
                                                std::to_string(limit / 4 - head_dim - kStaticFloats) + " keys at most)");
    const dim3 grid(static_cast<unsigned>(n_head), static_cast<unsigned>(n_tokens));
    dispatch_act_type(cache_type, [&]<GgmlType C>() {
        static std::atomic<int> opted_in{48 * 1024};
        opt_in_shared(attention_kernel<C>, shared_bytes, opted_in);
        launch(attention_kernel<C>, grid, kThreads, shared_bytes, s, q, k_cache, v_cache, out, pos0, n_head, n_head_kv, head_dim, scale, window, softcap,
               pos_dev, pos_dev ? max_keys : 0);
    });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda

namespace winnow::cuda {

size_t attention_split_workspace_floats(int n_tokens, int n_head, int head_dim, int n_splits) {
    return static_cast<size_t>(n_tokens) * n_head * n_splits * (kRecordHeader + head_dim);
}

Stage attention_split_stage(const float* q, const void* k_cache, const void* v_cache, GgmlType cache_type, float* out, int n_tokens, int pos0,
                            int n_head, int n_head_kv, int head_dim, float scale, int window, float softcap, float* workspace, int* arrivals,
                            int n_splits, const int32_t* pos_dev, int max_keys) {
    Stage s;
    s.kind = StageKind::attention_split;
    s.cache = cache_type;
    s.grid = uint3{static_cast<unsigned>(n_head), static_cast<unsigned>(n_tokens), static_cast<unsigned>(n_splits)};
    s.shared = static_cast<uint32_t>((static_cast<size_t>(head_dim) + kSplitKeys) * sizeof(float));
    s.args.attention = AttentionSplitArgs{q, k_cache, v_cache, workspace, arrivals, out, pos0, n_head, n_head_kv, head_dim, scale, pos_dev, max_keys, n_splits, window,
                                           softcap};
    return s;
}

void launch_attention_split_stage(const Stage& s, cudaStream_t stream) {
    const dim3 grid(s.grid.x, s.grid.y, s.grid.z);
    dispatch_act_type(s.cache, [&]<GgmlType C>() { launch(attention_split_kernel<C>, grid, kStageThreads, s.shared, stream, s.args.attention); });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
