// Block-sparse causal GQA attention (SPION), with optional query-aware unit selection: work in proportion to the kept
// keys, where dense attention (attention.cu) walks every key of the row. The kernels, in stream order:
//   1. unit_keys_kernel (selection only), one warp per (unit, KV head, row) over many blocks: each candidate unit's
//      score bound as a 64-bit selection key (sparse_select_logic.cuh), 0 for a unit that is no candidate;
//   2. sparse_rows_kernel (selection only), one block per (query row, KV head): the row's keep flags per unit (the
//      selection's unit), plus the `select` largest keys found by radix select, compacted into an ascending list of
//      kept units, with their count and the kept keys' count. With the pattern alone the lists are the mask's own rows,
//      built once when the mask is uploaded (SparseRowsArgs::mask_row_start), and this step is skipped;
//   3. sparse_attend_kernel, one block per (head, row, split): the split's slice of the kept-unit list (at most
//      kSparseSplitKeys keys, so that a row's work spreads over many short blocks: at batch-1 decode the grid is far
//      under one wave and a block's length is the op's time), scored one thread per key (key_dot), softmaxed in
//      shared memory, values weighed; a record per split. The last split block of a (head, row) to finish merges the
//      splits that hold the row's kept units (arrive_last, merge_splits: attention_parts.cuh), as the dense split
//      kernel does; the merge was a fourth kernel until 2026-12-05 (with the pattern alone, half the op's launches).
// The CPU twin is CpuBackend::attention (the same rule; its bounds sum in another order, see the logic header); the
// op harness compares both with the double reference.
#include <algorithm>
#include <atomic>
#include <climits>
#include <string>

#include "backend/cuda/shared_memory.cuh"
#include "backend/cuda/attention_parts.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/sparse_select_logic.cuh"
#include "backend/cuda/weight_access.cuh"
#include "winnow/error.h"

