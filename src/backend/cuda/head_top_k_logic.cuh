#pragma once
// The fused exact head's algorithm (backend/cuda/head_top_k.cu), written once for the device and the host so that a
// machine without a GPU can run it (tests/ops/test_head_top_k_logic.cpp):
//   1. the head's rows are cut into tiles of kTile rows; one block per tile computes the tile's logits (one warp per
//      row, the same dot product as linear's GEMV), sorts them in shared memory by a bitonic network in the order
//      (value descending, id ascending; NaNs as top_k: order_key), and writes its best min(k, kTile) as a sorted
//      candidate list, with the tile's (max, sum exp(logit - max)) for the log-normalizer. Rows past the head's end
//      are padding entries (-inf, INT32_MAX), which every real row beats (NaN rows too: see order_key);
//   2. one block merges: it sorts the tiles by their best entry (a bitonic network over at most kMaxSortTiles
//      entries in shared memory) and keeps the first min(k, tiles) of them, since every one of the k best rows lies
//      in one of the k tiles with the best maxima (a row in any other tile is beaten by those k tiles' maxima); then
//      one warp merges the kept tiles' sorted lists k times by their heads (a k-way merge: the best head overall is
//      the next best logit), and the block combines the tiles' log-sum-exp parts. Above kMaxSortTiles tiles (over
//      262,144 rows) the warp merges every tile's list instead: the same result, slower.
// The k best of all rows are among the tiles' candidate lists (a row outside its tile's best min(k, kTile) has at
// least that many better rows in its own tile), and real candidates outnumber k (each tile lists min(k, its rows)),
// so the merge never reaches a padding entry. Ties: the lower id first, as top_k; NaN logits: as top_k (order_key).
// The log-normalizer is NaN when a logit is NaN and -inf when every logit is -inf (the log of an empty sum).
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "backend/cuda/sample_chain.cuh"

#ifdef __CUDACC__
#define WINNOW_HEAD_FN __host__ __device__ __forceinline__
// the output order's functions: device only under nvcc, as sample_chain's top_k_key that they call
#define WINNOW_HEAD_ORDER_FN __device__ __forceinline__
#else
#define WINNOW_HEAD_FN inline
#define WINNOW_HEAD_ORDER_FN inline
#endif

