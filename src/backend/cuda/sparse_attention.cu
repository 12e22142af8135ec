// Block-sparse causal GQA attention (SPION), with optional query-aware unit selection: work in proportion to the kept
// keys, where the masked dense kernel (attention.cu) walks every key of the row. Two kernels and the flash-decoding
// merge:
//   1. sparse_rows_kernel, one block per (query row, KV head): the row's keep flags per unit (the mask's block, or the
//      selection's finer unit), plus the `select` best candidate units by score bound (sparse_select_logic.cuh), then
//      the kept units compacted into an ascending list, with their count and the kept keys' count;
//   2. sparse_attend_kernel, one block per (head, row, split): the split's slice of the kept-unit list (at most
//      kSplitKeys keys), scored one warp per key, softmaxed in shared memory, values weighed; a record per split;
//   3. attention_merge_kernel over every split (attention_parts.cuh).
// The CPU twin is CpuBackend::attention (the same rule; its bounds sum in another order, see the logic header); the
// op harness compares both with the double reference.
#include <algorithm>
#include <atomic>
#include <climits>
#include <string>

#include "backend/cuda/attention_parts.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/sparse_select_logic.cuh"
#include "backend/cuda/weight_access.cuh"
#include "winnow/error.h"

namespace winnow::cuda {

namespace {

namespace sl = select_logic;

constexpr int kRowThreads = 256;   // sparse_rows_kernel
constexpr int kAttendThreads = 128; // sparse_attend_kernel
constexpr int kMaxGroupHeads = 16;  // query heads per KV head the selection's shared query copy holds

// The position of this launch's first row: from device memory in a recorded step (false when it is out of range: the
// host checked it before the upload, so nothing runs), else the host's.
__device__ bool first_position(int& pos0, const int32_t* pos_dev, int rows, int max_keys) {
    if (!pos_dev) return true;
    pos0 = *pos_dev;
    return pos0 >= 0 && pos0 + rows <= max_keys;
}

// Int sum over the block; every thread gets it. scratch holds 32 ints.
__device__ int block_count(int v, int* scratch) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < n_warps ? scratch[lane] : 0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// keys[u] = selection_key(bound, u) for each candidate unit (complete, wholly at or before the row's position, dropped
// by the mask, summarised, bound not NaN), 0 for any other. One warp per unit, lanes over the head dimension, the
// group's query heads from shared memory (qs). Ends with a barrier.
__device__ void candidate_keys(const float* qs, int heads, int hd, const uint16_t* __restrict__ kmax, const uint16_t* __restrict__ kmin, int64_t kv_dim,
                               int kvh, const uint8_t* flags, int n_units, int candidates_end, uint64_t* keys) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
    for (int u = warp; u < n_units; u += n_warps) {
        uint64_t key = 0;
        if (u < candidates_end && !flags[u]) {
            const size_t off = static_cast<size_t>(u) * kv_dim + static_cast<size_t>(kvh) * hd;
            float ub = -INFINITY;
            for (int g = 0; g < heads; ++g) {
                float s = sl::lane_partial(qs + g * hd, kmax + off, kmin + off, hd, lane);
                for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o); // sl::butterfly_sum's order
                ub = sl::fold_max(ub, s);
            }
            if (!isnan(ub)) key = sl::selection_key(ub, static_cast<uint32_t>(u));
        }
        if (lane == 0) keys[u] = key;
    }
    __syncthreads();
}

// Sets flags[u] for the `select` largest nonzero keys (all of them when fewer): the k-th largest key found bit by bit
// (sl::kth_largest_key's search, each pass a block-wide count), then every key at or above it.
__device__ void flag_best_units(const uint64_t* keys, int n_units, int select, uint8_t* flags, int* scratch) {
    int n_cand = 0;
    for (int u = threadIdx.x; u < n_units; u += blockDim.x) n_cand += keys[u] != 0;
    n_cand = block_count(n_cand, scratch);
    const int k = min(select, n_cand);
    if (k == 0) return;
    uint64_t t = 0;
    for (int bit = 63; bit >= 0; --bit) {
        const uint64_t c = t | (uint64_t{1} << bit);
        int at_least = 0;
        for (int u = threadIdx.x; u < n_units; u += blockDim.x) at_least += keys[u] >= c;
        if (block_count(at_least, scratch) >= k) t = c; // every thread sees the same count: t stays uniform
    }
    for (int u = threadIdx.x; u < n_units; u += blockDim.x)
        if (keys[u] >= t) flags[u] = 1; // t >= 1: the zero keys (not candidates) stay as they were
    __syncthreads();
}