namespace winnow::cuda {

namespace {

namespace sl = select_logic;

constexpr int kRowThreads = 256;     // sparse_rows_kernel and unit_keys_kernel
constexpr int kAttendThreads = 256;  // sparse_attend_kernel: 4 groups of 64 threads share a split's value sums
static_assert(kAttendThreads <= kMaxAttentionThreads);
constexpr int kMaxGroupHeads = 16;   // query heads per KV head the selection's shared query copy holds
constexpr int kSparseSplitKeys = 64; // keys per split of sparse_attend_kernel (at least one unit)
constexpr int kStaticShared = 2048;  // bytes of static shared memory the kernels declare, at most (scratch, histogram)

// The mask's keep flag of unit u for the row at q_pos, KV head kvh.
__device__ bool mask_keeps(const SparseRowsArgs& a, int q_pos, int kvh, int u) {
    const uint8_t* row = a.keep + (static_cast<size_t>(a.mask_groups == 1 ? 0 : kvh) * a.mask_n_blocks + q_pos / a.mask_block) * a.mask_n_blocks;
    return row[u / (a.mask_block / a.unit)] != 0;
}

// keys[(row, KV head)][u] = selection_key(bound, u) for each candidate unit (complete, wholly at or before the row's
// position, dropped by the mask, summarised, bound not NaN), 0 for any other unit of the row. One warp per unit, lanes
// over the head dimension, the group's query heads from shared memory; blocks of 8 units, over units x KV heads x rows,
// so that the summaries stream through many SMs at once.
__global__ void unit_keys_kernel(const float* __restrict__ q, SparseRowsArgs a, uint64_t* __restrict__ keys) {
    pdl_wait();
    pdl_launch_dependents();
    __shared__ float qs[kMaxGroupHeads * 256];
    int pos0 = a.pos0;
    first_position(pos0, a.pos_dev, a.rows, a.max_keys);
    const int kvh = blockIdx.y, t = blockIdx.z, row_kv = t * a.n_head_kv + kvh;
    const int q_pos = pos0 + a.row0 + t, n_keys = q_pos + 1, n_units = (n_keys + a.unit - 1) / a.unit;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, u = blockIdx.x * (kRowThreads / 32) + warp;
    if (blockIdx.x * (kRowThreads / 32) >= n_units) return; // the whole block is past this row's units
    const int heads = a.n_head / a.n_head_kv, hd = a.hd;
    const float* qg = q + (static_cast<size_t>(t) * a.n_head + static_cast<size_t>(kvh) * heads) * hd;
    for (int i = threadIdx.x; i < heads * hd; i += blockDim.x) qs[i] = qg[i];
    __syncthreads();
    if (u >= n_units) return;
    uint64_t key = 0;
    if (u < min(a.summarised_units, n_keys / a.unit) && !mask_keeps(a, q_pos, kvh, u)) {
        const size_t off = (static_cast<size_t>(kvh) * a.summarised_units + u) * hd; // KeyBlockSummary::at: a plane per KV head
        float ub = -INFINITY;
        for (int g = 0; g < heads; ++g) {
            float s = sl::lane_partial(qs + g * hd, a.kmax + off, a.kmin + off, hd, lane);
            s = warp_sum(s); // sl::butterfly_sum's order
            ub = sl::fold_max(ub, s);
        }
        if (!isnan(ub)) key = sl::selection_key(ub, static_cast<uint32_t>(u));
    }
    if (lane == 0) keys[static_cast<size_t>(row_kv) * a.list_units + u] = key;
}

// Sets flags[u] for the `select` largest nonzero keys (all of them when fewer): the k-th largest key by radix select
// (sl::kth_largest_key_radix, one byte per pass: a shared histogram of the next byte, one warp finds the byte where the
// count from the top reaches k), then every key at or above it.
__device__ void flag_best_units(const uint64_t* keys, int n_units, int select, uint8_t* flags, int* scratch) {
    __shared__ int hist[256];
    __shared__ int chosen[2]; // this pass's byte, and the keys in the bins above it
    int n_cand = 0;
    for (int u = threadIdx.x; u < n_units; u += blockDim.x) n_cand += keys[u] != 0;
    n_cand = block_sum(n_cand, scratch);
    int k = min(select, n_cand);
    if (k == 0) return;
    const int lane = threadIdx.x % 32;
    uint64_t prefix = 0;
    for (int shift = 56; shift >= 0; shift -= 8) {
        const uint64_t above = shift == 56 ? 0 : ~uint64_t{0} << (shift + 8);
        for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
        __syncthreads();
        for (int u = threadIdx.x; u < n_units; u += blockDim.x) {
            const uint64_t key = keys[u];
            if (key != 0 && (key & above) == prefix) atomicAdd(&hist[(key >> shift) & 255], 1);
        }
        __syncthreads();
        if (threadIdx.x < 32) { // lane l holds bins 255 - 8l down to 248 - 8l, so lane order is descending bin order
            int c[8], total = 0;
            for (int j = 0; j < 8; ++j) total += c[j] = hist[255 - 8 * lane - j];
            int inclusive = total; // keys in the bins of lanes 0..lane
            for (int o = 1; o < 32; o <<= 1) {
                const int y = __shfl_up_sync(0xffffffffu, inclusive, o);
                if (lane >= o) inclusive += y;
            }
            const unsigned reached = __ballot_sync(0xffffffffu, inclusive >= k); // some lane: k <= the keys with this prefix
            if (lane == __ffs(reached) - 1) {
                int run = inclusive - total, j = 0;
                while (run + c[j] < k) run += c[j++];
                chosen[0] = 255 - 8 * lane - j, chosen[1] = run;
            }
        }
        __syncthreads();
        prefix |= static_cast<uint64_t>(chosen[0]) << shift;
        k -= chosen[1];
        __syncthreads(); // chosen[] and hist[] are rewritten by the next pass
    }
    for (int u = threadIdx.x; u < n_units; u += blockDim.x)
        if (keys[u] >= prefix && keys[u] != 0) flags[u] = 1;
    __syncthreads();
}

__global__ void sparse_rows_kernel(SparseRowsArgs a, const uint64_t* __restrict__ unit_keys, int* __restrict__ lists, int* __restrict__ counts) {
    pdl_wait();
    pdl_launch_dependents();
    WINNOW_DYNAMIC_SHARED(uint64_t, shared_keys); // keys [list_units] (with selection), then flags [list_units]
    __shared__ int scratch[32];
    int pos0 = a.pos0;
    first_position(pos0, a.pos_dev, a.rows, a.max_keys);
    const int t = blockIdx.x, kvh = blockIdx.y, row_kv = t * a.n_head_kv + kvh;
    const int q_pos = pos0 + a.row0 + t, n_keys = q_pos + 1;
    const int n_units = (n_keys + a.unit - 1) / a.unit;
    uint64_t* keys = shared_keys;
    uint8_t* flags = reinterpret_cast<uint8_t*>(keys + (a.select > 0 ? a.list_units : 0));
    for (int u = threadIdx.x; u < n_units; u += blockDim.x) {
        flags[u] = mask_keeps(a, q_pos, kvh, u);
        if (a.select > 0) keys[u] = unit_keys[static_cast<size_t>(row_kv) * a.list_units + u];
    }
    __syncthreads();
    if (a.select > 0) flag_best_units(keys, n_units, a.select, flags, scratch);
    // warp 0 compacts the flags into the ascending list of kept units, 32 at a time
    if (threadIdx.x >= 32) return;
    const int lane = threadIdx.x;
    int* list = lists + static_cast<size_t>(row_kv) * a.list_units;
    int n_kept = 0, kept_keys = 0;
    for (int u0 = 0; u0 < n_units; u0 += 32) {
        const int u = u0 + lane;
        const bool kept = u < n_units && flags[u];
        const unsigned ballot = __ballot_sync(0xffffffffu, kept);
        if (kept) list[n_kept + __popc(ballot & ((1u << lane) - 1u))] = u;
        n_kept += __popc(ballot);
        kept_keys += warp_sum(kept ? min(a.unit, n_keys - u * a.unit) : 0);
    }
    if (lane == 0) counts[2 * row_kv] = n_kept, counts[2 * row_kv + 1] = kept_keys;
}

template <GgmlType C>
__global__ void sparse_attend_kernel(const float* __restrict__ q, const void* __restrict__ k, const void* __restrict__ v, SparseRowsArgs a,
                                     const int* __restrict__ lists, const int* __restrict__ counts, float* __restrict__ part, int* __restrict__ arrivals,
                                     float* __restrict__ out, int n_splits, int units_per_split, bool spion_denominator) {
    pdl_wait();
    pdl_launch_dependents();
    WINNOW_DYNAMIC_SHARED(float, shared); // q row [hd], then this split's scores [units_per_split * unit]
    __shared__ float scratch[32];
    int pos0 = a.pos0;
    first_position(pos0, a.pos_dev, a.rows, a.max_keys);
    const int h = blockIdx.x, t = blockIdx.y, split = blockIdx.z;
    const int q_pos = pos0 + a.row0 + t, n_keys = q_pos + 1, hd = a.hd;
    const int kvh = h / (a.n_head / a.n_head_kv), row_kv = t * a.n_head_kv + kvh;
    const int64_t kv_dim = static_cast<int64_t>(a.n_head_kv) * hd;
    const int* list;
    int n_kept, kept_keys;
    if (a.mask_row_start) { // the pattern alone: the mask row's kept blocks, the last one the row's own (partial) block
        const int r = (a.mask_groups == 1 ? 0 : kvh) * a.mask_n_blocks + q_pos / a.mask_block;
        list = a.mask_row_blocks + a.mask_row_start[r];
        n_kept = a.mask_row_start[r + 1] - a.mask_row_start[r];
        kept_keys = n_kept * a.unit - (a.unit - 1 - q_pos % a.unit);
    } else {
        list = lists + static_cast<size_t>(row_kv) * a.list_units;
        n_kept = counts[2 * row_kv], kept_keys = counts[2 * row_kv + 1];
    }
    float* recs = part + (static_cast<size_t>(t) * a.n_head + h) * n_splits * (kRecordHeader + hd);
    float* rec = recs + static_cast<size_t>(split) * (kRecordHeader + hd);
    // split 0 is never empty (every row keeps its diagonal unit), so it carries the row's dropped-key count (the SPION
    // denominator's)
    const float dropped = split == 0 ? static_cast<float>(n_keys - kept_keys) : 0.0f;
    const int i0 = split * units_per_split, i1 = min(n_kept, i0 + units_per_split);
    if (i0 >= i1) { // a split beyond this row's kept units (the grid is sized for the longest row): it still arrives
        if (threadIdx.x == 0) rec[0] = -INFINITY, rec[1] = 0.0f, rec[2] = dropped;
        for (int d = threadIdx.x; d < hd; d += blockDim.x) rec[kRecordHeader + d] = 0.0f;
    } else {
        float* qs = shared;
        float* sc = shared + hd;
        const float* qrow = q + (static_cast<size_t>(t) * a.n_head + h) * hd;
        for (int d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = qrow[d];
        __syncthreads();
        // slot i * unit + r is key list[i0 + i] * unit + r; slots past the row's position score -inf (not kept keys)
        const int n_slots = (i1 - i0) * a.unit;
        for (int slot = threadIdx.x; slot < n_slots; slot += blockDim.x) { // one thread per key (key_dot)
            const int j = list[i0 + slot / a.unit] * a.unit + slot % a.unit;
            sc[slot] = j < n_keys ? key_dot<C>(qs, k, j * kv_dim + static_cast<int64_t>(kvh) * hd, hd) * a.scale : -INFINITY;
        }
        __syncthreads();
        const ScoreStats st = exponentiate_scores(sc, n_slots, scratch);
        if (threadIdx.x == 0) rec[0] = st.max, rec[1] = st.sum, rec[2] = dropped;
        // a slot past the row's position (weight 0) loads the row's own key: weigh_values loads every slot's value
        const int* kept = list + i0;
        const int unit = a.unit;
        weigh_values<C>(sc, n_slots, [=](int slot) { return min(kept[slot / unit] * unit + slot % unit, n_keys - 1); }, v, kv_dim, kvh, hd, 1.0f,
                        rec + kRecordHeader);
    }
    if (!arrive_last(arrivals + static_cast<size_t>(t) * a.n_head + h, static_cast<int>(gridDim.z))) return;
    const int used = min(n_splits, (n_kept + units_per_split - 1) / units_per_split);
    merge_splits(recs, used, hd, spion_denominator, out + (static_cast<size_t>(t) * a.n_head + h) * hd);
}

// One thread per (unit, cache column): the column's extremes over the unit's written rows, rounded outward to fp16 as
// sparse::summarize_rows rounds them (the smallest fp16 >= max, the largest <= min; NaN keys passed over as std::max does),
// into KV head d / hd's plane of `plane_units` units (KeyBlockSummary's layout).
template <GgmlType C>
__global__ void summarize_keys_kernel(const void* __restrict__ k, int kv_dim, int hd, int64_t plane_units, int unit, int row0, int n_rows,
                                      const int32_t* __restrict__ row_dev, int max_rows, uint16_t* __restrict__ kmax, uint16_t* __restrict__ kmin) {
    pdl_wait();
    pdl_launch_dependents();
    if (row_dev) {
        row0 = *row_dev;
        // the host checks a host row; the CPU backend throws on a device row that does not fit, and a kernel cannot
        // report it: trap (a sticky error) rather than leave the summaries stale without a word
        if (row0 < 0 || row0 > max_rows - n_rows) __trap();
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
    const int64_t at = (d / hd * plane_units + u) * hd + d % hd;
    kmax[at] = __half_as_ushort(__float2half_ru(mx));
    kmin[at] = __half_as_ushort(__float2half_rd(mn));
}

int units_per_split(int unit) { return std::max(1, kSparseSplitKeys / unit); }

// Dynamic shared memory of sparse_rows_kernel: the candidate keys (with selection), the flags.
size_t rows_shared_bytes(const SparseRowsArgs& a) {
    return (a.select > 0 ? static_cast<size_t>(a.list_units) * sizeof(uint64_t) : 0) + static_cast<size_t>(a.list_units);
}

} // namespace

void launch_summarize_keys(GgmlType cache_type, const void* k_cache, int kv_dim, int n_head_kv, int unit, int row0, int n_rows, const int32_t* row_dev,
                           int max_rows, uint16_t* kmax, uint16_t* kmin, cudaStream_t s) {
    if (n_rows <= 0) return;
    constexpr int kThreads = 128;
    const int64_t plane_units = (static_cast<int64_t>(max_rows) + unit - 1) / unit; // the cache's units
    // units spanned by n_rows rows at any alignment (a device row0 is not known here): one more than when aligned
    const dim3 grid(static_cast<unsigned>((n_rows + unit - 1) / unit + 1), static_cast<unsigned>((kv_dim + kThreads - 1) / kThreads));
    dispatch_act_type(cache_type, [&]<GgmlType C>() {
        launch(summarize_keys_kernel<C>, grid, kThreads, 0, s, k_cache, kv_dim, kv_dim / n_head_kv, plane_units, unit, row0, n_rows, row_dev, max_rows,
               kmax, kmin);
    });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

SparseWorkspace sparse_attention_workspace(const SparseRowsArgs& a) {
    SparseWorkspace w;
    w.n_splits = (std::min(a.max_kept_units, a.list_units) + units_per_split(a.unit) - 1) / units_per_split(a.unit);
    w.key_words = a.select > 0 ? static_cast<size_t>(a.rows) * a.n_head_kv * a.list_units : 0;
    w.list_ints = a.mask_row_start ? 0 : static_cast<size_t>(a.rows) * a.n_head_kv * a.list_units;
    w.count_ints = static_cast<size_t>(a.rows) * a.n_head_kv * 2;
    w.record_floats = static_cast<size_t>(a.rows) * a.n_head * w.n_splits * (kRecordHeader + a.hd);
    w.bytes = w.key_words * sizeof(uint64_t) + (w.list_ints + w.count_ints) * sizeof(int) + w.record_floats * sizeof(float);
    return w;
}

void check_sparse_attention(const SparseRowsArgs& a) {
    if (a.unit <= 0 || a.mask_block % a.unit != 0) throw Error(ErrorKind::invalid_argument, "cuda sparse attention: the unit must divide the mask's block");
    if (a.select > 0 && a.summarised_units > 0 && (!a.kmax || !a.kmin))
        throw Error(ErrorKind::invalid_argument, "cuda sparse attention: selection without key summaries");
    if (a.select > 0 && (a.n_head / a.n_head_kv > kMaxGroupHeads || a.n_head / a.n_head_kv * a.hd > kMaxGroupHeads * 256))
        throw Error(ErrorKind::unsupported, "cuda sparse attention: selection with more than " + std::to_string(kMaxGroupHeads * 256) +
                                                " query values per KV head");
    if (a.max_kept_units < 1) throw Error(ErrorKind::invalid_argument, "cuda sparse attention: no kept units");
    if (a.mask_row_start && (a.select > 0 || a.unit != a.mask_block))
        throw Error(ErrorKind::invalid_argument, "cuda sparse attention: the mask's own rows serve the pattern alone, in its blocks");
    const size_t limit = static_cast<size_t>(shared_limit()) - kStaticShared;
    if (rows_shared_bytes(a) > limit || (static_cast<size_t>(a.hd) + static_cast<size_t>(units_per_split(a.unit)) * a.unit) * sizeof(float) > limit)
        throw Error(ErrorKind::unsupported, "cuda sparse attention: " + std::to_string(a.list_units) + " units of " + std::to_string(a.unit) +
                                                " keys exceed this kernel's shared memory");
}

void launch_sparse_attention(const float* q, const void* k_cache, const void* v_cache, GgmlType cache_type, float* out, const SparseRowsArgs& a,
                             bool spion_denominator, void* workspace, int* arrivals, cudaStream_t s) {
    if (a.rows == 0) return;
    const SparseWorkspace w = sparse_attention_workspace(a);
    uint64_t* unit_keys = static_cast<uint64_t*>(workspace); // 8-byte aligned first, then the 4-byte arrays
    int* lists = reinterpret_cast<int*>(unit_keys + w.key_words);
    int* counts = lists + w.list_ints;
    float* records = reinterpret_cast<float*>(counts + w.count_ints);

    if (a.select > 0) {
        const int launch_units = (a.max_keys + a.unit - 1) / a.unit; // the longest row's units
        const dim3 grid(static_cast<unsigned>((launch_units + kRowThreads / 32 - 1) / (kRowThreads / 32)), static_cast<unsigned>(a.n_head_kv),
                        static_cast<unsigned>(a.rows));
        launch(unit_keys_kernel, grid, kRowThreads, 0, s, q, a, unit_keys);
        WINNOW_CUDA_CHECK(cudaGetLastError());
    }
    if (!a.mask_row_start) {
        static std::atomic<int> rows_opted_in{48 * 1024};
        const size_t rows_bytes = rows_shared_bytes(a);
        opt_in_shared(sparse_rows_kernel, rows_bytes, rows_opted_in);
        launch(sparse_rows_kernel, dim3(static_cast<unsigned>(a.rows), static_cast<unsigned>(a.n_head_kv)), kRowThreads, rows_bytes, s, a, unit_keys, lists,
               counts);
        WINNOW_CUDA_CHECK(cudaGetLastError());
    }

    const int per_split = units_per_split(a.unit);
    const size_t attend_bytes = (static_cast<size_t>(a.hd) + static_cast<size_t>(per_split) * a.unit) * sizeof(float);
    const dim3 grid(static_cast<unsigned>(a.n_head), static_cast<unsigned>(a.rows), static_cast<unsigned>(w.n_splits));
    dispatch_act_type(cache_type, [&]<GgmlType C>() {
        static std::atomic<int> attend_opted_in{48 * 1024};
        opt_in_shared(sparse_attend_kernel<C>, attend_bytes, attend_opted_in);
        launch(sparse_attend_kernel<C>, grid, kAttendThreads, attend_bytes, s, q, k_cache, v_cache, a, lists, counts, records, arrivals, out, w.n_splits,
               per_split, spion_denominator);
    });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
