#include "backend/cpu/attention_tiles_cpu.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "backend/cpu/attention_common.h"
#include "backend/cpu/attention_cpu.h"
#include "backend/cpu/blas.h"
#include "backend/cpu/kv_elem.h"
#include "winnow/error.h"

namespace winnow::cpu {

namespace {

constexpr int kMinRows = 16;        // fewer rows (decode, a short prefill) keep the row walk
constexpr int kChunkKeys = 256;     // keys a chunk: at head size 64 its fp32 K and V are 64 KiB each, in L2
constexpr int kTargetQueries = 96;  // query vectors a tile (rows x the group's heads): the sgemms' M
constexpr int kMinTileRows = 8, kMaxTileRows = 64;

std::atomic<int> g_forced{-1};

bool tiles_from_environment() {
    static const int choice = [] {
        const char* e = std::getenv("WINNOW_CPU_ATTENTION_TILES");
        if (!e || !*e) return 1;
        const std::string v = e;
        return v == "0" ? 0 : v == "1" ? 1 : -1;
    }();
    if (choice < 0)
        throw Error(ErrorKind::invalid_argument, std::string("WINNOW_CPU_ATTENTION_TILES must be 0 or 1, not \"") + std::getenv("WINNOW_CPU_ATTENTION_TILES") + "\"");
    return choice == 1;
}

// dst[0 .. n) = the cache row src widened to fp32 (exactly)
template <class E>
void widen_row(float* dst, const typename E::T* src, int n) {
    int i = 0;
#ifdef WINNOW_AVX2
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, E::load8(src + i));
#endif
    for (; i < n; ++i) dst[i] = E::load1(src + i);
}

// Hands out the keys of runs [runs[2r], runs[2r + 1]) a chunk of at most kChunkKeys at a time, as cache row indices.
class ChunkWalk {
public:
    ChunkWalk(const int* runs, int n_runs) : runs_(runs), n_runs_(n_runs), key_(n_runs > 0 ? runs[0] : 0) {}
    int next(int* idx) {
        int n = 0;
        while (n < kChunkKeys && r_ < n_runs_) {
            if (key_ == runs_[2 * r_ + 1]) {
                if (++r_ < n_runs_) key_ = runs_[2 * r_];
                continue;
            }
            const int take = std::min(kChunkKeys - n, runs_[2 * r_ + 1] - key_);
            for (int j = 0; j < take; ++j) idx[n + j] = key_ + j;
            n += take, key_ += take;
        }
        return n;
    }

private:
    const int* runs_;
    int n_runs_, r_ = 0, key_;
};

// One thread's buffers, sized for the largest tile.
struct TileScratch {
    std::vector<float> q, k, v, s, o, m, l;
    std::vector<float> q_abs, unit_scores, row_bounds; // query-aware selection's bounds
    std::vector<int> idx, runs, selected;
    TileScratch(int max_rows, int max_queries, int hd, int max_runs)
        : q(static_cast<size_t>(max_queries) * hd), k(static_cast<size_t>(kChunkKeys) * hd), v(static_cast<size_t>(kChunkKeys) * hd),
          s(static_cast<size_t>(max_queries) * kChunkKeys), o(static_cast<size_t>(max_queries) * hd), m(max_queries), l(max_queries), idx(kChunkKeys),
          runs(2 * max_runs + 2), selected(max_rows) {}
};

// The online softmax of one query vector after a chunk: its scores sr[0 .. valid) become e^(s - m) (the keys after its
// position, sr[valid .. n), weigh nothing), and what it summed under an older maximum is rescaled.
void softmax_row(float* sr, int valid, int n, float& m, float& l, float* o, int hd) {
    const float new_m = std::max(m, max_of(sr, valid));
    if (new_m == -INFINITY) { // no finite score yet: nothing to weigh
        std::fill(sr, sr + n, 0.0f);
        return;
    }
    if (new_m > m && l > 0.0f) {
        const float f = std::exp(m - new_m);
        l *= f;
        for (int d = 0; d < hd; ++d) o[d] *= f;
    }
    m = new_m;
    l += exp_shift_sum(sr, valid, new_m);
    std::fill(sr + valid, sr + n, 0.0f);
}

// Query-aware selection's score bounds for a whole tile at once. A unit's bound for query q,
//   sum_d max(q_d kmax_d, q_d kmin_d) = q . c + |q| . r,  c = (kmax + kmin) / 2, r = (kmax - kmin) / 2 (kmax >= kmin),
// is two products with the unit's centre and radius rows: two sgemms for every query vector of the tile, where the row
// walk (group_bound) takes one unit and one row at a time. The same bound in exact arithmetic; in fp32 another rounding.
struct UnitPlanes {
    int units = 0;                   // complete units summarised for the call's rows, per KV head
    std::vector<float> centre, radius; // [n_head_kv][units][head_dim]
};

UnitPlanes unit_planes(const AttentionParams& p, int last_pos, int n_threads) {
    const KeyBlockSummary& ks = p.key_summary;
    const int hd = p.head_dim;
    UnitPlanes u;
    u.units = std::max(0, std::min(ks.n_blocks, (last_pos + 1) / ks.block));
    u.centre.resize(static_cast<size_t>(p.n_head_kv) * u.units * hd);
    u.radius.resize(u.centre.size());
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int i = 0; i < p.n_head_kv * u.units; ++i) {
        const int kvh = i / u.units, unit = i % u.units;
        const size_t src = ks.at(kvh, unit, hd), dst = static_cast<size_t>(i) * hd;
        for (int d = 0; d < hd; ++d) {
            const float hi = half_to_float(ks.kmax[src + d]), lo = half_to_float(ks.kmin[src + d]);
            u.centre[dst + d] = 0.5f * (hi + lo);
            u.radius[dst + d] = 0.5f * (hi - lo);
        }
    }
    return u;
}