__global__ void sparse_rows_kernel(const float* __restrict__ q, SparseRowsArgs a, int* __restrict__ lists, int* __restrict__ counts) {
    extern __shared__ uint64_t shared_keys[]; // keys [max_units] (with selection), then the query heads, then flags
    __shared__ int scratch[32];
    int pos0 = a.pos0;
    if (!first_position(pos0, a.pos_dev, a.rows, a.max_keys)) return;
    const int t = blockIdx.x, kvh = blockIdx.y, row_kv = t * a.n_head_kv + kvh;
    const int q_pos = pos0 + a.row0 + t, n_keys = q_pos + 1;
    const int n_units = (n_keys + a.unit - 1) / a.unit, per_block = a.mask_block / a.unit;
    const int heads = a.n_head / a.n_head_kv;
    uint64_t* keys = shared_keys;
    float* qs = reinterpret_cast<float*>(keys + (a.select > 0 ? a.max_units : 0));
    uint8_t* flags = reinterpret_cast<uint8_t*>(qs + (a.select > 0 ? heads * a.hd : 0));
    const uint8_t* mask_row = a.keep + (static_cast<size_t>(a.mask_groups == 1 ? 0 : kvh) * a.mask_n_blocks + q_pos / a.mask_block) * a.mask_n_blocks;
    for (int u = threadIdx.x; u < n_units; u += blockDim.x) flags[u] = mask_row[u / per_block];
    if (a.select > 0) {
        const float* qg = q + (static_cast<size_t>(t) * a.n_head + static_cast<size_t>(kvh) * heads) * a.hd;
        for (int i = threadIdx.x; i < heads * a.hd; i += blockDim.x) qs[i] = qg[i];
        __syncthreads();
        const int candidates_end = min(a.summarised_units, n_keys / a.unit);
        candidate_keys(qs, heads, a.hd, a.kmax, a.kmin, static_cast<int64_t>(a.n_head_kv) * a.hd, kvh, flags, n_units, candidates_end, keys);
        flag_best_units(keys, n_units, a.select, flags, scratch);
    }
    __syncthreads();
    // warp 0 compacts the flags into the ascending list of kept units, 32 at a time
    if (threadIdx.x >= 32) return;
    const int lane = threadIdx.x;
    int* list = lists + static_cast<size_t>(row_kv) * a.max_units;
    int n_kept = 0, kept_keys = 0;
    for (int u0 = 0; u0 < n_units; u0 += 32) {
        const int u = u0 + lane;
        const bool kept = u < n_units && flags[u];
        const unsigned ballot = __ballot_sync(0xffffffffu, kept);
        if (kept) list[n_kept + __popc(ballot & ((1u << lane) - 1u))] = u;
        int keys_here = kept ? min(a.unit, n_keys - u * a.unit) : 0;
        for (int o = 16; o > 0; o >>= 1) keys_here += __shfl_xor_sync(0xffffffffu, keys_here, o);
        n_kept += __popc(ballot);
        kept_keys += keys_here;
    }
    if (lane == 0) counts[2 * row_kv] = n_kept, counts[2 * row_kv + 1] = kept_keys;
}

