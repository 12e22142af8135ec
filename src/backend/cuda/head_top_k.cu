// The fused exact head: the best k of W x (ties: lower id first) and log sum exp(W x), with the logits never written
// to global memory. Two kernels (the algorithm and its argument: head_top_k_logic.cuh):
//   head_tiles_kernel  one block of kThreads (512) per tile of kTile (128) rows: the tile's logits into shared memory (each warp
//                      computes kRowsPerWarp rows with linear's warp dot product, gemv_row.cuh, so the logits are
//                      linear's bits), a bitonic sort of the tile, its best min(k, kTile) and its log-sum-exp part
//                      to the workspace;
//   head_merge_kernel  one block: the combined log-normalizer; the tiles sorted by their best entry, the best
//                      min(k, tiles) of them kept; one warp's k-way merge of the kept tiles' sorted lists.
// The twin is CpuBackend::head_top_k (the CPU's linear, then its top_k); the host run of the same algorithm is
// tests/ops/test_head_top_k_logic.cpp.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/gemv_row.cuh"
#include "backend/cuda/head_top_k_logic.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"

namespace winnow::cuda {

namespace {

namespace ht = head_top_k;

template <GgmlType T>
__global__ void __launch_bounds__(ht::kThreads) head_tiles_kernel(const uint8_t* __restrict__ w, size_t row_bytes, int64_t rows, int64_t cols,
                                                                 const float* __restrict__ x, int kk, uint8_t* __restrict__ ws, ht::Layout lay) {
    pdl_wait();
    pdl_launch_dependents();
    __shared__ float s_v[ht::kTile];
    __shared__ int32_t s_id[ht::kTile];
    __shared__ double s_sum[ht::kWarps];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int64_t tile = blockIdx.x;
    for (int j = 0; j < ht::kRowsPerWarp; ++j) {
        const int slot = j * ht::kWarps + warp;
        const int64_t r = ht::tile_row(tile, slot);
        if (r < rows) {
            // (a staging slice for each of the block's 16 warps: linear's 8-warp blocks sum each row in the same order)
            const float dot = warp_row_dot<T, ht::kWarps>(w + static_cast<size_t>(r) * row_bytes, x, cols, lane) + 0.0f; // as linear writes it
            if (lane == 0) {
                s_v[slot] = dot;
                s_id[slot] = static_cast<int32_t>(r);
            }
        } else if (lane == 0) {
            s_v[slot] = -INFINITY;
            s_id[slot] = ht::kPadId;
        }
    }
    __syncthreads();
    ht::sort_tile(s_v, s_id, threadIdx.x, blockDim.x, [] { __syncthreads(); });
    // (sort_tile ends with a barrier: the sorted tile is visible to every thread)
    float* vals = reinterpret_cast<float*>(ws + lay.vals);
    int32_t* ids = reinterpret_cast<int32_t*>(ws + lay.ids);
    for (int i = threadIdx.x; i < kk; i += blockDim.x) {
        vals[tile * kk + i] = s_v[i];
        ids[tile * kk + i] = s_id[i];
    }
    // the tile's log-sum-exp part, relative to its max (the sorted tile's first entry), summed in double
    const float tmax = s_v[0];
    double s = 0;
    for (int i = threadIdx.x; i < ht::kTile; i += blockDim.x) s += ht::lse_term(s_v[i], s_id[i], tmax);
    s = warp_sum(s);
    if (lane == 0) s_sum[warp] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0;
        for (int i = 0; i < ht::kWarps; ++i) total += s_sum[i];
        reinterpret_cast<float*>(ws + lay.tile_max)[tile] = tmax;
        reinterpret_cast<double*>(ws + lay.tile_sum)[tile] = total;
        reinterpret_cast<int32_t*>(ws + lay.head)[tile] = 0; // the merge's read position in this tile's list
    }
}

// One block of kMergeThreads. The log-normalizer from the tiles' parts (a block max, then a double sum); then, with
// at most kMaxSortTiles tiles, the tiles' best entries sorted in shared memory and the first min(k, tiles) kept as the
// lists to merge (list j: tile s_id[j] / kTile, since a tile's best entry is one of its own rows); then warp 0 merges:
// lane l owns lists l, l + 32, ... and keeps its best head; each of the k rounds takes the best of the 32 lanes' heads
// (a butterfly: every lane ends with the same winner), and the winning lane advances that list and rescans its own.
// A list's read position is touched only by the lane that owns it.
__global__ void __launch_bounds__(ht::kMergeThreads) head_merge_kernel(uint8_t* ws, ht::Layout lay, int64_t n_tiles, int kk, int k,
                                                                      int32_t* __restrict__ out_ids, float* __restrict__ out_vals,
                                                                      double* __restrict__ log_norm) {
    pdl_wait();
    pdl_launch_dependents();
    __shared__ float s_v[ht::kMaxSortTiles];
    __shared__ int32_t s_id[ht::kMaxSortTiles];
    __shared__ int32_t s_head[ht::kMaxSortTiles];
    __shared__ float s_red[32];
    __shared__ double s_sum[32];
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const float* vals = reinterpret_cast<const float*>(ws + lay.vals);
    const int32_t* ids = reinterpret_cast<const int32_t*>(ws + lay.ids);
    if (log_norm) {
        const float* tmax = reinterpret_cast<const float*>(ws + lay.tile_max);
        const double* tsum = reinterpret_cast<const double*>(ws + lay.tile_sum);
        float m = -INFINITY;
        for (int64_t t = tid; t < n_tiles; t += blockDim.x) m = fmaxf(m, tmax[t]);
        m = block_max(m, s_red); // every thread gets it
        double s = 0;
        for (int64_t t = tid; t < n_tiles; t += blockDim.x) s += tsum[t] * ht::lse_scale(tmax[t], m);
        s = warp_sum(s);
        if (lane == 0) s_sum[warp] = s;
        __syncthreads();
        if (tid == 0) {
            double total = 0;
            for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) total += s_sum[w];
            *log_norm = ht::log_norm(m, total);
        }
    }
    int64_t n_lists = n_tiles;
    const int32_t* list_tile = nullptr;
    int32_t* head = reinterpret_cast<int32_t*>(ws + lay.head); // zeroed by the tile kernel
    if (ht::merge_sorts_tiles(n_tiles)) {
        const int p = ht::pow2_at_least(n_tiles);
        for (int i = tid; i < p; i += blockDim.x) {
            s_v[i] = i < n_tiles ? vals[static_cast<int64_t>(i) * kk] : -INFINITY;
            s_id[i] = i < n_tiles ? ids[static_cast<int64_t>(i) * kk] : ht::kPadId;
        }
        __syncthreads();
        ht::sort_entries(s_v, s_id, p, tid, blockDim.x, [] { __syncthreads(); });
        n_lists = ht::kept_tiles(n_tiles, k);
        for (int j = tid; j < n_lists; j += blockDim.x) {
            s_id[j] = ht::tile_of(s_id[j]); // the kept tile's index
            s_head[j] = 0;
        }
        __syncthreads();
        list_tile = s_id;
        head = s_head;
    }
    if (warp != 0) return; // (no barrier follows)
    ht::LaneBest mine = ht::lane_rescan(vals, ids, head, list_tile, n_lists, kk, lane);
    for (int r = 0; r < k; ++r) {
        ht::LaneBest b = mine;
        int bl = lane;
        for (int o = 16; o > 0; o >>= 1) {
            ht::LaneBest other;
            other.v = __shfl_xor_sync(0xffffffffu, b.v, o);
            other.id = __shfl_xor_sync(0xffffffffu, b.id, o);
            other.list = __shfl_xor_sync(0xffffffffu, b.list, o);
            const int ol = __shfl_xor_sync(0xffffffffu, bl, o);
            if (ht::lane_wins(other, ol, b, bl)) {
                b = other;
                bl = ol;
            }
        }
        if (lane == 0) {
            out_ids[r] = b.id;
            out_vals[r] = b.v;
        }
        if (lane == bl && b.list >= 0) {
            head[b.list] += 1;
            mine = ht::lane_rescan(vals, ids, head, list_tile, n_lists, kk, lane);
        }
    }
}

} // namespace

size_t head_top_k_workspace_bytes(int64_t rows, int k) { return ht::layout(rows, k).bytes; }

void launch_head_top_k(GgmlType type, const uint8_t* w, size_t row_bytes, int64_t rows, int64_t cols, const float* x, int k, void* workspace,
                       int32_t* ids, float* values, double* log_norm, cudaStream_t s) {
    const ht::Layout lay = ht::layout(rows, k);
    const int64_t tiles = ht::n_tiles(rows);
    const int kk = ht::per_tile(k);
    auto* ws = static_cast<uint8_t*>(workspace);
    dispatch_weight_type(type, [&]<GgmlType T>() {
        launch(head_tiles_kernel<T>, static_cast<unsigned>(tiles), ht::kThreads, 0, s, w, row_bytes, rows, cols, x, kk, ws, lay);
    });
    WINNOW_CUDA_CHECK(cudaGetLastError());
    launch(head_merge_kernel, 1, ht::kMergeThreads, 0, s, ws, lay, tiles, kk, k, ids, values, log_norm);
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