// The bounds of the tile's query vectors (sc.q, rows x heads) for the units [0, n) of KV head kvh: sc.unit_scores[i * n + u].
void tile_unit_scores(const UnitPlanes& planes, int kvh, int n, int queries, int hd, TileScratch& sc) {
    if (n == 0) return;
    for (size_t i = 0; i < static_cast<size_t>(queries) * hd; ++i) sc.q_abs[i] = std::abs(sc.q[i]);
    const size_t off = static_cast<size_t>(kvh) * planes.units * hd;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, queries, n, hd, 1.0f, sc.q.data(), hd, planes.centre.data() + off, hd, 0.0f,
                sc.unit_scores.data(), n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, queries, n, hd, 1.0f, sc.q_abs.data(), hd, planes.radius.data() + off, hd, 1.0f,
                sc.unit_scores.data(), n);
}

// Row r's bounds per selection unit, as the row walk's unit_bounds gives them: the highest over the group's heads for a
// candidate (complete, at or before the row's position, dropped by the mask), NaN for any other unit.
void row_unit_bounds(const AttentionParams& p, const uint8_t* mask_row, int q_pos, int r, int heads, int n, TileScratch& sc) {
    const int per_block = p.mask->block / p.key_summary.block, n_units = p.mask->n_blocks * per_block;
    const int candidates_end = std::min(n, (q_pos + 1) / p.key_summary.block);
    for (int u = 0; u < n_units; ++u) {
        float b = NAN;
        if (u < candidates_end && !mask_row[u / per_block]) {
            b = -INFINITY;
            for (int g = 0; g < heads; ++g) b = std::max(b, sc.unit_scores[static_cast<size_t>(r * heads + g) * n + u]);
        }
        sc.row_bounds[u] = b;
    }
}

// The kept keys at or before q_pos among the runs.
int kept_through(const int* runs, int n_runs, int q_pos) {
    int kept = 0;
    for (int r = 0; r < n_runs; ++r) kept += std::max(0, std::min(runs[2 * r + 1], q_pos + 1) - runs[2 * r]);
    return kept;
}