template <GgmlType C>
__global__ void sparse_attend_kernel(const float* __restrict__ q, const void* __restrict__ k, const void* __restrict__ v, SparseRowsArgs a,
                                     const int* __restrict__ lists, const int* __restrict__ counts, float* __restrict__ part, int n_splits,
                                     int units_per_split) {
    extern __shared__ float shared[]; // q row [hd], then this split's scores [units_per_split * unit]
    __shared__ float scratch[32];
    int pos0 = a.pos0;
    if (!first_position(pos0, a.pos_dev, a.rows, a.max_keys)) return;
    const int h = blockIdx.x, t = blockIdx.y, split = blockIdx.z;
    const int q_pos = pos0 + a.row0 + t, n_keys = q_pos + 1, hd = a.hd;
    const int kvh = h / (a.n_head / a.n_head_kv), row_kv = t * a.n_head_kv + kvh;
    const int64_t kv_dim = static_cast<int64_t>(a.n_head_kv) * hd;
    const int* list = lists + static_cast<size_t>(row_kv) * a.max_units;
    const int n_kept = counts[2 * row_kv], kept_keys = counts[2 * row_kv + 1];
    float* rec = part + ((static_cast<size_t>(t) * a.n_head + h) * n_splits + split) * (kRecordHeader + hd);
    // split 0 always holds the diagonal unit, so it carries the row's dropped-key count (the SPION denominator's)
    const float dropped = split == 0 ? static_cast<float>(n_keys - kept_keys) : 0.0f;
    const int i0 = split * units_per_split, i1 = min(n_kept, i0 + units_per_split);
    if (i0 >= i1) { // a split beyond this row's kept units
        if (threadIdx.x == 0) rec[0] = -INFINITY, rec[1] = 0.0f, rec[2] = dropped;
        for (int d = threadIdx.x; d < hd; d += blockDim.x) rec[kRecordHeader + d] = 0.0f;
        return;
    }
    float* qs = shared;
    float* sc = shared + hd;
    const float* qrow = q + (static_cast<size_t>(t) * a.n_head + h) * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = qrow[d];
    __syncthreads();
    // slot i * unit + r is key list[i0 + i] * unit + r; slots past the row's position score -inf (not kept keys)
    const int n_slots = (i1 - i0) * a.unit;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
    for (int slot = warp; slot < n_slots; slot += n_warps) {
        const int j = list[i0 + slot / a.unit] * a.unit + slot % a.unit;
        float s = -INFINITY;
        if (j < n_keys) {
            const int64_t base = j * kv_dim + static_cast<int64_t>(kvh) * hd;
            float acc = 0.0f;
            for (int d = lane; d < hd; d += 32) acc = fmaf(qs[d], load_act<C>(k, base + d), acc);
            s = warp_sum(acc) * a.scale;
        }
        if (lane == 0) sc[slot] = s;
    }
    __syncthreads();
    const ScoreStats st = exponentiate_scores(sc, n_slots, scratch);
    if (threadIdx.x == 0) rec[0] = st.max, rec[1] = st.sum, rec[2] = dropped;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0.0f;
        for (int slot = 0; slot < n_slots; ++slot) {
            if (sc[slot] == 0.0f) continue;
            const int j = list[i0 + slot / a.unit] * a.unit + slot % a.unit;
            acc = fmaf(sc[slot], load_act<C>(v, static_cast<int64_t>(j) * kv_dim + static_cast<int64_t>(kvh) * hd + d), acc);
        }
        rec[kRecordHeader + d] = acc;
    }
}

// One thread per (unit, cache column): the column's extremes over the unit's written rows, rounded outward to fp16 as
// sparse::summarize_rows rounds them (the smallest fp16 >= max, the largest <= min; NaN keys passed over as std::max does).
template <GgmlType C>
__global__ void summarize_keys_kernel(const void* __restrict__ k, int kv_dim, int unit, int row0, int n_rows, const int32_t* __restrict__ row_dev,
                                      int max_rows, uint16_t* __restrict__ kmax, uint16_t* __restrict__ kmin) {
    if (row_dev) {
        row0 = *row_dev;
        if (row0 < 0 || row0 + n_rows > max_rows) return;
    }
    const int64_t end = static_cast<int64_t>(row0) + n_rows, u = row0 / unit + blockIdx.x, r0 = u * unit;
    const int d = blockIdx.y * blockDim.x + threadIdx.x;
    if (r0 >= end || d >= kv_dim) return;
    const int64_t r1 = min(r0 + unit, end);
    float mx = -INFINITY, mn = INFINITY;
    for (int64_t r = r0; r < r1; ++r) {
        const float x = load_act<C>(k, r * kv_dim + d);
        mx = mx < x ? x : mx;
        mn = x < mn ? x : mn;
    }
    kmax[u * kv_dim + d] = __half_as_ushort(__float2half_ru(mx));
    kmin[u * kv_dim + d] = __half_as_ushort(__float2half_rd(mn));
}

int units_per_split(int unit) { return std::max(1, kSplitKeys / unit); }

// Dynamic shared memory of sparse_rows_kernel: the candidate keys and the group's queries (with selection), the flags.
size_t rows_shared_bytes(const SparseRowsArgs& a) {
    const size_t keys = a.select > 0 ? static_cast<size_t>(a.max_units) * sizeof(uint64_t) : 0;
    const size_t qs = a.select > 0 ? static_cast<size_t>(a.n_head / a.n_head_kv) * a.hd * sizeof(float) : 0;
    return keys + qs + static_cast<size_t>(a.max_units);
}

