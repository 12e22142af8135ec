// Causal GQA attention over the KV cache (F32, F16 or BF16), with an optional SPION block mask: one block per (query
// row, head); each warp scores keys (lanes split the head dimension), a block-wide softmax over the scores held in
// shared memory, then each thread accumulates one output dimension over the keys. The twin is CpuBackend::attention;
// the reference is ref::attention_cached. A flash-decoding split over the sequence comes when a GPU can measure it.
#include <atomic>
#include <climits>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/weight_access.cuh"

namespace winnow::cuda {

namespace {

constexpr int kThreads = 128;

template <GgmlType C>
__global__ void attention_kernel(const float* __restrict__ q, const void* __restrict__ k, const void* __restrict__ v, float* __restrict__ out,
                                 int pos0, int n_head, int n_head_kv, int hd, float scale, const uint8_t* __restrict__ keep, int block,
                                 int n_blocks, int mask_groups, bool spion_denominator, const int32_t* __restrict__ pos_dev, int max_keys) {
    extern __shared__ float shared[]; // q row [hd], then scores [n_keys]
    __shared__ float scratch[32];
    if (pos_dev) { // a recorded decode step: the position of this replay, within the keys the shared memory holds
        pos0 = *pos_dev;
        if (pos0 < 0 || pos0 + static_cast<int>(gridDim.y) > max_keys) return; // the host checked it before uploading it
    }
    const int h = blockIdx.x, t = blockIdx.y;
    const int q_pos = pos0 + t, n_keys = q_pos + 1;
    const int kvh = h / (n_head / n_head_kv);
    const int64_t kv_dim = static_cast<int64_t>(n_head_kv) * hd;
    float* qs = shared;
    float* sc = shared + hd;
    const float* qrow = q + (static_cast<size_t>(t) * n_head + h) * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = qrow[d];
    __syncthreads();

    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
    // the row of this head's pattern: one for all heads, or one per KV head group
    const uint8_t* keep_row = keep ? keep + (static_cast<size_t>(mask_groups == 1 ? 0 : kvh) * n_blocks + q_pos / block) * n_blocks : nullptr;
    for (int j = warp; j < n_keys; j += n_warps) {
        const bool allowed = !keep_row || keep_row[j / block];
        float s = 0.0f;
        if (allowed) {
            const int64_t base = j * kv_dim + static_cast<int64_t>(kvh) * hd;
            for (int d = lane; d < hd; d += 32) s = fmaf(qs[d], load_act<C>(k, base + d), s);
            s = warp_sum(s);
        }
        if (lane == 0) sc[j] = allowed ? s * scale : -INFINITY;
    }
    __syncthreads();

    float mx = -INFINITY;
    for (int j = threadIdx.x; j < n_keys; j += blockDim.x) mx = fmaxf(mx, sc[j]);
    mx = block_max(mx, scratch); // the diagonal key is always allowed, so mx is finite
    float sum = 0.0f, dropped = 0.0f;
    for (int j = threadIdx.x; j < n_keys; j += blockDim.x) {
        dropped += sc[j] == -INFINITY ? 1.0f : 0.0f;
        const float e = expf(sc[j] - mx); // a masked key: exp(-inf) = 0
        sc[j] = e;
        sum += e;
    }
    sum = block_sum(sum, scratch); // its barriers also publish every sc[j]
    if (spion_denominator) sum += block_sum(dropped, scratch) * expf(-mx); // dropped keys count as logit 0
    const float inv = 1.0f / sum;

    float* orow = out + (static_cast<size_t>(t) * n_head + h) * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < n_keys; ++j) {
            const float p = sc[j];
            if (p != 0.0f) acc = fmaf(p, load_act<C>(v, j * kv_dim + static_cast<int64_t>(kvh) * hd + d), acc);
        }
        orow[d] = acc * inv;
    }
}

} // namespace

void launch_attention(const float* q, const void* k_cache, const void* v_cache, GgmlType cache_type, float* out, int n_tokens, int pos0,
                      int n_head, int n_head_kv, int head_dim, float scale, const uint8_t* keep, int block, int n_blocks, int mask_groups,
                      bool spion_denominator, cudaStream_t s, const int32_t* pos_dev, int max_keys) {
    if (n_tokens == 0) return;
    const int keys = pos_dev ? max_keys : pos0 + n_tokens; // with pos_dev, room for the longest row any replay can have
    const size_t shared_bytes = (static_cast<size_t>(head_dim) + keys) * sizeof(float);
    int device = 0, limit = 0;
    WINNOW_CUDA_CHECK(cudaGetDevice(&device));
    WINNOW_CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    if (shared_bytes + 32 * sizeof(float) > static_cast<size_t>(limit))
        throw Error(ErrorKind::unsupported, "cuda attention: " + std::to_string(keys) + " keys exceed this kernel's shared memory (" +
                                                std::to_string(limit / 4 - head_dim - 32) + " keys at most)");
    const dim3 grid(static_cast<unsigned>(n_head), static_cast<unsigned>(n_tokens));
    dispatch_act_type(cache_type, [&]<GgmlType C>() {
        // The opt-in limit only ever grows: a recorded step (sized for the whole context) must stay launchable after a
        // shorter eager call.
        static std::atomic<int> opted_in{48 * 1024};
        int now = opted_in.load();
        while (static_cast<int>(shared_bytes) > now) {
            if (opted_in.compare_exchange_weak(now, static_cast<int>(shared_bytes))) {
                WINNOW_CUDA_CHECK(cudaFuncSetAttribute(attention_kernel<C>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared_bytes)));
                break;
            }
        }
        attention_kernel<C><<<grid, kThreads, shared_bytes, s>>>(q, k_cache, v_cache, out, pos0, n_head, n_head_kv, head_dim, scale, keep, block,
                                                                 n_blocks, mask_groups, spion_denominator, pos_dev, keys);
    });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