// One tile of rows with the heads of KV head kvh's group.
template <class E>
void attend_tile(GgmlType kv_type, const float* q, const typename E::T* k_cache, const typename E::T* v_cache, float* out, const AttentionParams& p,
                 const UnitPlanes& planes, RowTile tile, int kvh, TileScratch& sc) {
    const int hd = p.head_dim, heads = p.n_head / p.n_head_kv, kv_dim = p.n_head_kv * hd;
    const int rows = tile.t1 - tile.t0, first_pos = p.pos0 + tile.t0, last_pos = p.pos0 + tile.t1 - 1;
    const size_t group = static_cast<size_t>(heads) * hd; // a row's queries of the group, contiguous in q and out
    // query vector r * heads + g: row t0 + r, head kvh * heads + g
    for (int r = 0; r < rows; ++r)
        std::copy_n(q + (static_cast<size_t>(tile.t0 + r) * p.n_head + static_cast<size_t>(kvh) * heads) * hd, group, sc.q.data() + r * group);
    std::fill_n(sc.m.data(), rows * heads, -INFINITY);
    std::fill_n(sc.l.data(), rows * heads, 0.0f);
    std::fill_n(sc.o.data(), rows * group, 0.0f);
    // the tile's keys: its mask block row's kept blocks (every row of the tile shares them), up to its last row
    const uint8_t* mask_row = p.mask ? p.mask->row(first_pos / p.mask->block, kvh) : nullptr;
    int kept_all = 0;
    const int n_runs = key_runs(mask_row, p.mask ? p.mask->block : 0, last_pos, sc.runs.data(), &kept_all);
    const float scale = p.effective_scale();
    ChunkWalk walk(sc.runs.data(), n_runs);
    for (int n; (n = walk.next(sc.idx.data())) > 0;) {
        const int* idx = sc.idx.data();
        // K and V of the chunk as fp32 rows: in place for an fp32 cache's contiguous keys, else widened once
        const float *kc = sc.k.data(), *vc = sc.v.data();
        int ld = hd;
        const size_t head_off = static_cast<size_t>(kvh) * hd;
        bool in_place = false;
        if constexpr (std::is_same_v<E, KvF32>) {
            in_place = idx[n - 1] - idx[0] == n - 1;
            if (in_place) kc = k_cache + static_cast<size_t>(idx[0]) * kv_dim + head_off, vc = v_cache + static_cast<size_t>(idx[0]) * kv_dim + head_off, ld = kv_dim;
        }
        if (!in_place)
            for (int j = 0; j < n; ++j) {
                widen_row<E>(sc.k.data() + static_cast<size_t>(j) * hd, k_cache + static_cast<size_t>(idx[j]) * kv_dim + head_off, hd);
                widen_row<E>(sc.v.data() + static_cast<size_t>(j) * hd, v_cache + static_cast<size_t>(idx[j]) * kv_dim + head_off, hd);
            }
        // rows before the chunk's first key take nothing from it (the keys grow along the chunk, the rows' positions too)
        const int r0 = std::max(0, idx[0] - first_pos), mq = (rows - r0) * heads;
        float* s = sc.s.data();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mq, n, hd, scale, sc.q.data() + r0 * group, hd, kc, ld, 0.0f, s, n);
        for (int r = r0; r < rows; ++r) {
            const int q_pos = first_pos + r;
            const int valid = q_pos >= idx[n - 1] ? n : static_cast<int>(std::upper_bound(idx, idx + n, q_pos) - idx);
            for (int g = 0; g < heads; ++g) {
                const int i = r * heads + g;
                softmax_row(s + static_cast<size_t>(i - r0 * heads) * n, valid, n, sc.m[i], sc.l[i], sc.o.data() + static_cast<size_t>(i) * hd, hd);
            }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mq, hd, n, 1.0f, s, n, vc, ld, 1.0f, sc.o.data() + r0 * group, hd);
    }
    // query-aware selection: each row's own units, after the tile's shared keys (the row walk's code, on the same state)
    const bool select = p.mask && p.select_blocks > 0;
    if (select) {
        const int n = std::min(planes.units, (last_pos + 1) / p.key_summary.block); // the units complete by the tile's last row
        tile_unit_scores(planes, kvh, n, rows * heads, hd, sc);
        for (int r = 0; r < rows; ++r) {
            row_unit_bounds(p, mask_row, first_pos + r, r, heads, n, sc);
            sc.selected[r] = attend_selected_units(kv_type, sc.q.data() + r * group, k_cache, v_cache, first_pos + r, kvh, p, sc.row_bounds.data(),
                                                   sc.m.data() + r * heads, sc.l.data() + r * heads, sc.o.data() + r * group);
        }
    }
    // out = o / (l + the keys the mask dropped, as logit 0, in the SPION denominator mode)
    const bool spion = p.mask && p.mask->denominator == SparseDenominator::spion;
    for (int r = 0; r < rows; ++r) {
        const int q_pos = first_pos + r;
        const int kept = kept_through(sc.runs.data(), n_runs, q_pos) + (select ? sc.selected[r] : 0);
        const float dropped = spion ? static_cast<float>(q_pos + 1 - kept) : 0.0f;
        float* dst = out + (static_cast<size_t>(tile.t0 + r) * p.n_head + static_cast<size_t>(kvh) * heads) * hd;
        for (int g = 0; g < heads; ++g) {
            const int i = r * heads + g;
            const float inv = 1.0f / (sc.l[i] + (dropped > 0 ? dropped * std::exp(-sc.m[i]) : 0.0f));
            for (int d = 0; d < hd; ++d) dst[static_cast<size_t>(g) * hd + d] = sc.o[static_cast<size_t>(i) * hd + d] * inv;
        }
    }
}

