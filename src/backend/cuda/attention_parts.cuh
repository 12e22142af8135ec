#pragma once
// Pieces the dense (attention.cu) and the block-sparse (sparse_attention.cu) attention kernels share: the position of
// a recorded step, the block-wide softmax over scores held in shared memory, the value sums, the log-sum-exp merge of
// flash-decoding splits by the last split block of a row to finish (arrive_last), and the dynamic shared memory opt-in.
#include <atomic>
#include <cmath>

#include "backend/cuda/arrive_last.cuh"
#include "backend/cuda/attention_window.cuh"
#include "backend/cuda/batched_loads.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/gemv_row.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/weight_access.cuh"

namespace winnow::cuda {
namespace {

// The position of a launch's first row: from device memory in a recorded step, else the host's pos0 as passed. A
// device position whose rows run past max_keys breaks the recording's contract (Forward records the step again before
// it outgrows its key limit, and the CPU backend throws on such a row): returning would leave the output stale without
// a word, so the kernel traps. That is a sticky error: the next synchronising call reports it, and the whole CUDA
// context is unusable from then on, as after any device-side assertion.
__device__ void first_position(int& pos0, const int32_t* pos_dev, int rows, int max_keys) {
    if (!pos_dev) return;
    pos0 = *pos_dev;
    if (pos0 < 0 || pos0 > max_keys - rows) __trap(); // (not pos0 + rows: a corrupt pos0 must not overflow past the test)
}

// q . k of one cached key (the row at k + base, hd elements of C) by one thread, the query qs in shared memory (the same
// address for every thread of a warp: a broadcast): 16-byte loads where the row and qs are aligned (F32: 4 elements,
// F16/BF16: 8), else one element at a time; the products summed in dimension order either way. A thread per key, not a
// warp per key with a shuffle reduction per key, so a block scores as many keys at once as it has threads.
// The cache is read through L2 (__ldcg), not the read-only path (__ldg), and k, v here are not __restrict__: in the
// step program (step_program.h) the qkv stage writes the row that the attention stage of the same kernel then reads,
// and the non-coherent path is only defined for memory no part of the kernel writes.
template <GgmlType C>
__device__ __forceinline__ float key_dot(const float* qs, const void* k, int64_t base, int hd) {
    namespace g = gemv_detail; // the GEMV's 16-byte decoding (gemv_row.cuh)
    const float4* q4 = reinterpret_cast<const float4*>(qs);
    float s = 0.0f;
    if constexpr (C == GgmlType::F32) {
        const float* row = static_cast<const float*>(k) + base;
        if (hd % 4 == 0 && g::aligned(row, 16) && g::aligned(qs, 16)) {
#pragma unroll 16
            for (int d = 0; d < hd / 4; ++d) s = g::dot4(__ldcg(reinterpret_cast<const float4*>(row) + d), q4[d], s);
            return s;
        }
    } else {
        const uint16_t* row = static_cast<const uint16_t*>(k) + base;
        if (hd % 8 == 0 && g::aligned(row, 16) && g::aligned(qs, 16)) {
#pragma unroll 8
            for (int d = 0; d < hd / 8; ++d) s = g::dot8<C>(__ldcg(reinterpret_cast<const uint4*>(row) + d), q4 + 2 * d, s);
            return s;
        }
    }
    for (int d = 0; d < hd; ++d) s = fmaf(qs[d], load_act<C>(k, base + d), s);
    return s;
}

// Scores sc[0, n) become softmax numerators in place, exp(s - max) (0 for a key the mask dropped, score -inf); returns
// the max (-inf when every key was dropped), the sum of the numerators and the count of dropped keys, on every thread.
struct ScoreStats {
    float max, sum, dropped;
};
__device__ ScoreStats exponentiate_scores(float* sc, int n, float* scratch) {
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, sc[j]);
    mx = block_max(mx, scratch);
    float sum = 0.0f, dropped = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        dropped += sc[j] == -INFINITY ? 1.0f : 0.0f;
        const float e = sc[j] == -INFINITY ? 0.0f : expf(sc[j] - mx);
        sc[j] = e;
        sum += e;
    }
    sum = block_sum(sum, scratch); // its barriers also publish every sc[j]
    dropped = block_sum(dropped, scratch);
    return {mx, sum, dropped};
}

// The most threads a block of the attention kernels has (weigh_values' partial sums are sized for it).
constexpr int kMaxAttentionThreads = 256;