namespace winnow::cuda::head_top_k {

constexpr int kWarps = 16;                        // warps per tile block (SmolLM2: 384 blocks, ~46 warps per H200 SM)
constexpr int kThreads = kWarps * 32;
constexpr int kRowsPerWarp = 8;                   // rows each warp computes, one after another
constexpr int kTile = kWarps * kRowsPerWarp;      // rows per tile (a power of two: the bitonic network's size)
static_assert((kTile & (kTile - 1)) == 0 && kTile / 2 <= kThreads, "the tile must be a power of two of at most 2 x threads");
constexpr int kMergeThreads = 1024;              // the merge block
constexpr int kMaxSortTiles = 2048;               // the merge sorts the tiles' maxima in shared memory up to this many
constexpr int32_t kPadId = INT32_MAX;             // a padding entry's id (the checks keep real ids below INT32_MAX - 1024)

// An entry's place in the output order, ascending: the top_k kernel's key (sample_chain::top_k_key), so that NaN rows
// come out as CpuBackend::top_k's: a NaN in row 0 first (std::max_element's answer for k = 1), then the values
// descending with ties by lower id, then the other NaNs by id; padding last of all (~0 is above every row's key, the
// NaNs' (0xFFFFFFFF << 32 | id) included, since real ids are below kPadId). A total order: `v > bv` alone leaves a
// NaN unordered against everything, and the network and the merge would then place it wherever their pairings fall.
WINNOW_HEAD_ORDER_FN uint64_t order_key(float v, int32_t id) {
    return id == kPadId ? ~0ull : sample_chain::top_k_key(v, static_cast<uint32_t>(id));
}
// a before b in the output order
WINNOW_HEAD_ORDER_FN bool better(float v, int32_t i, float bv, int32_t bi) { return order_key(v, i) < order_key(bv, bi); }

WINNOW_HEAD_FN int64_t n_tiles(int64_t rows) { return (rows + kTile - 1) / kTile; }
// candidates each tile keeps
WINNOW_HEAD_FN int per_tile(int k) { return k < kTile ? k : kTile; }
// The head row that slot s = j * kWarps + w of tile t holds: warp w's j-th row. Consecutive warps take consecutive
// rows, so a block's warps stream neighbouring rows at the same time.
WINNOW_HEAD_FN int64_t tile_row(int64_t tile, int slot) { return tile * kTile + slot; }

// One compare-exchange of the bitonic network that sorts kTile entries best first: stage (size, stride), pair p in
// [0, kTile / 2). Entry lo has the bit `stride` clear and hi = lo + stride; in blocks of `size` entries whose index has
// the bit `size` clear the better entry goes first, in the others last, which makes the next stage's input bitonic.
WINNOW_HEAD_ORDER_FN void compare_exchange(float* v, int32_t* id, int p, int size, int stride) {
    const int lo = 2 * stride * (p / stride) + p % stride, hi = lo + stride;
    const bool best_first = (lo & size) == 0;
    const bool swap = best_first ? better(v[hi], id[hi], v[lo], id[lo]) : better(v[lo], id[lo], v[hi], id[hi]);
    if (swap) {
        const float tv = v[lo];
        v[lo] = v[hi];
        v[hi] = tv;
        const int32_t ti = id[lo];
        id[lo] = id[hi];
        id[hi] = ti;
    }
}

// Sorts v/id[0, n) best first, n a power of two; thread tid of n_threads takes pairs tid, tid + n_threads, ...;
// sync() is the block's barrier (__syncthreads on the device, nothing for one host thread).
template <class Sync>
WINNOW_HEAD_ORDER_FN void sort_entries(float* v, int32_t* id, int n, int tid, int n_threads, Sync sync) {
    for (int size = 2; size <= n; size *= 2)
        for (int stride = size / 2; stride > 0; stride /= 2) {
            for (int p = tid; p < n / 2; p += n_threads) compare_exchange(v, id, p, size, stride);
            sync();
        }
}
template <class Sync>
WINNOW_HEAD_ORDER_FN void sort_tile(float* v, int32_t* id, int tid, int n_threads, Sync sync) {
    sort_entries(v, id, kTile, tid, n_threads, sync);
}
// The smallest power of two >= n (n >= 1).
WINNOW_HEAD_FN int pow2_at_least(int64_t n) {
    int p = 1;
    while (p < n) p *= 2;
    return p;
}
// The merge's path: true when the tiles are few enough to sort their maxima and merge only the best min(k, tiles).
WINNOW_HEAD_FN bool merge_sorts_tiles(int64_t tiles) { return tiles <= kMaxSortTiles; }
// On that path: how many of the sorted tiles are merged, and the tile a kept entry (a tile's best row) belongs to.
WINNOW_HEAD_FN int64_t kept_tiles(int64_t tiles, int k) { return k < tiles ? k : tiles; }
WINNOW_HEAD_FN int32_t tile_of(int32_t row) { return row / kTile; }

// A logit's term of the log-normalizer, exp(v - max) in double, max being the largest logit (of the row or the tile):
// a -inf logit adds exactly 0, also when the max is -inf as well, where v - max would be NaN; a NaN logit or max
// adds a NaN. Shared with the top_k kernel (top_k.cu), so that both ops give a row of -inf the log of an empty sum.
WINNOW_HEAD_FN double exp_term(float v, float max) {
    return v == -INFINITY ? 0.0 : exp(static_cast<double>(v) - static_cast<double>(max));
}
// max + log(the terms' sum): -inf for an empty sum (max -inf, sum 0), NaN when a term was NaN.
WINNOW_HEAD_FN double log_norm(float max, double sum) { return static_cast<double>(max) + log(sum); }
// A tile's term: exp_term, and 0 for padding.
WINNOW_HEAD_FN double lse_term(float v, int32_t id, float tile_max) { return id == kPadId ? 0.0 : exp_term(v, tile_max); }
// log sum_t sum_t_exp[t] * exp(tile_max[t] - m) + m, with m the largest tile max: the tiles' parts combined (a tile
// of -inf logits scales by 0; a NaN tile max makes the sum NaN).
WINNOW_HEAD_FN double lse_scale(float tile_max, float m) { return exp_term(tile_max, m); }

// The merge's state for one lane: its best list head among the lists it owns (lane, lane + 32, ...). List l is the
// candidate list of tile list_tile[l] (of tile l when list_tile is null).
struct LaneBest {
    float v = -INFINITY;
    int32_t id = kPadId;
    int64_t list = -1; // -1: the lane owns no list with entries left
};
// Scans the heads of the lists this lane owns; head[l] is how many entries of list l are taken (at most kk).
WINNOW_HEAD_ORDER_FN LaneBest lane_rescan(const float* vals, const int32_t* ids, const int32_t* head, const int32_t* list_tile, int64_t n_lists,
                                          int kk, int lane) {
    LaneBest b;
    for (int64_t l = lane; l < n_lists; l += 32) {
        const int h = head[l];
        if (h >= kk) continue;
        const int64_t t = list_tile ? list_tile[l] : l;
        const float v = vals[t * kk + h];
        const int32_t i = ids[t * kk + h];
        if (b.list < 0 || better(v, i, b.v, b.id)) b = LaneBest{v, i, l};
    }
    return b;
}
// Of two lanes' bests, the one that goes first (a lane with no list loses; ties between padding: the lower lane).
WINNOW_HEAD_ORDER_FN bool lane_wins(const LaneBest& a, int lane_a, const LaneBest& b, int lane_b) {
    if (a.list < 0 || b.list < 0) return b.list < 0 && (a.list >= 0 || lane_a < lane_b);
    if (better(a.v, a.id, b.v, b.id)) return true;
    if (better(b.v, b.id, a.v, a.id)) return false;
    return lane_a < lane_b;
}

// The workspace the two kernels share, at byte offsets from its start (each part 8-byte aligned).
struct Layout {
    size_t vals, ids, tile_max, tile_sum, head, bytes;
};
WINNOW_HEAD_FN size_t align8(size_t b) { return (b + 7) / 8 * 8; }
WINNOW_HEAD_FN Layout layout(int64_t rows, int k) {
    const size_t t = static_cast<size_t>(n_tiles(rows)), c = t * static_cast<size_t>(per_tile(k));
    Layout l{};
    l.vals = 0;
    l.ids = align8(l.vals + 4 * c);
    l.tile_max = align8(l.ids + 4 * c);
    l.tile_sum = align8(l.tile_max + 4 * t);
    l.head = align8(l.tile_sum + 8 * t);
    l.bytes = align8(l.head + 4 * t);
    return l;
}

} // namespace winnow::cuda::head_top_k