template <class E>
void tiles_impl(GgmlType kv_type, const float* q, const typename E::T* k_cache, const typename E::T* v_cache, float* out, int n_tokens, const AttentionParams& p,
                int n_threads) {
    const int heads = p.n_head / p.n_head_kv, mask_block = p.mask ? p.mask->block : 0;
    const int rows = tile_rows_for(n_tokens, p.pos0, mask_block, heads, p.n_head_kv, n_threads);
    const std::vector<RowTile> tiles = plan_row_tiles(n_tokens, p.pos0, mask_block, rows);
    const int n_tiles = static_cast<int>(tiles.size()), tasks = n_tiles * p.n_head_kv, max_runs = p.mask ? p.mask->n_blocks : 1;
    prepare_blas(); // one OpenBLAS thread per call: the tasks below are shared out over our own threads
    const bool select = p.mask && p.select_blocks > 0;
    const UnitPlanes planes = select ? unit_planes(p, p.pos0 + n_tokens - 1, n_threads) : UnitPlanes{};
    const int n_units = select ? p.mask->n_blocks * (p.mask->block / p.key_summary.block) : 0;
#pragma omp parallel num_threads(n_threads)
    {
        TileScratch sc(rows, rows * heads, p.head_dim, max_runs);
        if (select) {
            sc.q_abs.resize(sc.q.size());
            sc.unit_scores.resize(static_cast<size_t>(rows) * heads * planes.units);
            sc.row_bounds.resize(n_units);
        }
        // the last tiles first: a causal tile's work grows with its position, so the long tasks do not come last
#pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < tasks; ++task)
            attend_tile<E>(kv_type, q, k_cache, v_cache, out, p, planes, tiles[n_tiles - 1 - task / p.n_head_kv], task % p.n_head_kv, sc);
    }
}

} // namespace

std::vector<RowTile> plan_row_tiles(int n_tokens, int pos0, int mask_block, int rows_per_tile) {
    std::vector<RowTile> tiles;
    for (int t = 0; t < n_tokens;) {
        int end = std::min(n_tokens, t + rows_per_tile);
        if (mask_block > 0) end = std::min(end, ((pos0 + t) / mask_block + 1) * mask_block - pos0); // the mask block row's last row + 1
        tiles.push_back({t, end});
        t = end;
    }
    return tiles;
}

int tile_rows_for(int n_tokens, int pos0, int mask_block, int group_heads, int n_head_kv, int n_threads) {
    int rows = std::clamp(kTargetQueries / std::max(1, group_heads), kMinTileRows, kMaxTileRows);
    while (rows > kMinTileRows && static_cast<int64_t>(plan_row_tiles(n_tokens, pos0, mask_block, rows).size()) * n_head_kv < 2 * n_threads)
        rows = std::max(kMinTileRows, rows / 2);
    return rows;
}

bool attention_tiles_apply(int n_tokens) {
    const int forced = g_forced.load(std::memory_order_relaxed);
    const bool on = forced >= 0 ? forced == 1 : tiles_from_environment();
    return on && n_tokens >= kMinRows;
}

void attention_tiles(GgmlType kv_type, const float* q, const void* k_cache, const void* v_cache, float* out, int n_tokens, const AttentionParams& p,
                     int n_threads) {
    with_kv_type(kv_type, [&](auto e) {
        using E = decltype(e);
        tiles_impl<E>(kv_type, q, static_cast<const typename E::T*>(k_cache), static_cast<const typename E::T*>(v_cache), out, n_tokens, p, n_threads);
    });
}

void attention_tiles_force(int on) { g_forced.store(on < 0 ? -1 : on ? 1 : 0, std::memory_order_relaxed); }

} // namespace winnow::cpu
