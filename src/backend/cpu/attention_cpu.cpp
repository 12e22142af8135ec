#include "backend/cpu/attention_cpu.h"

#include <algorithm>
#include <cmath>
#include <omp.h>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "backend/cpu/attention_common.h"
#include "backend/cpu/attention_tiles_cpu.h"
#include "backend/cpu/kv_elem.h"
#include "backend/cpu/simd.h"
#include "winnow/error.h"

namespace winnow::cpu {

namespace {

constexpr int kChunk = 64; // keys scored at once for every head of a group (the scores stay in L1)

// y += a * x, x a cache row of element type E (widened 8 lanes at a time: no fp32 copy of the cache)
template <class E>
inline void axpy(float* y, float a, const typename E::T* x, int n) {
    int i = 0;
#ifdef WINNOW_AVX2
    const __m256 va = _mm256_set1_ps(a);
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, E::load8(x + i), _mm256_loadu_ps(y + i)));
#endif
    for (; i < n; ++i) y[i] += a * E::load1(x + i);
}

// q . k, k a cache row of element type E. F32 keeps simd.h's dot_f32; the others run the same two-accumulator loop
// over widened loads.
template <class E>
inline float dot_kv(const float* q, const typename E::T* k, int n) {
    if constexpr (std::is_same_v<E, KvF32>) {
        return dot_f32(q, k, static_cast<size_t>(n));
    } else {
        int i = 0;
        float s = 0.0f;
#ifdef WINNOW_AVX2
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        for (; i + 16 <= n; i += 16) {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), E::load8(k + i), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), E::load8(k + i + 8), acc1);
        }
        for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), E::load8(k + i), acc0);
        s = hsum(_mm256_add_ps(acc0, acc1));
#endif
        for (; i < n; ++i) s += q[i] * E::load1(k + i);
        return s;
    }
}

// sum_d max(q_d * kmax_d, q_d * kmin_d) over the widened fp16 summary: an upper bound of q.k over every key k with
// kmin <= k <= kmax elementwise.
inline float score_bound(const float* q, const uint16_t* kmax, const uint16_t* kmin, int n) {
    int i = 0;
    float s = 0.0f;
#ifdef WINNOW_AVX2
    __m256 acc = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        const __m256 vq = _mm256_loadu_ps(q + i);
        acc = _mm256_add_ps(acc, _mm256_max_ps(_mm256_mul_ps(vq, KvF16::load8(kmax + i)), _mm256_mul_ps(vq, KvF16::load8(kmin + i))));
    }
    s = hsum(acc);
#endif
    for (; i < n; ++i) s += std::max(q[i] * KvF16::load1(kmax + i), q[i] * KvF16::load1(kmin + i));
    return s;
}

// max over the group's heads of score_bound(qg + g * hd, kmax, kmin, hd), with the same sums (bit for bit): with AVX2
// the summary rows are loaded and widened once for all heads instead of once per head.
inline float group_bound(const float* qg, int heads, const uint16_t* kmax, const uint16_t* kmin, int hd) {
#ifdef WINNOW_AVX2
    constexpr int kMaxHeads = 8;
    if (hd % 8 == 0 && heads <= kMaxHeads) {
        __m256 acc[kMaxHeads];
        for (int g = 0; g < heads; ++g) acc[g] = _mm256_setzero_ps();
        for (int i = 0; i < hd; i += 8) {
            const __m256 hi = KvF16::load8(kmax + i), lo = KvF16::load8(kmin + i);
            for (int g = 0; g < heads; ++g) {
                const __m256 vq = _mm256_loadu_ps(qg + static_cast<size_t>(g) * hd + i);
                acc[g] = _mm256_add_ps(acc[g], _mm256_max_ps(_mm256_mul_ps(vq, hi), _mm256_mul_ps(vq, lo)));
            }
        }
        float ub = -INFINITY;
        for (int g = 0; g < heads; ++g) ub = std::max(ub, hsum(acc[g]));
        return ub;
    }
#endif
    float ub = -INFINITY;
    for (int g = 0; g < heads; ++g) ub = std::max(ub, score_bound(qg + static_cast<size_t>(g) * hd, kmax, kmin, hd));
    return ub;
}