int shared_limit() {
    int device = 0, limit = 0;
    WINNOW_CUDA_CHECK(cudaGetDevice(&device));
    WINNOW_CUDA_CHECK(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    return limit;
}

// Raises a kernel's dynamic shared memory limit to `bytes` once (the opt-in only grows, so a recorded step stays
// launchable after a smaller eager call).
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

void launch_summarize_keys(GgmlType cache_type, const void* k_cache, int kv_dim, int unit, int row0, int n_rows, const int32_t* row_dev, int max_rows,
                           uint16_t* kmax, uint16_t* kmin, cudaStream_t s) {
    if (n_rows <= 0) return;
    constexpr int kThreads = 128;
    // units spanned by n_rows rows at any alignment (a device row0 is not known here): one more than when aligned
    const dim3 grid(static_cast<unsigned>((n_rows + unit - 1) / unit + 1), static_cast<unsigned>((kv_dim + kThreads - 1) / kThreads));
    dispatch_act_type(cache_type, [&]<GgmlType C>() {
        summarize_keys_kernel<C><<<grid, kThreads, 0, s>>>(k_cache, kv_dim, unit, row0, n_rows, row_dev, max_rows, kmax, kmin);
    });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

SparseWorkspace sparse_attention_workspace(const SparseRowsArgs& a) {
    SparseWorkspace w;
    w.n_splits = (a.max_units + units_per_split(a.unit) - 1) / units_per_split(a.unit);
    w.list_ints = static_cast<size_t>(a.rows) * a.n_head_kv * a.max_units;
    w.count_ints = static_cast<size_t>(a.rows) * a.n_head_kv * 2;
    w.record_floats = static_cast<size_t>(a.rows) * a.n_head * w.n_splits * (kRecordHeader + a.hd);
    w.bytes = (w.list_ints + w.count_ints) * sizeof(int) + w.record_floats * sizeof(float);
    return w;
}

void check_sparse_attention(const SparseRowsArgs& a) {
    if (a.unit <= 0 || a.mask_block % a.unit != 0) throw Error(ErrorKind::invalid_argument, "cuda sparse attention: the unit must divide the mask's block");
    if (a.select > 0 && (!a.kmax || !a.kmin)) throw Error(ErrorKind::invalid_argument, "cuda sparse attention: selection without key summaries");
    if (a.select > 0 && a.n_head / a.n_head_kv > kMaxGroupHeads)
        throw Error(ErrorKind::unsupported, "cuda sparse attention: selection with more than " + std::to_string(kMaxGroupHeads) + " query heads per KV head");
    const int limit = shared_limit();
    if (rows_shared_bytes(a) > static_cast<size_t>(limit) ||
        (static_cast<size_t>(a.hd) + static_cast<size_t>(units_per_split(a.unit)) * a.unit) * sizeof(float) > static_cast<size_t>(limit))
        throw Error(ErrorKind::unsupported, "cuda sparse attention: " + std::to_string(a.max_units) + " units of " + std::to_string(a.unit) +
                                                " keys exceed this kernel's shared memory");
}

void launch_sparse_attention(const float* q, const void* k_cache, const void* v_cache, GgmlType cache_type, float* out, const SparseRowsArgs& a,
                             bool spion_denominator, void* workspace, cudaStream_t s) {
    if (a.rows == 0) return;
    const SparseWorkspace w = sparse_attention_workspace(a);
    int* lists = static_cast<int*>(workspace);
    int* counts = lists + w.list_ints;
    float* records = reinterpret_cast<float*>(counts + w.count_ints);

    static std::atomic<int> rows_opted_in{48 * 1024};
    const size_t rows_bytes = rows_shared_bytes(a);
    opt_in_shared(sparse_rows_kernel, rows_bytes, rows_opted_in);
    sparse_rows_kernel<<<dim3(static_cast<unsigned>(a.rows), static_cast<unsigned>(a.n_head_kv)), kRowThreads, rows_bytes, s>>>(q, a, lists, counts);
    WINNOW_CUDA_CHECK(cudaGetLastError());

    const int per_split = units_per_split(a.unit);
    const size_t attend_bytes = (static_cast<size_t>(a.hd) + static_cast<size_t>(per_split) * a.unit) * sizeof(float);
    const dim3 grid(static_cast<unsigned>(a.n_head), static_cast<unsigned>(a.rows), static_cast<unsigned>(w.n_splits));
    dispatch_act_type(cache_type, [&]<GgmlType C>() {
        static std::atomic<int> attend_opted_in{48 * 1024};
        opt_in_shared(sparse_attend_kernel<C>, attend_bytes, attend_opted_in);
        sparse_attend_kernel<C><<<grid, kAttendThreads, attend_bytes, s>>>(q, k_cache, v_cache, a, lists, counts, records, w.n_splits, per_split);
    });
    WINNOW_CUDA_CHECK(cudaGetLastError());
    attention_merge_kernel<<<dim3(static_cast<unsigned>(a.n_head), static_cast<unsigned>(a.rows)), kAttendThreads, 0, s>>>(
        records, out, a.pos0, a.n_head, a.hd, w.n_splits, spion_denominator, true, a.pos_dev, a.max_keys);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
