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
        throw Error(ErrorKind::invalid_argument,
                    std::string("WINNOW_CPU_ATTENTION_TILES must be 0 or 1, not \"") + std::getenv("WINNOW_CPU_ATTENTION_TILES") + "\"");
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
    std::vector<int> idx, runs, first, valid;
    // query-aware selection: |q|, the tile's bounds per query vector and unit, one row's bounds per unit, and the keys
    // each row added
    std::vector<float> q_abs, unit_scores, row_bounds;
    std::vector<int> selected;
    TileScratch(int max_rows, int heads, int hd, int max_runs, int plane_units, int selection_units)
        : q(static_cast<size_t>(max_rows) * heads * hd), k(static_cast<size_t>(kChunkKeys) * hd), v(k.size()),
          s(static_cast<size_t>(max_rows) * heads * kChunkKeys), o(q.size()), m(static_cast<size_t>(max_rows) * heads), l(m.size()), idx(kChunkKeys),
          runs(2 * static_cast<size_t>(max_runs) + 2), first(max_rows), valid(max_rows), q_abs(selection_units > 0 ? q.size() : 0),
          unit_scores(static_cast<size_t>(max_rows) * heads * plane_units), row_bounds(selection_units), selected(max_rows) {}
};

// The online softmax of one query vector after a chunk: its scores sr[first .. valid) become e^(s - m) (the keys after
// its position, sr[valid .. n), and those before its sliding window, sr[0 .. first), weigh nothing), and what it summed
// under an older maximum is rescaled.
void softmax_row(float* sr, int first, int valid, int n, float& m, float& l, float* o, int hd) {
    std::fill(sr, sr + first, 0.0f);
    sr += first, valid = std::max(0, valid - first), n -= first;
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
// walk (group_bound) takes one unit and one row at a time. For finite summaries it is the same bound in exact
// arithmetic, rounded otherwise: units whose bounds lie within rounding of each other may be chosen differently than by
// the row walk (which decode uses). A summary with an infinity (a key beyond fp16's range) would make c or the sum NaN,
// so such a unit takes the row walk's bound.
struct UnitPlanes {
    int units = 0;                     // complete units summarised for the call's rows, per KV head
    std::vector<float> centre, radius; // [n_head_kv][units][head_dim]
    std::vector<uint8_t> nonfinite;    // [n_head_kv][units]: the unit's summary holds an infinity or a NaN
};

UnitPlanes unit_planes(const AttentionParams& p, int last_pos, int n_threads) {
    const KeyBlockSummary& ks = p.key_summary;
    const int hd = p.head_dim;
    UnitPlanes u;
    u.units = std::max(0, std::min(ks.n_blocks, (last_pos + 1) / ks.block));
    u.centre.resize(static_cast<size_t>(p.n_head_kv) * u.units * hd);
    u.radius.resize(u.centre.size());
    u.nonfinite.assign(static_cast<size_t>(p.n_head_kv) * u.units, 0);
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int i = 0; i < p.n_head_kv * u.units; ++i) {
        const int kvh = i / u.units, unit = i % u.units;
        const size_t src = ks.at(kvh, unit, hd), dst = static_cast<size_t>(i) * hd;
        bool finite = true;
        for (int d = 0; d < hd; ++d) {
            const float hi = half_to_float(ks.kmax[src + d]), lo = half_to_float(ks.kmin[src + d]);
            finite = finite && std::isfinite(hi) && std::isfinite(lo);
            u.centre[dst + d] = 0.5f * (hi + lo);
            u.radius[dst + d] = 0.5f * (hi - lo);
        }
        u.nonfinite[i] = !finite;
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
void row_unit_bounds(const AttentionParams& p, const UnitPlanes& planes, const uint8_t* mask_row, int kvh, int q_pos, int r, int heads, int n,
                     TileScratch& sc) {
    const int per_block = p.mask->block / p.key_summary.block, n_units = p.mask->n_blocks * per_block;
    const int candidates_end = std::min(n, (q_pos + 1) / p.key_summary.block);
    const uint8_t* nonfinite = planes.nonfinite.data() + static_cast<size_t>(kvh) * planes.units;
    for (int u = 0; u < n_units; ++u) {
        float b = NAN;
        if (u < candidates_end && !mask_row[u / per_block]) {
            if (nonfinite[u]) {
                b = unit_score_bound(p, sc.q.data() + static_cast<size_t>(r) * heads * p.head_dim, kvh, u);
            } else {
                b = -INFINITY;
                for (int g = 0; g < heads; ++g) b = std::max(b, sc.unit_scores[static_cast<size_t>(r * heads + g) * n + u]);
            }
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

// What one task (a tile of rows, the heads of one KV head's group) works on.
template <class E>
struct TileTask {
    GgmlType kv_type;
    const typename E::T* k_cache;
    const typename E::T* v_cache;
    const AttentionParams& p;
    RowTile tile;
    int kvh;
    int heads() const { return p.n_head / p.n_head_kv; }
    int rows() const { return tile.t1 - tile.t0; }
    int first_pos() const { return p.pos0 + tile.t0; }
    int last_pos() const { return p.pos0 + tile.t1 - 1; }
    size_t group() const { return static_cast<size_t>(heads()) * p.head_dim; } // a row's queries of the group, contiguous in q and out
    size_t head_offset() const { return static_cast<size_t>(kvh) * p.head_dim; }
};

// A chunk's K and V as fp32 rows ld floats apart.
struct ChunkRows {
    const float* k;
    const float* v;
    int ld;
};

// The chunk's keys idx[0 .. n): read in place from an fp32 cache when they are contiguous, else widened once.
template <class E>
ChunkRows chunk_rows(const TileTask<E>& t, const int* idx, int n, TileScratch& sc) {
    const int hd = t.p.head_dim, kv_dim = t.p.n_head_kv * hd;
    if constexpr (std::is_same_v<E, KvF32>) {
        if (idx[n - 1] - idx[0] == n - 1) {
            const size_t at = static_cast<size_t>(idx[0]) * kv_dim + t.head_offset();
            return {t.k_cache + at, t.v_cache + at, kv_dim};
        }
    }
    for (int j = 0; j < n; ++j) {
        const size_t at = static_cast<size_t>(idx[j]) * kv_dim + t.head_offset();
        widen_row<E>(sc.k.data() + static_cast<size_t>(j) * hd, t.k_cache + at, hd);
        widen_row<E>(sc.v.data() + static_cast<size_t>(j) * hd, t.v_cache + at, hd);
    }
    return {sc.k.data(), sc.v.data(), hd};
}

// Whether rows [j0, n) of a chunk's V are all finite (x * 0 is 0 for a finite x and NaN for an infinity or a NaN).
bool rows_finite(const float* v, int j0, int n, int ld, int hd) {
    float acc = 0.0f;
    for (int j = j0; j < n; ++j)
        for (int d = 0; d < hd; ++d) acc += v[static_cast<size_t>(j) * ld + d] * 0.0f;
    return acc == 0.0f;
}

// The chunk's keys idx[0 .. n) for the tile's rows from r0 on (the rows before it are at positions before the chunk's
// first key): S = scale Q K^T, each query vector's online softmax (keys [sc.first[r], sc.valid[r]): those at or before
// row r's position and within its sliding window), then O += P V.
template <class E>
void add_chunk(const TileTask<E>& t, const ChunkRows& c, const int* idx, int n, int r0, TileScratch& sc) {
    const int hd = t.p.head_dim, heads = t.heads(), rows = t.rows(), mq = (rows - r0) * heads;
    const size_t group = t.group();
    float* s = sc.s.data();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mq, n, hd, t.p.effective_scale(), sc.q.data() + r0 * group, hd, c.k, c.ld, 0.0f, s, n);
    for (int r = r0; r < rows; ++r) {
        const int q_pos = t.first_pos() + r;
        const int valid = q_pos >= idx[n - 1] ? n : static_cast<int>(std::upper_bound(idx, idx + n, q_pos) - idx);
        const int first_key = t.p.first_key(q_pos);
        const int first = first_key <= idx[0] ? 0 : static_cast<int>(std::lower_bound(idx, idx + n, first_key) - idx);
        sc.first[r] = first, sc.valid[r] = valid;
        for (int g = 0; g < heads; ++g) {
            const int i = r * heads + g;
            float* sr = s + static_cast<size_t>(i - r0 * heads) * n;
            if (valid > first) softcap_scores(sr + first, valid - first, t.p.softcap);
            softmax_row(sr, first, valid, n, sc.m[i], sc.l[i], sc.o.data() + static_cast<size_t>(i) * hd, hd);
        }
    }
    // A row weighs the keys after its position (and before its window) by 0, but 0 x inf is NaN: where such a key's
    // value is not finite (an f16 cache's overflow), each row takes only its own keys, as the row walk does, so a later
    // token cannot reach it. The first row has the fewest keys after its position, the last the most before its window.
    const int last_first = sc.first[rows - 1];
    if ((sc.valid[r0] == n || rows_finite(c.v, sc.valid[r0], n, c.ld, hd)) && (last_first == 0 || rows_finite(c.v, 0, last_first, c.ld, hd))) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mq, hd, n, 1.0f, s, n, c.v, c.ld, 1.0f, sc.o.data() + r0 * group, hd);
        return;
    }
    for (int r = r0; r < rows; ++r) {
        const int first = sc.first[r], keys = sc.valid[r] - first;
        if (keys > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, heads, hd, keys, 1.0f, s + static_cast<size_t>(r - r0) * heads * n + first, n,
                        c.v + static_cast<size_t>(first) * c.ld, c.ld, 1.0f, sc.o.data() + r * group, hd);
    }
}

// Query-aware selection: each row's own units, after the tile's shared keys, by the row walk's code on the same state.
template <class E>
void add_selected_units(const TileTask<E>& t, const UnitPlanes& planes, const uint8_t* mask_row, TileScratch& sc) {
    const int heads = t.heads(), rows = t.rows();
    const int n = std::min(planes.units, (t.last_pos() + 1) / t.p.key_summary.block); // the units complete by the tile's last row
    tile_unit_scores(planes, t.kvh, n, rows * heads, t.p.head_dim, sc);
    for (int r = 0; r < rows; ++r) {
        row_unit_bounds(t.p, planes, mask_row, t.kvh, t.first_pos() + r, r, heads, n, sc);
        sc.selected[r] = attend_selected_units(t.kv_type, sc.q.data() + r * t.group(), t.k_cache, t.v_cache, t.first_pos() + r, t.kvh, t.p,
                                               sc.row_bounds.data(), sc.m.data() + r * heads, sc.l.data() + r * heads, sc.o.data() + r * t.group());
    }
}

// out = o / (l + the keys the mask dropped, as logit 0, in the SPION denominator mode)
template <class E>
void write_rows(const TileTask<E>& t, int n_runs, bool select, float* out, const TileScratch& sc) {
    const int hd = t.p.head_dim, heads = t.heads();
    const bool spion = t.p.mask && t.p.mask->denominator == SparseDenominator::spion;
    for (int r = 0; r < t.rows(); ++r) {
        const int q_pos = t.first_pos() + r;
        const int kept = kept_through(sc.runs.data(), n_runs, q_pos) + (select ? sc.selected[r] : 0);
        const float dropped = spion ? static_cast<float>(q_pos + 1 - kept) : 0.0f;
        float* dst = out + (static_cast<size_t>(t.tile.t0 + r) * t.p.n_head + static_cast<size_t>(t.kvh) * heads) * hd;
        for (int g = 0; g < heads; ++g) {
            const int i = r * heads + g;
            const float inv = 1.0f / (sc.l[i] + (dropped > 0 ? dropped * std::exp(-sc.m[i]) : 0.0f));
            for (int d = 0; d < hd; ++d) dst[static_cast<size_t>(g) * hd + d] = sc.o[static_cast<size_t>(i) * hd + d] * inv;
        }
    }
}

// One tile of rows with the heads of KV head kvh's group.
template <class E>
void attend_tile(const TileTask<E>& t, const float* q, float* out, const UnitPlanes& planes, TileScratch& sc) {
    const int rows = t.rows(), heads = t.heads();
    const size_t group = t.group();
    // query vector r * heads + g: row t0 + r, head kvh * heads + g
    for (int r = 0; r < rows; ++r) {
        const size_t at = (static_cast<size_t>(t.tile.t0 + r) * t.p.n_head + static_cast<size_t>(t.kvh) * heads) * t.p.head_dim;
        std::copy_n(q + at, group, sc.q.data() + r * group);
    }
    std::fill_n(sc.m.data(), rows * heads, -INFINITY);
    std::fill_n(sc.l.data(), rows * heads, 0.0f);
    std::fill_n(sc.o.data(), rows * group, 0.0f);
    // the tile's keys: its mask block row's kept blocks (every row of the tile shares them), up to its last row
    const uint8_t* mask_row = t.p.mask ? t.p.mask->row(t.first_pos() / t.p.mask->block, t.kvh) : nullptr;
    int kept_all = 0;
    const int n_runs = key_runs(mask_row, t.p.mask ? t.p.mask->block : 0, t.last_pos(), sc.runs.data(), &kept_all, t.p.first_key(t.first_pos()));
    ChunkWalk walk(sc.runs.data(), n_runs);
    for (int n; (n = walk.next(sc.idx.data())) > 0;) {
        // rows before the chunk's first key take nothing from it (the keys grow along the chunk, the rows' positions too)
        const int r0 = std::max(0, sc.idx[0] - t.first_pos());
        add_chunk(t, chunk_rows(t, sc.idx.data(), n, sc), sc.idx.data(), n, r0, sc);
    }
    const bool select = t.p.mask && t.p.select_blocks > 0;
    if (select) add_selected_units(t, planes, mask_row, sc);
    write_rows(t, n_runs, select, out, sc);
}

template <class E>
void tiles_impl(GgmlType kv_type, const float* q, const typename E::T* k_cache, const typename E::T* v_cache, float* out, int n_tokens,
                const AttentionParams& p, int n_threads) {
    const int heads = p.n_head / p.n_head_kv, mask_block = p.mask ? p.mask->block : 0;
    const int rows = tile_rows_for(n_tokens, p.pos0, mask_block, heads, p.n_head_kv, n_threads);
    const std::vector<RowTile> tiles = plan_row_tiles(n_tokens, p.pos0, mask_block, rows);
    const int n_tiles = static_cast<int>(tiles.size()), tasks = n_tiles * p.n_head_kv, max_runs = p.mask ? p.mask->n_blocks : 1;
    prepare_blas(); // one OpenBLAS thread per call: the tasks below are shared out over our own threads
    const bool select = p.mask && p.select_blocks > 0;
    const UnitPlanes planes = select ? unit_planes(p, p.pos0 + n_tokens - 1, n_threads) : UnitPlanes{};
    const int selection_units = select ? p.mask->n_blocks * (p.mask->block / p.key_summary.block) : 0;
#pragma omp parallel num_threads(n_threads)
    {
        TileScratch sc(rows, heads, p.head_dim, max_runs, planes.units, selection_units);
        // the last tiles first: a causal tile's work grows with its position, so the long tasks do not come last
#pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < tasks; ++task) {
            const TileTask<E> t{kv_type, k_cache, v_cache, p, tiles[n_tiles - 1 - task / p.n_head_kv], task % p.n_head_kv};
            attend_tile(t, q, out, planes, sc);
        }
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
        tiles_impl<E>(kv_type, q, static_cast<const typename E::T*>(k_cache), static_cast<const typename E::T*>(v_cache), out, n_tokens, p,
                      n_threads);
    });
}

void attention_tiles_force(int on) { g_forced.store(on < 0 ? -1 : on ? 1 : 0, std::memory_order_relaxed); }

} // namespace winnow::cpu