// Per-thread buffers for query-aware selection.
struct SelectScratch {
    std::vector<uint8_t> row;
    std::vector<float> bounds;                     // per selection unit (splits == 1)
    std::vector<std::pair<float, int>> candidates; // (bound, unit)
};

// A row's keep flags, one per `unit` keys (null flags: dense).
struct RowFlags {
    const uint8_t* flags;
    int unit;
};

// Selection units per mask block, and the units a row's flags cover (0 without selection).
inline int units_per_block(const AttentionParams& p) { return p.mask->block / p.key_summary.block; }
inline int selection_units(const AttentionParams& p) { return p.mask && p.select_blocks > 0 ? p.mask->n_blocks * units_per_block(p) : 0; }

// bounds[u] for units [u0, u1) of the row at q_pos, KV head kvh: the highest score bound over the group's queries qg
// for a candidate unit (complete, wholly at or before q_pos, dropped by the mask), NaN for any other unit.
void unit_bounds(const AttentionParams& p, const float* qg, int heads, int q_pos, int kvh, int u0, int u1, float* bounds) {
    const KeyBlockSummary& ks = p.key_summary;
    const int hd = p.head_dim, per_block = units_per_block(p);
    const uint8_t* row = p.mask->row(q_pos / p.mask->block, kvh);
    const int candidates_end = std::min(ks.n_blocks, (q_pos + 1) / ks.block);
    constexpr int kAhead = 4; // units prefetched ahead: the summaries are read once per step, from memory
    for (int u = u0; u < u1; ++u) {
        if (u >= candidates_end || row[u / per_block]) {
            bounds[u] = NAN;
            continue;
        }
        const size_t off = ks.at(kvh, u, hd); // the KV head's units follow each other: one sequential stream per array
#ifdef WINNOW_AVX2
        if (u + kAhead < u1)
            for (int b = 0; b < hd * static_cast<int>(sizeof(uint16_t)); b += 64) {
                _mm_prefetch(reinterpret_cast<const char*>(ks.kmax + off + static_cast<size_t>(kAhead) * hd) + b, _MM_HINT_T0);
                _mm_prefetch(reinterpret_cast<const char*>(ks.kmin + off + static_cast<size_t>(kAhead) * hd) + b, _MM_HINT_T0);
            }
#endif
        bounds[u] = group_bound(qg, heads, ks.kmax + off, ks.kmin + off, hd);
    }
}