// dst[d] = factor * sum_s p[s] v[key(s)][d] over this (row, head)'s KV head, for the dense kernels (key(j) = j0 + j) and
// the block-sparse one (the kept units' keys). key(s) must be a written key for every s < n, also where p[s] is 0.
// The block splits into groups of hd threads (256 threads, hd 64: four), a thread per output dimension; group g sums
// its own contiguous quarter of the keys, then group 0 adds the others' sums in group order. Each value is loaded
// before its weight is tested, 16 loads ahead of their uses (batched_strided), so that a thread makes
// ceil(n / groups / 16) round trips (a split of 256 keys: 4; one group of 64 threads walking all 256 keys made 16,
// and before the batching 256: the H200's first run, 2026-12-04, found that chain setting the decode op's time at any
// context). Within a group the sum skips p[s] == 0, in key order. The grouping depends on n and the block size only, so
// the dense kernel and a single split over the same keys give the same bits. Every thread of the block must call this
// (it has barriers) with blockDim.x <= kMaxAttentionThreads.
template <GgmlType C, class KeyOf>
__device__ void weigh_values(const float* p, int n, KeyOf key, const void* v, int64_t kv_dim, int kvh, int hd, float factor, float* dst) {
    __shared__ float partial[kMaxAttentionThreads]; // groups 1 .. groups-1's sums, hd each
    const int groups = hd <= static_cast<int>(blockDim.x) ? static_cast<int>(blockDim.x) / hd : 1;
    const int g = groups > 1 ? static_cast<int>(threadIdx.x) / hd : 0;
    const int per_group = (n + groups - 1) / groups;
    const int s0 = min(n, g * per_group), s1 = min(n, s0 + per_group);
    const int64_t kv_base = static_cast<int64_t>(kvh) * hd;
    auto sum_keys = [&](int d) {
        float acc = 0.0f;
        batched_strided<16>(s0, 1, s1, [&](int64_t s) { return load_act<C>(v, static_cast<int64_t>(key(static_cast<int>(s))) * kv_dim + kv_base + d); },
                            [&](int64_t s, float x) { acc = p[s] != 0.0f ? fmaf(p[s], x, acc) : acc; });
        return acc;
    };
    if (groups == 1) { // hd larger than the block: each thread takes whole dimensions over every key
        for (int d = threadIdx.x; d < hd; d += blockDim.x) dst[d] = sum_keys(d) * factor;
        return;
    }
    const int d = static_cast<int>(threadIdx.x) % hd;
    const float acc = g < groups ? sum_keys(d) : 0.0f; // threads past the last whole group sit out
    __syncthreads(); // (a previous call's readers of partial are done)
    if (g > 0 && g < groups) partial[(g - 1) * hd + d] = acc;
    __syncthreads();
    if (g == 0) {
        float total = acc;
        for (int k = 1; k < groups; ++k) total += partial[(k - 1) * hd + d];
        dst[d] = total * factor;
    }
}

// A flash-decoding split's record: its max score, exp-sum and dropped-key count, then its head_dim unnormalised outputs.
constexpr int kRecordHeader = 3;

// Rescales one (row, head)'s first `used` split records (recs, kRecordHeader + hd floats each) to their common max and
// normalises them into orow[hd], the threads of the block sharing the output dimensions. The records are read through
// L2 (__ldcg): the last split block of a row (attention_split_body, sparse_attend_kernel) merges records that other
// blocks wrote during the same launch, which this SM's L1 may hold stale lines of.
__device__ void merge_splits(const float* recs, int used, int hd, bool spion_denominator, float* orow) {
    const int stride = kRecordHeader + hd;
    // (the loops unrolled so that several splits' loads are in flight at once; the order of the sums is unchanged)
    float M = -INFINITY; // finite: the diagonal key is always kept
#pragma unroll 8
    for (int s = 0; s < used; ++s) M = fmaxf(M, __ldcg(recs + s * stride));
    float L = 0.0f, dropped = 0.0f;
#pragma unroll 8
    for (int s = 0; s < used; ++s) {
        const float m = __ldcg(recs + s * stride);
        if (m != -INFINITY) L += __ldcg(recs + s * stride + 1) * expf(m - M);
        dropped += __ldcg(recs + s * stride + 2);
    }
    if (spion_denominator && dropped > 0.0f) L += dropped * expf(-M); // dropped keys count as logit 0 (none: no 0 * inf)
    const float inv = 1.0f / L;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0.0f;
#pragma unroll 8
        for (int s = 0; s < used; ++s) {
            const float m = __ldcg(recs + s * stride);
            if (m != -INFINITY) acc = fmaf(__ldcg(recs + s * stride + kRecordHeader + d), expf(m - M), acc);
        }
        orow[d] = acc * inv;
    }
}

// The opt-in shared memory per block of the current device, asked once per device.
int shared_limit() {
    constexpr int kDevices = 64;
    static std::atomic<int> limits[kDevices] = {};
    int device = 0;
    WINNOW_CUDA_CHECK(cudaGetDevice(&device));
    std::atomic<int>* slot = device < kDevices ? &limits[device] : nullptr;
    if (slot && slot->load() > 0) return slot->load();
    int limit = 0;
    WINNOW_CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    if (slot) slot->store(limit);
    return limit;
}

// Raises a kernel's dynamic shared memory limit to `bytes` once (the opt-in only grows, so a recorded step sized for
// the whole context stays launchable after a smaller eager call).
template <class Kernel>
void opt_in_shared(Kernel kernel, size_t bytes, std::atomic<int>& opted_in) {
    int now = opted_in.load();
    while (static_cast<int>(bytes) > now) {
        if (opted_in.compare_exchange_weak(now, static_cast<int>(bytes))) {
            WINNOW_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
            return;
        }
    }
}

} // namespace
} // namespace winnow::cuda