// The row's flags per selection unit: the mask's row, plus the p.select_blocks candidate units with the highest
// bounds (ties: the lower unit). Only the set matters, so an nth_element, not a sort.
RowFlags select_units(const AttentionParams& p, int q_pos, int kvh, const float* bounds, SelectScratch& sc) {
    const BlockMask& m = *p.mask;
    const uint8_t* row = m.row(q_pos / m.block, kvh);
    const int per_block = units_per_block(p), n_units = selection_units(p);
    sc.row.resize(n_units);
    sc.candidates.clear();
    for (int u = 0; u < n_units; ++u) {
        sc.row[u] = row[u / per_block];
        if (!std::isnan(bounds[u])) sc.candidates.emplace_back(bounds[u], u);
    }
    const int k = std::min<int>(p.select_blocks, static_cast<int>(sc.candidates.size()));
    if (k < static_cast<int>(sc.candidates.size()))
        std::nth_element(sc.candidates.begin(), sc.candidates.begin() + k, sc.candidates.end(),
                         [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    for (int i = 0; i < k; ++i) sc.row[sc.candidates[i].second] = 1;
    return {sc.row.data(), p.key_summary.block};
}

// The keep flags of the row at q_pos for KV head kvh: the mask's row, plus (p.select_blocks) the dropped complete,
// causal, summarised selection units with the highest score bound for the group's queries qg (the flags are then per
// selection unit).
RowFlags row_flags(const AttentionParams& p, const float* qg, int heads, int q_pos, int kvh, SelectScratch& sc) {
    if (!p.mask) return {nullptr, 0};
    if (p.select_blocks <= 0) return {p.mask->row(q_pos / p.mask->block, kvh), p.mask->block};
    sc.bounds.resize(selection_units(p));
    unit_bounds(p, qg, heads, q_pos, kvh, 0, selection_units(p), sc.bounds.data());
    return select_units(p, q_pos, kvh, sc.bounds.data(), sc);
}

// The online-softmax state of the g heads of one KV group: running max m[g], sum l[g] of e^(s - m), and the
// unnormalised output o[g][hd].
struct GroupState {
    float* m;
    float* l;
    float* o;
    // the state laid out in heads * (hd + 2) floats at buf: m, then l, then o
    static GroupState at(float* buf, int heads) { return {buf, buf + heads, buf + 2 * heads}; }
    void reset(int g, int hd) {
        std::fill(m, m + g, -INFINITY);
        std::fill(l, l + g, 0.0f);
        std::fill(o, o + static_cast<size_t>(g) * hd, 0.0f);
    }
};

struct GroupShape {
    int heads, hd, kv_dim, kvh;
    float scale;
    float softcap = 0; // AttentionParams::softcap
};

// A chunk of kept keys: up to kChunk cache row indices, gathered along the runs (a chunk may span several runs, so
// the 8-key units of query-aware selection pay the per-chunk softmax bookkeeping once per 64 keys, not per unit).
struct KeyChunk {
    int idx[kChunk];
    int n = 0;
};

// Hands out the kept keys with indices [lo, hi) (counted along the runs) a chunk at a time.
class KeyCursor {
public:
    KeyCursor(const int* runs, int n_runs, int lo, int hi) : runs_(runs), n_runs_(n_runs), left_(std::max(0, hi - lo)) {
        // skip to the run holding kept key number lo
        for (int seen = 0; r_ < n_runs_; ++r_) {
            const int len = runs_[2 * r_ + 1] - runs_[2 * r_];
            if (seen + len > lo) {
                key_ = runs_[2 * r_] + (lo - seen);
                break;
            }
            seen += len;
        }
    }
    void next(KeyChunk& c) {
        c.n = 0;
        while (c.n < kChunk && left_ > 0 && r_ < n_runs_) {
            const int take = std::min({kChunk - c.n, left_, runs_[2 * r_ + 1] - key_});
            for (int j = 0; j < take; ++j) c.idx[c.n + j] = key_ + j;
            c.n += take, left_ -= take, key_ += take;
            if (key_ == runs_[2 * r_ + 1] && ++r_ < n_runs_) key_ = runs_[2 * r_];
        }
    }

private:
    const int* runs_;
    int n_runs_, left_, r_ = 0, key_ = 0;
};

#ifdef WINNOW_AVX2
// scores[j] = scale * q . k_j for the 8 keys at rows idx[0..8) (8 independent accumulation chains, one horizontal-add
// tree); k_head points at the group's KV head in row 0
template <class E>
inline void score8(const float* q, const typename E::T* k_head, const int* idx, size_t stride, int hd, float scale, float* scores) {
    const typename E::T* k[8];
    for (int j = 0; j < 8; ++j) k[j] = k_head + idx[j] * stride;
    __m256 acc[8];
    for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
    for (int r = 0; r < hd; r += 8) {
        const __m256 qv = _mm256_loadu_ps(q + r);
        for (int j = 0; j < 8; ++j) acc[j] = _mm256_fmadd_ps(qv, E::load8(k[j] + r), acc[j]);
    }
    _mm256_storeu_ps(scores, _mm256_mul_ps(lane_totals(acc), _mm256_set1_ps(scale)));
}

// o[0 .. 8 NV) += sum_j p[j] v_j[0 .. 8 NV), v_j at row idx[j]: the output slice stays in registers across the n keys
template <class E, int NV>
inline void weigh_values(float* o, const float* p, const typename E::T* v_head, const int* idx, size_t stride, int n) {
    __m256 acc[NV];
    for (int r = 0; r < NV; ++r) acc[r] = _mm256_loadu_ps(o + 8 * r);
    for (int j = 0; j < n; ++j) {
        const __m256 pj = _mm256_set1_ps(p[j]);
        const typename E::T* vj = v_head + idx[j] * stride;
        for (int r = 0; r < NV; ++r) acc[r] = _mm256_fmadd_ps(pj, E::load8(vj + 8 * r), acc[r]);
    }
    for (int r = 0; r < NV; ++r) _mm256_storeu_ps(o + 8 * r, acc[r]);
}

template <class E>
void weigh_values_any(float* o, const float* p, const typename E::T* v_head, const int* idx, size_t stride, int n, int hd) {
    for (int r0 = 0; r0 < hd; r0 += 64) {
        switch (std::min(8, (hd - r0) / 8)) {
        case 8: weigh_values<E, 8>(o + r0, p, v_head + r0, idx, stride, n); break;
        case 7: weigh_values<E, 7>(o + r0, p, v_head + r0, idx, stride, n); break;
        case 6: weigh_values<E, 6>(o + r0, p, v_head + r0, idx, stride, n); break;
        case 5: weigh_values<E, 5>(o + r0, p, v_head + r0, idx, stride, n); break;
        case 4: weigh_values<E, 4>(o + r0, p, v_head + r0, idx, stride, n); break;
        case 3: weigh_values<E, 3>(o + r0, p, v_head + r0, idx, stride, n); break;
        case 2: weigh_values<E, 2>(o + r0, p, v_head + r0, idx, stride, n); break;
        default: weigh_values<E, 1>(o + r0, p, v_head + r0, idx, stride, n); break;
        }
    }
}

// Prefetches the rows idx[0..n) of one KV head (row_bytes each).
template <class E>
inline void prefetch_rows(const typename E::T* head, const int* idx, int n, size_t stride, int row_bytes) {
    for (int j = 0; j < n; ++j)
        for (int off = 0; off < row_bytes; off += 64) _mm_prefetch(reinterpret_cast<const char*>(head + idx[j] * stride) + off, _MM_HINT_T0);
}
#endif

// The running maximum and sum of head g after the chunk's scores sg[0..n): rescales what was accumulated under an
// older maximum, and turns the scores into e^(s - m).
inline void softmax_update(GroupState& st, int g, int hd, float* sg, int n) {
    const float new_m = std::max(st.m[g], *std::max_element(sg, sg + n));
    if (new_m > st.m[g] && st.l[g] > 0.0f) { // rescale what was accumulated under the old maximum
        const float f = std::exp(st.m[g] - new_m);
        st.l[g] *= f;
        float* og = st.o + static_cast<size_t>(g) * hd;
        for (int d = 0; d < hd; ++d) og[d] *= f;
    }
    st.m[g] = new_m;
    st.l[g] += exp_shift_sum(sg, n, new_m);
}

// Adds the chunk's keys to the state of the group's heads, whose queries are qg[g * hd ...]. With AVX2 and a head
// size that is a multiple of 8: keys are scored 8 at a time per head (their K rows, read once from memory, serve every
// head of the group from L1), and each head's output slice stays in registers while the chunk's values are weighed
// in; the next chunk's K rows and this chunk's V rows are prefetched (the rows are gathered, possibly from several
// runs, so the hardware prefetcher cannot be relied on). Otherwise one key at a time.
template <class E>
void accumulate(const GroupShape& s, const float* qg, const typename E::T* k_cache, const typename E::T* v_cache, const KeyChunk& c,
                const KeyChunk& next, GroupState& st, float* scores) {
    const size_t head_off = static_cast<size_t>(s.kvh) * s.hd, stride = static_cast<size_t>(s.kv_dim);
    const typename E::T* k_head = k_cache + head_off;
    const typename E::T* v_head = v_cache + head_off;
    const int n = c.n;
    int j = 0;
#ifdef WINNOW_AVX2
    const bool vector_path = s.hd % 8 == 0;
    if (vector_path) {
        const int row_bytes = s.hd * static_cast<int>(sizeof(typename E::T));
        prefetch_rows<E>(k_head, next.idx, next.n, stride, row_bytes);
        prefetch_rows<E>(v_head, c.idx, n, stride, row_bytes); // weighed in after the scores
        for (; j + 8 <= n; j += 8)
            for (int g = 0; g < s.heads; ++g) score8<E>(qg + static_cast<size_t>(g) * s.hd, k_head, c.idx + j, stride, s.hd, s.scale, scores + g * kChunk + j);
    }
#endif
    for (; j < n; ++j)
        for (int g = 0; g < s.heads; ++g) scores[g * kChunk + j] = dot_kv<E>(qg + static_cast<size_t>(g) * s.hd, k_head + c.idx[j] * stride, s.hd) * s.scale;
    for (int g = 0; g < s.heads; ++g) softcap_scores(scores + g * kChunk, n, s.softcap);
    for (int g = 0; g < s.heads; ++g) softmax_update(st, g, s.hd, scores + g * kChunk, n);
#ifdef WINNOW_AVX2
    if (vector_path) {
        for (int g = 0; g < s.heads; ++g) weigh_values_any<E>(st.o + static_cast<size_t>(g) * s.hd, scores + g * kChunk, v_head, c.idx, stride, n, s.hd);
        return;
    }
#endif
    for (j = 0; j < n; ++j)
        for (int g = 0; g < s.heads; ++g) axpy<E>(st.o + static_cast<size_t>(g) * s.hd, scores[g * kChunk + j], v_head + c.idx[j] * stride, s.hd);
}

// Adds the kept keys with indices [lo, hi) (counted along the runs) to the state, a chunk at a time (the next chunk is
// gathered first, for the prefetch).
template <class E>
void accumulate_range(const GroupShape& s, const float* qg, const typename E::T* k_cache, const typename E::T* v_cache, const int* runs, int n_runs,
                      int lo, int hi, GroupState& st, float* scores) {
    KeyCursor cursor(runs, n_runs, lo, hi);
    KeyChunk chunks[2];
    cursor.next(chunks[0]);
    for (int cur = 0; chunks[cur].n > 0; cur ^= 1) {
        cursor.next(chunks[cur ^ 1]);
        accumulate<E>(s, qg, k_cache, v_cache, chunks[cur], chunks[cur ^ 1], st, scores);
    }
}

// out[g] = o[g] / (l[g] + dropped keys as logit 0, in the SPION denominator mode)
void finalize(const GroupState& st, int heads, int hd, float dropped_as_zero, float* out) {
    for (int g = 0; g < heads; ++g) {
        const float denom = st.l[g] + (dropped_as_zero > 0 ? dropped_as_zero * std::exp(-st.m[g]) : 0.0f);
        const float inv = 1.0f / denom;
        for (int d = 0; d < hd; ++d) out[static_cast<size_t>(g) * hd + d] = st.o[static_cast<size_t>(g) * hd + d] * inv;
    }
}

template <class E>
void attention_impl(const float* q, const typename E::T* k_cache, const typename E::T* v_cache, float* out, int n_tokens, const AttentionParams& p,
                    int n_threads) {
    const int hd = p.head_dim, n_kv = p.n_head_kv, heads = p.n_head / p.n_head_kv, pos0 = p.pos0;
    const int kv_dim = n_kv * hd, state_floats = heads * (hd + 2);
    // flags per row: the mask's blocks, or the finer selection units with query-aware selection
    const int n_units = !p.mask ? 1 : p.select_blocks > 0 ? selection_units(p) : p.mask->n_blocks;
    const bool spion = p.mask && p.mask->denominator == SparseDenominator::spion;
    // Splits per row: 1 when (row, KV head) tasks fill the cores; otherwise enough for ~8 tasks per thread, with at
    // least 256 keys per split.
    const int base = n_tokens * n_kv;
    int splits = 1;
    if (n_threads > 1 && base < 2 * n_threads) splits = std::clamp((8 * n_threads + base - 1) / base, 1, std::max(1, (pos0 + n_tokens) / 256));
    std::vector<float> partial(splits > 1 ? static_cast<size_t>(base) * splits * state_floats : 0);
    // With splits, each (row, KV head)'s kept-key runs are found once, before its parts run (query-aware selection
    // reads every block summary, too much to repeat per part): runs, their count and the kept keys per row_kv.
    const int runs_stride = 2 * n_units + 2;
    std::vector<int> row_runs(splits > 1 ? static_cast<size_t>(base) * runs_stride : 0), row_n_runs(splits > 1 ? base : 0), kept_keys(splits > 1 ? base : 0);
    // with splits and selection: the unit bounds of every row_kv, computed in bound_parts parts of >= 64 units each
    const int n_sel = splits > 1 ? selection_units(p) : 0;
    const int bound_parts = std::clamp(n_sel / 64, 1, 4 * n_threads);
    std::vector<float> bounds(static_cast<size_t>(n_sel) * base);
    auto q_offset = [&](int t, int kvh) { return (static_cast<size_t>(t) * p.n_head + static_cast<size_t>(kvh) * heads) * hd; };
    auto dropped_as_zero = [&](int q_pos, int kept) { return spion ? static_cast<float>(q_pos + 1 - kept) : 0.0f; };

#pragma omp parallel num_threads(n_threads)
    {
        std::vector<float> scores(static_cast<size_t>(heads) * kChunk), own(splits > 1 ? 0 : state_floats);
        std::vector<int> runs(splits > 1 ? 0 : runs_stride);
        SelectScratch select;
        if (splits > 1) {
            if (n_sel > 0) { // every row's unit bounds, in parts of the units (a decode step has too few rows to share out)
#pragma omp for schedule(dynamic)
                for (int task = 0; task < base * bound_parts; ++task) {
                    const int row_kv = task / bound_parts, part = task % bound_parts, t = row_kv / n_kv, kvh = row_kv % n_kv;
                    unit_bounds(p, q + q_offset(t, kvh), heads, pos0 + t, kvh, static_cast<int>(static_cast<int64_t>(n_sel) * part / bound_parts),
                                static_cast<int>(static_cast<int64_t>(n_sel) * (part + 1) / bound_parts), bounds.data() + static_cast<size_t>(row_kv) * n_sel);
                }
            }
#pragma omp for schedule(dynamic)
            for (int row_kv = 0; row_kv < base; ++row_kv) {
                const int t = row_kv / n_kv, kvh = row_kv % n_kv;
                const RowFlags row = n_sel > 0 ? select_units(p, pos0 + t, kvh, bounds.data() + static_cast<size_t>(row_kv) * n_sel, select)
                                               : row_flags(p, q + q_offset(t, kvh), heads, pos0 + t, kvh, select);
                row_n_runs[row_kv] = key_runs(row.flags, row.unit, pos0 + t, row_runs.data() + static_cast<size_t>(row_kv) * runs_stride, &kept_keys[row_kv],
                                              p.first_key(pos0 + t));
            }
        }
#pragma omp for schedule(dynamic)
        for (int task = 0; task < base * splits; ++task) {
            const int s = task % splits, row_kv = task / splits, t = row_kv / n_kv, kvh = row_kv % n_kv, q_pos = pos0 + t;
            const GroupShape shape{heads, hd, kv_dim, kvh, p.effective_scale(), p.softcap};
            const size_t q_off = q_offset(t, kvh);
            float* buf = splits > 1 ? partial.data() + static_cast<size_t>(task) * state_floats : own.data();
            GroupState st = GroupState::at(buf, heads);
            st.reset(heads, hd);
            int kept = 0, n_runs = 0;
            const int* r = nullptr;
            if (splits > 1) {
                r = row_runs.data() + static_cast<size_t>(row_kv) * runs_stride, n_runs = row_n_runs[row_kv], kept = kept_keys[row_kv];
            } else {
                const RowFlags row = row_flags(p, q + q_off, heads, q_pos, kvh, select);
                n_runs = key_runs(row.flags, row.unit, q_pos, runs.data(), &kept, p.first_key(q_pos));
                r = runs.data();
            }
            accumulate_range<E>(shape, q + q_off, k_cache, v_cache, r, n_runs, static_cast<int>(static_cast<int64_t>(kept) * s / splits),
                                static_cast<int>(static_cast<int64_t>(kept) * (s + 1) / splits), st, scores.data());
            if (splits == 1) finalize(st, heads, hd, dropped_as_zero(q_pos, kept), out + q_off);
        }
        if (splits > 1) {
            // merge each row's splits by log-sum-exp into the first split's state, then finalize
#pragma omp for schedule(static)
            for (int row_kv = 0; row_kv < base; ++row_kv) {
                const int t = row_kv / n_kv, kvh = row_kv % n_kv, q_pos = pos0 + t;
                float* first = partial.data() + static_cast<size_t>(row_kv) * splits * state_floats;
                GroupState acc = GroupState::at(first, heads);
                for (int s = 1; s < splits; ++s) {
                    const GroupState part = GroupState::at(first + static_cast<size_t>(s) * state_floats, heads);
                    for (int g = 0; g < heads; ++g) {
                        if (part.l[g] == 0.0f) continue; // an empty split
                        const float m = std::max(acc.m[g], part.m[g]);
                        const float fa = acc.l[g] > 0.0f ? std::exp(acc.m[g] - m) : 0.0f, fp = std::exp(part.m[g] - m);
                        acc.l[g] = acc.l[g] * fa + part.l[g] * fp;
                        for (int d = 0; d < hd; ++d) acc.o[g * hd + d] = acc.o[g * hd + d] * fa + part.o[g * hd + d] * fp;
                        acc.m[g] = m;
                    }
                }
                finalize(acc, heads, hd, dropped_as_zero(q_pos, kept_keys[row_kv]), out + q_offset(t, kvh));
            }
        }
    }
}

template <class E>
void head_mean_probs_impl(const float* q, const typename E::T* k_cache, int n_tokens, const AttentionParams& p, float* capture, int64_t stride,
                          int n_threads) {
    const int hd = p.head_dim, kv_dim = p.n_head_kv * hd, n_blocks = p.mask ? p.mask->n_blocks : 1;
    const int groups = p.capture_per_group ? p.n_head_kv : 1, heads_per_capture = p.n_head / groups;
    const float scale = p.effective_scale();
    const bool spion = p.mask && p.mask->denominator == SparseDenominator::spion;
#pragma omp parallel num_threads(n_threads)
    {
        std::vector<float> s(static_cast<size_t>(p.pos0 + n_tokens));
        std::vector<int> runs(2 * n_blocks + 2);
#pragma omp for schedule(dynamic)
        for (int t = 0; t < n_tokens; ++t) {
            const int q_pos = p.pos0 + t;
            for (int g = 0; g < groups; ++g) std::fill_n(capture + (static_cast<size_t>(g) * n_tokens + t) * stride, q_pos + 1, 0.0f);
            for (int h = 0; h < p.n_head; ++h) {
                const int kvh = p.kv_head(h);
                float* cap = capture + (static_cast<size_t>(groups == 1 ? 0 : kvh) * n_tokens + t) * stride;
                int kept = 0;
                const uint8_t* row = p.mask ? p.mask->row(q_pos / p.mask->block, kvh) : nullptr; // the capture ignores selection
                const int n_runs = key_runs(row, p.mask ? p.mask->block : 0, q_pos, runs.data(), &kept, p.first_key(q_pos));
                const float* qh = q + (static_cast<size_t>(t) * p.n_head + h) * hd;
                const size_t off = static_cast<size_t>(kvh) * hd;
                float mx = -INFINITY;
                for (int r = 0; r < n_runs; ++r)
                    for (int j = runs[2 * r]; j < runs[2 * r + 1]; ++j) {
                        s[j] = dot_kv<E>(qh, k_cache + static_cast<size_t>(j) * kv_dim + off, hd) * scale;
                        softcap_scores(&s[j], 1, p.softcap);
                        mx = std::max(mx, s[j]);
                    }
                float sum = 0.0f;
                for (int r = 0; r < n_runs; ++r) sum += exp_shift_sum(s.data() + runs[2 * r], runs[2 * r + 1] - runs[2 * r], mx);
                if (spion) sum += static_cast<float>(q_pos + 1 - kept) * std::exp(-mx);
                const float w = 1.0f / (sum * heads_per_capture);
                for (int r = 0; r < n_runs; ++r)
                    for (int j = runs[2 * r]; j < runs[2 * r + 1]; ++j) cap[j] += s[j] * w;
            }
        }
    }
}

} // namespace

float unit_score_bound(const AttentionParams& p, const float* qg, int kvh, int unit) {
    const size_t off = p.key_summary.at(kvh, unit, p.head_dim);
    return group_bound(qg, p.n_head / p.n_head_kv, p.key_summary.kmax + off, p.key_summary.kmin + off, p.head_dim);
}

int attend_selected_units(GgmlType kv_type, const float* qg, const void* k_cache, const void* v_cache, int q_pos, int kvh, const AttentionParams& p,
                          const float* bounds, float* m, float* l, float* o) {
    thread_local SelectScratch select;
    thread_local std::vector<float> scores;
    thread_local std::vector<int> runs;
    const int heads = p.n_head / p.n_head_kv, hd = p.head_dim, per_block = units_per_block(p), n_units = selection_units(p);
    select_units(p, q_pos, kvh, bounds, select); // the mask's units and the selected ones, in select.row
    const uint8_t* mask_row = p.mask->row(q_pos / p.mask->block, kvh);
    for (int u = 0; u < n_units; ++u)
        if (mask_row[u / per_block]) select.row[u] = 0; // the mask's keys are the tile's
    runs.resize(2 * static_cast<size_t>(n_units) + 2);
    scores.resize(static_cast<size_t>(heads) * kChunk);
    int kept = 0;
    const int n_runs = key_runs(select.row.data(), p.key_summary.block, q_pos, runs.data(), &kept);
    with_kv_type(kv_type, [&](auto e) {
        using E = decltype(e);
        const GroupShape shape{heads, hd, p.n_head_kv * hd, kvh, p.effective_scale(), p.softcap};
        GroupState st{m, l, o};
        accumulate_range<E>(shape, qg, static_cast<const typename E::T*>(k_cache), static_cast<const typename E::T*>(v_cache), runs.data(), n_runs, 0,
                            kept, st, scores.data());
    });
    return kept;
}

void attention(GgmlType kv_type, const float* q, const void* k_cache, const void* v_cache, float* out, int n_tokens, const AttentionParams& p,
               int n_threads) {
    if (attention_tiles_apply(n_tokens)) return attention_tiles(kv_type, q, k_cache, v_cache, out, n_tokens, p, n_threads);
    with_kv_type(kv_type, [&](auto e) {
        using E = decltype(e);
        attention_impl<E>(q, static_cast<const typename E::T*>(k_cache), static_cast<const typename E::T*>(v_cache), out, n_tokens, p, n_threads);
    });
}

void attention_head_mean_probs(GgmlType kv_type, const float* q, const void* k_cache, int n_tokens, const AttentionParams& p, float* capture,
                               int64_t stride, int n_threads) {
    with_kv_type(kv_type, [&](auto e) {
        using E = decltype(e);
        head_mean_probs_impl<E>(q, static_cast<const typename E::T*>(k_cache), n_tokens, p, capture, stride, n_threads);
    });
}

} // namespace winnow::cpu
