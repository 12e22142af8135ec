#include "head/fast_adaptive_softmax.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <cmath>
#include <limits>
#include <numeric>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "backend/cpu/simd.h"
#include "winnow/error.h"

namespace winnow::head {

namespace {

constexpr float kInfF = std::numeric_limits<float>::infinity();
constexpr int kGroup = 8;          // arms per SIMD vector
constexpr int kLine = 64;          // arms per 64-byte line of an int8 column
constexpr int kChunk = 1024;       // arms per stream chunk (a multiple of kLine): its sums stay in L1
constexpr int kRowsAhead = 6;      // exact rows prefetched ahead (exact_all)

} // namespace

// Per-arm estimator state (arrays of stride() entries; the padding lanes are computed and never read).
struct FastArmState {
    std::vector<float> K, Z, Z2;  // Des Raj over the sampled columns: sum of the columns read, sum of z_m, sum of z_m^2
    // The exact part: the exact prefix's sum (FastOptions::exact_prefix) plus, with cluster-centred columns, the arm's
    // centroid logit (0 without either), apart from K so that the z_m are the tail's alone: their spread is then not
    // computed as a small difference of terms carrying the exact part's large sum.
    std::vector<float> KP;
    std::vector<float> mu, var;   // beta <A_i, x> estimated, and its variance (0: exact)
    std::vector<int32_t> T;       // columns read, in the query's order (d' once exact)
    std::vector<int32_t> active;  // -1: advanced by the current masked stream
    std::vector<float> e;         // normalizer weights
    std::vector<int32_t> all;     // 0 .. n-1
    std::vector<float> scratch;   // the normalizer's per-arm log alpha_i, then sqrt(e_i)
};

// The warm-up's variance checks evaluated inside one pass (Query::warm_up): after column at[k] of the order, does any
// arm (< n) of the chunk have a variance above thr? failed[chunk * count + k] says so.
struct WarmupChecks {
    const int32_t* at = nullptr;
    int count = 0;
    float thr = 0;
    std::vector<uint8_t> failed;
};

struct FastAdaptiveSoftmax::Query {
    const ColumnMajorHead& H;
    FastArmState& st;
    ReadRecorder* recorder; // test hook (usually nullptr)
    int threads;
    double stream_cost;           // FastOptions::stream_cost
    bool portable;                // the scalar path (a build without AVX2), also on an AVX2 build (tests)
    float beta;
    int n, dp = 0;                // d': columns with w_j |x_j| > 0
    int P = 0;                    // the exact prefix's length: the first P columns of the order are summed into KP, not sampled
    std::vector<int32_t> col;     // the m-th column of the query's order, and its quant block
    std::vector<int32_t> blk;
    std::vector<float> xs, coef;  // x at that column, and its Des Raj coefficient (1 - p_1 - .. - p_{m-1}) / p_m
    // Cluster-centred columns (ColumnMajorHead::row_clusters): the k centroid logits <c_k, x>, and each arm's cluster
    // (padded; nullptr without clusters). An arm's exact part KP starts at its centroid's logit.
    std::vector<float> centre;
    const int32_t* labels = nullptr;
    double sigma2 = 0;            // sub-Gaussian proxy for one pull (as in the reference)
    ExactQuery exact_x;           // x prepared for exact row dot products on the stored format
    AdaptiveCost cost;

    Query(const ColumnMajorHead& h, FastArmState& s, ReadRecorder* rec, std::span<const float> x, float b, uint64_t noise_seed, const FastOptions& o,
          bool portable_path)
        : H(h), st(s), recorder(rec), threads(o.threads), stream_cost(o.stream_cost), portable(portable_path), beta(b), n(h.n()) {
        ColumnOrder order = gumbel_column_order(H.statistics().l1, x, noise_seed);
        // the Des Raj coefficients of the tail (des_raj_columns sums the shares from the end) need no change: a ratio
        // of shares is the same whether the shares are the whole order's or the tail's
        if (o.exact_prefix > 0) lead_with_exact_prefix(order, o.exact_prefix);
        P = order.exact_prefix;
        dp = order.size();
        DesRajColumns c = des_raj_columns(order, x);
        col = std::move(c.col), blk = std::move(c.blk), xs = std::move(c.xs), coef = std::move(c.coef);
        sigma2 = order.sigma2(H.statistics().sigma2_atoms, beta);
        H.prepare_exact(x, exact_x); // a rotated head's exact rows are the model's, in the model's basis
        cost.d_prime = dp;
        cost.baseline = static_cast<int64_t>(n) * dp;
        if (H.rotated()) cost.multiply_adds += static_cast<int64_t>(H.d()) * H.d(); // prepare_exact turned the query back
        if (recorder) recorder->begin_query(n, H.d(), col);
        if (H.row_clusters().k > 0) centroid_logits(x);
    }

    // The k centroid logits, exact in fp32, each charged as an exact row (d' samples; FaithfulOptions::row_clusters
    // charges them alike), to the warm-up.
    void centroid_logits(std::span<const float> x) {
        const RowClusters& c = H.row_clusters();
        centre.resize(c.k);
        for (int k = 0; k < c.k; ++k) centre[k] = cpu::vec_dot_f32(c.centroids.data() + static_cast<size_t>(k) * c.d, x.data(), c.d);
        labels = H.padded_labels();
        cost.samples += static_cast<int64_t>(c.k) * dp;
        cost.multiply_adds += static_cast<int64_t>(c.k) * c.d;
        cost.bytes_read += static_cast<int64_t>(c.k) * c.d * static_cast<int64_t>(sizeof(float));
        if (recorder) recorder->record_side_samples(static_cast<int64_t>(c.k) * dp);
    }

    // The test hook: the selected lanes (arms < n) of a masked vector read columns [from, to) of the order.
    void record_lanes(int base, int lane_bits, int from, int to) {
        for (int r = 0; r < kGroup; ++r)
            if ((lane_bits >> r & 1) && base + r < n)
                for (int m = from; m < to; ++m) recorder->record(base + r, col[m]);
    }

    // Advances by columns [from, to) of the order every arm with T == from (masked: only the active ones).
    // fresh: the first pass of a query; every arm starts from nothing.
    // checks (a fresh warm-up pass only): the variance checks to evaluate on the way (WarmupChecks); such a pass records
    // no reads (warm_up records them once the pass is known to stand).
    void stream(int from, int to, bool masked, bool fresh = false, WarmupChecks* checks = nullptr) {
        const int stride = H.stride(), chunks = (stride + kChunk - 1) / kChunk, steps = to - from;
        const bool q8 = H.storage() == ColumnMajorHead::Storage::q8;
        if (checks) {
            // the kernels evaluate the checks from the first column on (their per-arm check index starts at 0)
            if (from != 0 || !fresh || masked) throw Error(ErrorKind::invalid_argument, "fast head: warm-up checks need a fresh pass from column 0");
            checks->failed.assign(static_cast<size_t>(chunks) * checks->count, 0);
        }
        int64_t arms = 0, lines_read = 0, vectors_read = 0;
#pragma omp parallel for schedule(static) reduction(+ : arms, lines_read, vectors_read) num_threads(threads) if (stride >= 4096)
        for (int c = 0; c < chunks; ++c) {
            const int first = c * kChunk, last = std::min(stride, first + kChunk);
            int count = 0, lines = 0;
            uint8_t* failed = checks ? checks->failed.data() + static_cast<size_t>(c) * checks->count : nullptr;
            arms += stream_chunk(first, last, from, to, masked, fresh, q8, count, lines, checks, failed);
            vectors_read += count;
            lines_read += lines;
        }
        cost.samples += arms * steps;
        cost.multiply_adds += vectors_read * kGroup * steps;
        // bytes: whole 64-byte lines of each column (int8) or the groups' floats, plus the block-scale lines
        if (q8) {
            int blocks = 0; // distinct scale rows among the new columns (re-read per column in the worst case)
            std::vector<bool> seen(H.d() / 32 + 1, false);
            for (int m = from; m < to; ++m) blocks += !seen[blk[m]], seen[blk[m]] = true;
            cost.bytes_read += lines_read * 64 * (steps + 2 * static_cast<int64_t>(blocks));
        } else {
            cost.bytes_read += vectors_read * kGroup * 4 * steps;
        }
    }

#ifdef WINNOW_AVX2
    // finalize() for eight arms whose sums cover `to` columns (kp: their exact prefix's sum). Without a prefix kp = 0
    // and kp + x = x, so the estimates are those of the estimator without the prefix option.
    void estimate8(__m256 kp, __m256 k, __m256 z1, __m256 z2, int to, __m256& mu, __m256& var) const {
        const __m256 b = _mm256_set1_ps(beta);
        if (to >= dp) {
            mu = _mm256_mul_ps(b, _mm256_add_ps(kp, k));
            var = _mm256_setzero_ps();
        } else if (to - P < 1) { // the prefix alone: no estimate of the tail yet
            mu = _mm256_mul_ps(b, kp);
            var = _mm256_set1_ps(kInfF);
        } else if (to - P >= 2) {
            const float t = static_cast<float>(to - P); // the tail's terms
            const __m256 mean = _mm256_div_ps(z1, _mm256_set1_ps(t));
            const __m256 spread = _mm256_max_ps(_mm256_setzero_ps(), _mm256_sub_ps(z2, _mm256_mul_ps(z1, mean)));
            mu = _mm256_mul_ps(b, _mm256_add_ps(kp, mean));
            var = _mm256_div_ps(_mm256_mul_ps(_mm256_set1_ps(beta * beta), spread), _mm256_set1_ps(t * (t - 1)));
        } else {
            mu = _mm256_mul_ps(b, _mm256_add_ps(kp, z1));
            var = _mm256_set1_ps(kInfF);
        }
    }

    // stream_chunk's vector path: eight arms per AVX2 vector. The portable path below computes each lane with the
    // same operations in the same order (a fused multiply-add where this one has one), so both give the same bits.
    int64_t stream_chunk_avx2(int first, int last, int from, int to, bool masked, bool fresh, bool q8, int& count, int& lines, const WarmupChecks* checks,
                              uint8_t* failed) {
        float* K = st.K.data();
        float* KP = st.KP.data();
        float* Z = st.Z.data();
        float* Z2 = st.Z2.data();
        int32_t* T = st.T.data();
        int64_t arms = 0;
        int vec[kChunk / kGroup];
        int last_line = -1;
        __m256i mask[kChunk / kGroup];
        for (int base = first; base < last; base += kGroup) {
            __m256i sel = _mm256_set1_epi32(-1);
            if (!fresh) {
                sel = _mm256_cmpeq_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(T + base)), _mm256_set1_epi32(from));
                if (masked) sel = _mm256_and_si256(sel, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(st.active.data() + base)));
                if (_mm256_testz_si256(sel, sel)) continue;
            } else {
                _mm256_storeu_ps(K + base, _mm256_setzero_ps());
                const __m256 start =
                    labels ? _mm256_i32gather_ps(centre.data(), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(labels + base)), 4) : _mm256_setzero_ps();
                _mm256_storeu_ps(KP + base, start);
                _mm256_storeu_ps(Z + base, _mm256_setzero_ps());
                _mm256_storeu_ps(Z2 + base, _mm256_setzero_ps());
            }
            mask[count] = sel;
            vec[count++] = base;
            const int bits = _mm256_movemask_ps(_mm256_castsi256_ps(sel));
            if (recorder && !checks) record_lanes(base, bits, from, to);
            arms += __builtin_popcount(base + kGroup <= n ? bits : bits & ((1 << std::max(0, n - base)) - 1));
            lines += base / kLine != last_line;
            last_line = base / kLine;
        }
        int next_check = 0;
        for (int m = from; m < to; ++m) {
            const __m256 xm = _mm256_set1_ps(xs[m]), cm = _mm256_set1_ps(coef[m]);
            const int8_t* qc = q8 ? H.quant_column(col[m]) : nullptr;
            const uint16_t* sr = q8 ? H.scale_row(blk[m]) : nullptr;
            const float* fc = q8 ? nullptr : H.float_column(col[m]);
            for (int v = 0; v < count; ++v) {
                const int base = vec[v];
                __m256 y;
                if (q8) {
                    const __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(qc + base))));
                    const __m256 sc = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sr + base)));
                    y = _mm256_mul_ps(q, _mm256_mul_ps(sc, xm));
                } else {
                    y = _mm256_mul_ps(_mm256_loadu_ps(fc + base), xm);
                }
                const __m256 sel = _mm256_castsi256_ps(mask[v]);
                y = _mm256_and_ps(y, sel); // arms not selected: y = z = 0, their sums stay
                if (m < P) { // an exact prefix column: summed apart, no Des Raj term
                    _mm256_storeu_ps(KP + base, _mm256_add_ps(_mm256_loadu_ps(KP + base), y));
                    continue;
                }
                const __m256 k = _mm256_loadu_ps(K + base);
                const __m256 z = _mm256_and_ps(_mm256_fmadd_ps(y, cm, k), sel);
                _mm256_storeu_ps(K + base, _mm256_add_ps(k, y));
                _mm256_storeu_ps(Z + base, _mm256_add_ps(_mm256_loadu_ps(Z + base), z));
                _mm256_storeu_ps(Z2 + base, _mm256_fmadd_ps(z, z, _mm256_loadu_ps(Z2 + base)));
            }
            if (checks && next_check < checks->count && m + 1 == checks->at[next_check]) {
                // finalize()'s variance after m + 1 columns, compared as the reference's check compares it
                const __m256 thr = _mm256_set1_ps(checks->thr);
                int any = 0;
                for (int v = 0; v < count; ++v) {
                    const int base = vec[v];
                    __m256 mu, var;
                    estimate8(_mm256_loadu_ps(KP + base), _mm256_loadu_ps(K + base), _mm256_loadu_ps(Z + base), _mm256_loadu_ps(Z2 + base), m + 1, mu, var);
                    const int lanes = base + kGroup <= n ? 0xff : (1 << std::max(0, n - base)) - 1;
                    any |= _mm256_movemask_ps(_mm256_cmp_ps(var, thr, _CMP_GT_OQ)) & lanes;
                }
                failed[next_check++] = any != 0;
            }
        }
        // the estimates (finalize(), eight at a time)
        for (int v = 0; v < count; ++v) {
            const int base = vec[v];
            __m256 mu, var;
            estimate8(_mm256_loadu_ps(KP + base), _mm256_loadu_ps(K + base), _mm256_loadu_ps(Z + base), _mm256_loadu_ps(Z2 + base), to, mu, var);
            _mm256_maskstore_ps(st.mu.data() + base, mask[v], mu);
            _mm256_maskstore_ps(st.var.data() + base, mask[v], var);
            _mm256_maskstore_epi32(T + base, mask[v], _mm256_set1_epi32(to));
        }
        return arms;
    }
#endif

    // The arms [first, last) of one chunk (a multiple of 8): selects those with T == from (and active when masked;
    // all when fresh), runs the columns [from, to) over them column by column (one contiguous run of the chunk per
    // column, the chunk's running sums in L1), and refreshes their estimates. Returns the arms advanced (padding
    // excluded); count = vectors of 8 touched, lines = 64-arm lines touched.
    int64_t stream_chunk(int first, int last, int from, int to, bool masked, bool fresh, bool q8, int& count, int& lines, const WarmupChecks* checks,
                         uint8_t* failed) {
        float* K = st.K.data();
        float* KP = st.KP.data();
        float* Z = st.Z.data();
        float* Z2 = st.Z2.data();
        int32_t* T = st.T.data();
        int64_t arms = 0;
        int last_line = -1;
#ifdef WINNOW_AVX2
        if (!portable) return stream_chunk_avx2(first, last, from, to, masked, fresh, q8, count, lines, checks, failed);
#endif
        for (int base = first; base < last; base += kGroup) {
            bool any = false;
            for (int r = 0; r < kGroup; ++r) {
                const int i = base + r;
                if (!fresh && !(T[i] == from && (!masked || st.active[i]))) continue;
                any = true;
                arms += i < n;
                if (recorder && !checks) record_lanes(base, 1 << r, from, to);
                if (fresh) {
                    K[i] = Z[i] = Z2[i] = 0;
                    KP[i] = labels ? centre[labels[i]] : 0.0f;
                }
                for (int m = from, next_check = 0; m < to; ++m) {
                    const float y = q8 ? H.quant_column(col[m])[i] * (fp16_to_fp32(H.scale_row(blk[m])[i]) * xs[m]) : H.float_column(col[m])[i] * xs[m];
                    if (m < P) { // a prefix column is summed apart
                        KP[i] += y;
                    } else {
                        const float z = std::fma(y, coef[m], K[i]); // fused, as the vector path's fmadd
                        K[i] += y;
                        Z[i] += z;
                        Z2[i] = std::fma(z, z, Z2[i]);
                    }
                    if (checks && next_check < checks->count && m + 1 == checks->at[next_check]) {
                        failed[next_check] |= i < n && estimate1(i, m + 1).var > checks->thr;
                        ++next_check;
                    }
                }
                T[i] = to;
                finalize(i);
            }
            if (!any) continue;
            ++count;
            lines += base / kLine != last_line;
            last_line = base / kLine;
        }
        return arms;
    }

    struct Estimate {
        float mu, var;
    };
    // Arm i's estimate from its sums over its first `to` columns (estimate8's lane, case for case).
    Estimate estimate1(int i, int to) const {
        const float kp = st.KP[i];
        if (to >= dp) return {beta * (kp + st.K[i]), 0.0f};
        if (to - P < 1) return {beta * kp, kInfF}; // the prefix alone
        const int t = to - P;                       // the tail's terms
        if (t >= 2) {
            // the vector path's operations in its order; max(0, x) as max_ps(0, x) has it: a NaN x passes through
            const float mean = st.Z[i] / static_cast<float>(t), x = st.Z2[i] - st.Z[i] * mean, spread = 0.0f > x ? 0.0f : x;
            return {beta * (kp + mean), beta * beta * spread / (static_cast<float>(t) * static_cast<float>(t - 1))};
        }
        return {beta * (kp + st.Z[i]), kInfF};
    }

    void finalize(int i) {
        const Estimate e = estimate1(i, st.T[i]);
        st.mu[i] = e.mu;
        st.var[i] = e.var;
    }

    void exact(int32_t i) {
        if (st.T[i] >= dp) return; // already exact: every sampled column read (a zero variance alone proves nothing)
        exact_all(&i, 1);
    }

    // Brings every listed arm to at least `target` columns, the cheaper way in time: a masked stream per distinct
    // prefix length (it computes whole vectors of 8 arms over the new columns), or exact stored rows. A streamed
    // element costs about stream_cost times an element of an exact row (the Des Raj sums and the scale per element;
    // measured on AVX2: ~0.4 ns vs ~0.13 ns per element and thread).
    void advance(const std::vector<int32_t>& arms, int target) {
        std::vector<int32_t> need;
        bool one_length = true;
        for (int32_t i : arms)
            if (st.T[i] < target) {
                one_length = one_length && (need.empty() || st.T[i] == st.T[need[0]]);
                need.push_back(i);
            }
        if (need.empty()) return;
        if (!one_length) std::stable_sort(need.begin(), need.end(), [&](int32_t a, int32_t b) { return st.T[a] < st.T[b]; });
        for (size_t a = 0; a < need.size();) {
            size_t b = a;
            while (b < need.size() && st.T[need[b]] == st.T[need[a]]) ++b;
            const int from = st.T[need[a]];
            // vectors of 8 holding at least one of the arms (assuming them spread evenly over all rows); (1 - share)^8
            // by three squarings, which the GPU's copy of this rule (cuda/adaptive_control.cuh) rounds alike, where the
            // device's pow may differ from the host's in the last ulp
            const double share = static_cast<double>(b - a) / n, q = 1 - share, q2 = q * q, q4 = q2 * q2;
            const double vectors = H.stride() / 8.0 * (1 - q4 * q4);
            const double streamed = stream_cost * vectors * 8 * (target - from), exact_cost = static_cast<double>(b - a) * H.d();
            if (target >= dp || exact_cost <= streamed) {
                exact_all(need.data() + a, static_cast<int>(b - a));
            } else {
                for (size_t c = a; c < b; ++c) st.active[need[c]] = -1;
                stream(from, target, true);
                for (size_t c = a; c < b; ++c) st.active[need[c]] = 0;
            }
            a = b;
        }
    }

    // Asks for row i's lines ahead of its dot product: the rows an exact round reads are scattered, so each would
    // otherwise wait for memory (measured on SmolLM2's head: ~300 ns per 612-byte row without).
    void prefetch_row(int32_t i) const {
        const char* row = reinterpret_cast<const char*>(H.rows().row(i));
        const size_t bytes = H.rows().row_bytes;
        for (size_t b = 0; b < bytes; b += 64) __builtin_prefetch(row + b);
        __builtin_prefetch(row + bytes - 1);
    }

    // exact() for many arms, on all cores.
    void exact_all(const int32_t* arms, int count) {
        int64_t samples = 0;
#pragma omp parallel for schedule(static) reduction(+ : samples) num_threads(threads) if (count >= 256)
        for (int c = 0; c < count; ++c) {
            const int32_t i = arms[c];
            if (c + kRowsAhead < count) prefetch_row(arms[c + kRowsAhead]);
            st.mu[i] = beta * H.row_dot(i, exact_x);
            if (recorder) recorder->record_row(i);
            st.var[i] = 0;
            samples += dp - std::min(st.T[i], dp);
            st.T[i] = dp;
        }
        cost.samples += samples;
        cost.multiply_adds += static_cast<int64_t>(count) * H.d();
        cost.bytes_read += static_cast<int64_t>(count) * static_cast<int64_t>(H.rows().row_bytes);
    }

    // PullToVar over S, batched: every arm of S to the same prefix length until each variance is under thr.
    void pull_to_var(const std::vector<int32_t>& S, float thr) {
        double t = std::min(16, dp);
        int shortest = dp; // steps whose target is at most the shortest prefix advance nobody: skip them
        for (int32_t i : S) shortest = std::min(shortest, static_cast<int>(st.T[i]));
        while (std::ceil(t) <= shortest && t < dp) t = std::min(static_cast<double>(dp), 1.5 * t);
        for (;;) {
            bool failing = false;
            for (int32_t i : S) failing |= st.var[i] > thr && st.T[i] < dp;
            if (!failing) return;
            advance(S, std::min(dp, static_cast<int>(std::ceil(t))));
            t = std::min(static_cast<double>(dp), 1.5 * t);
        }
    }

    // Phase A: every arm towards variance 1 / (17 L), capped at warmup_cap * d' columns. The reference's schedule: passes
    // to 16, 24, 36, ... columns (x1.5, capped); after each pass but the last, the warm-up ends if no arm's variance is
    // above the target. Here one pass to the cap evaluates those checks on the way: every arm reads the columns in the
    // same order either way, so the sums at a check are the reference's bit for bit, and one pass saves the re-reads of
    // the per-arm state and the fork and join of each pass. Should a check pass (the warm-up ends early), the reads past
    // it are wasted: the state is recomputed to that check, and the sample count is the reference's (the wasted pass
    // stays in multiply_adds and bytes_read). On SmolLM2 the rows' warm-up runs to the cap; with cluster-centred columns
    // about half the queries end at the first check, so after a query whose warm-up ended early the next one runs the
    // reference's passes instead (`passes`; the same sums, so the same bits, either way: only the time differs).
    // Returns whether the warm-up ended before its cap.
    bool warm_up(const AdaptiveParams& p, bool passes) {
        const double L = std::log(6.0 * n / (p.delta / 2));
        const float thr = static_cast<float>(1.0 / (17.0 * L) / p.fudge_norm);
        // with an exact prefix no arm stops before the prefix and the tail pilot (the faithful head's floor_T)
        const int floor_T = P > 0 ? std::min(dp, P + FastAdaptiveSoftmax::kTailPilot) : 0;
        const int cap = std::max({1, floor_T, static_cast<int>(std::floor(p.warmup_cap * dp))});
        std::vector<int32_t> ends; // the reference's pass ends
        for (double t = std::min(std::max(16, floor_T), cap); ends.empty() || ends.back() < cap; t *= 1.5)
            ends.push_back(std::clamp(static_cast<int>(std::ceil(t)), (ends.empty() ? 0 : ends.back()) + 1, cap));
        WarmupChecks checks{.at = ends.data(), .count = static_cast<int>(ends.size()) - 1, .thr = thr, .failed = {}};
        if (checks.count == 0) {
            stream(0, cap, false, true);
            return false;
        }
        if (passes) {
            stream(0, ends[0], false, true);
            for (int k = 0; k < checks.count; ++k) {
                if (!any_variance_above(thr)) return true; // the reference stops at ends[k]
                stream(ends[k], ends[k + 1], false);
            }
            return false;
        }
        const int64_t samples_before = cost.samples;
        stream(0, cap, false, true, &checks); // records no reads: they are recorded below once the pass is known to stand
        const int chunks = static_cast<int>(checks.failed.size()) / checks.count;
        for (int k = 0; k < checks.count; ++k) {
            bool failing = false;
            for (int c = 0; c < chunks; ++c) failing |= checks.failed[static_cast<size_t>(c) * checks.count + k] != 0;
            if (!failing) { // the reference stops at ends[k]
                cost.samples = samples_before;
                stream(0, ends[k], false, true);
                return true;
            }
        }
        if (recorder)
            for (int base = 0; base < n; base += kGroup) record_lanes(base, (1 << kGroup) - 1, 0, cap);
        return false;
    }

    // The warm-up's check between passes: does any arm's variance exceed thr (as the one pass's kernels compare it)?
    bool any_variance_above(float thr) const {
        for (int i = 0; i < n; ++i)
            if (st.var[i] > thr) return true;
        return false;
    }

    // Phase B: successive elimination; returns the k best arms, best first.
    std::vector<int32_t> eliminate(const AdaptiveParams& p, double d_s) {
        std::vector<int32_t> S = st.all;
        double v = sigma2 / 4;
        const double log_term = std::log(6.0 * n * std::max(1.0, std::log(static_cast<double>(dp))) / d_s);
        const float width2 = static_cast<float>(2 * p.fudge_best * log_term); // c_i^2 = width2 * var_i
        for (;;) {
            const int64_t before = cost.samples;
            pull_to_var(S, static_cast<float>(v / p.fudge_best));
            const bool pulled = cost.samples != before;
            int32_t b = S[0];
            for (int32_t i : S)
                if (st.mu[i] > st.mu[b]) b = i;
            float floor_b = st.mu[b] - std::sqrt(width2 * st.var[b]);
            if (p.k > 1 && static_cast<int>(S.size()) > p.k) {
                // top-k: an arm stays while its upper bound reaches the k-th largest lower bound (against the best
                // arm alone, as the reference does, exact arms just below it would be dropped for noisy ones)
                std::vector<float> lower(S.size());
                for (size_t a = 0; a < S.size(); ++a) lower[a] = st.mu[S[a]] - std::sqrt(width2 * st.var[S[a]]);
                std::nth_element(lower.begin(), lower.begin() + (p.k - 1), lower.end(), std::greater<float>());
                floor_b = lower[p.k - 1];
            }
            std::vector<int32_t> keep;
            bool all_exact = true;
            for (int32_t i : S) {
                const float gap = floor_b - st.mu[i]; // keep when mu_i + c_i >= floor_b, no square root needed
                if (gap <= 0 || width2 * st.var[i] >= gap * gap) {
                    keep.push_back(i);
                    all_exact = all_exact && st.T[i] >= dp; // a zero variance estimate short of d' is not exact
                }
            }
            const bool shrank = keep.size() != S.size();
            // Stop when k or fewer candidates remain or all are exact. The k best come from the survivors when there
            // are k of them (exact promotion makes "all exact" common here, and the arms eliminated this round carry
            // stale estimates), else from the previous round's set, as the reference does.
            const bool done = static_cast<int>(keep.size()) <= p.k || all_exact;
            if (static_cast<int>(keep.size()) >= p.k) S = std::move(keep);
            if (done) break;
            v /= 2; // the per-round sample size roughly doubles
            if (!pulled && !shrank) {
                // Nothing moved, so the next rounds repeat this one until v falls below a variance of S: skip them.
                float max_var = 0;
                for (int32_t i : S)
                    if (st.T[i] < dp) max_var = std::max(max_var, st.var[i]);
                while (max_var > 0 && !(max_var > v / p.fudge_best)) v /= 2;
                // Arms tied with a zero variance estimate short of d' (e.g. zeros in every column read so far): no
                // threshold separates them and halving v would never end. Compute them exactly.
                if (max_var == 0) advance(S, dp);
            }
        }
        const size_t k = std::min<size_t>(p.k, S.size());
        std::partial_sort(S.begin(), S.begin() + k, S.end(), [&](int32_t a, int32_t c) { return st.mu[a] > st.mu[c]; });
        S.resize(k);
        return S;
    }

    // The normalizer's per-arm loops over all n arms, eight (four) arms at a time where AVX2 is on: the same IEEE
    // operations per arm as the scalar loops beside them (square roots are correctly rounded either way), so the same
    // bits; PortablePathGivesTheVectorPathsBits holds the two paths together.

    // la_i = mu_i - sqrt(c2 var_i) (log alpha_i) into la[0, n); returns their largest (NaNs passed over, as std::max).
    float log_alphas(float c2, std::vector<float>& la) const {
        la.resize(n);
        float la_max = -kInfF;
        int i = 0;
#ifdef WINNOW_AVX2
        if (!portable) {
            const __m256 c = _mm256_set1_ps(c2);
            __m256 mx = _mm256_set1_ps(-kInfF);
            for (; i + kGroup <= n; i += kGroup) {
                const __m256 v = _mm256_sub_ps(_mm256_loadu_ps(st.mu.data() + i), _mm256_sqrt_ps(_mm256_mul_ps(c, _mm256_loadu_ps(st.var.data() + i))));
                _mm256_storeu_ps(la.data() + i, v);
                mx = _mm256_max_ps(v, mx); // a NaN v leaves mx (max_ps returns its second operand then)
            }
            alignas(32) float lanes[kGroup];
            _mm256_store_ps(lanes, mx);
            for (float v : lanes) la_max = std::max(la_max, v);
        }
#endif
        for (; i < n; ++i) {
            la[i] = st.mu[i] - std::sqrt(c2 * st.var[i]);
            la_max = std::max(la_max, la[i]);
        }
        return la_max;
    }

    // out_i = sqrt(v_i) for the n arms.
    void square_roots(const float* v, float* out) const {
        int i = 0;
#ifdef WINNOW_AVX2
        if (!portable)
            for (; i + kGroup <= n; i += kGroup) _mm256_storeu_ps(out + i, _mm256_sqrt_ps(_mm256_loadu_ps(v + i)));
#endif
        for (; i < n; ++i) out[i] = std::sqrt(v[i]);
    }

    // The arms, in order, for which fails(i) holds: T_i < d', e_i > 0 and (f var_i sqrt(e_i) > a or f var_i e_i > b), in
    // double as fails computes it.
    template <class Fails>
    std::vector<int32_t> failing_arms(double a, double b, double f, const Fails& fails) const {
        std::vector<int32_t> out;
        int i = 0;
#ifdef WINNOW_AVX2
        if (!portable) {
            const __m256d va = _mm256_set1_pd(a), vb = _mm256_set1_pd(b), vf = _mm256_set1_pd(f), zero = _mm256_setzero_pd();
            const __m128i vdp = _mm_set1_epi32(dp);
            for (; i + 4 <= n; i += 4) {
                const __m256d e = _mm256_cvtps_pd(_mm_loadu_ps(st.e.data() + i));
                const __m256d fv = _mm256_mul_pd(vf, _mm256_cvtps_pd(_mm_loadu_ps(st.var.data() + i)));
                const __m256d wide = _mm256_or_pd(_mm256_cmp_pd(_mm256_mul_pd(fv, _mm256_sqrt_pd(e)), va, _CMP_GT_OQ),
                                                  _mm256_cmp_pd(_mm256_mul_pd(fv, e), vb, _CMP_GT_OQ));
                int bits = _mm256_movemask_pd(_mm256_and_pd(wide, _mm256_cmp_pd(e, zero, _CMP_GT_OQ)));
                bits &= _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpgt_epi32(vdp, _mm_loadu_si128(reinterpret_cast<const __m128i*>(st.T.data() + i)))));
                for (; bits; bits &= bits - 1) out.push_back(i + __builtin_ctz(bits));
            }
        }
#endif
        for (; i < n; ++i)
            if (fails(i)) out.push_back(i);
        return out;
    }

    // Phase D: arms whose softmax weight needs a tighter estimate are read further (not batched).
    void normalize(const AdaptiveParams& p, double d_s) {
        const double L = std::log(6.0 * n / d_s);
        const float c2 = static_cast<float>(2 * L); // alpha_i from the variances as estimated: f_ln is on the targets only
        std::vector<float>& la = st.scratch;
        const float la_max = log_alphas(c2, la);
        const double sum_e = sum_exp(la.data(), n, la_max, st.e.data()); // e_i = alpha_i / max alpha
        // g_i = sqrt(e_i) = gamma_i / max gamma, summed in arm order
        std::vector<float>& g = la; // la is spent
        square_roots(st.e.data(), g.data());
        double sum_g = 0;
        for (int i = 0; i < n; ++i) sum_g += g[i];
        // var_i > V1_i / f, V1_i = min(eps SA / (16 sqrt2 L SG gamma_i), eps^2 SA / (16 ln(12/d_s) alpha_i)); the common
        // scale of alpha and gamma cancels, leaving: f var_i g_i > a  or  f var_i e_i > b.
        const double a = p.epsilon * sum_e / (16 * std::sqrt(2.0) * L * sum_g);
        const double b = p.epsilon * p.epsilon * sum_e / (16 * std::log(12 / d_s));
        const double f = p.fudge_norm;
        auto fails = [&](int32_t i) {
            const double e = st.e[i], fv = f * st.var[i];
            return st.T[i] < dp && e > 0 && (fv * std::sqrt(e) > a || fv * e > b);
        };
        std::vector<int32_t> todo = failing_arms(a, b, f, fails);
        double t = std::min(16, dp);
        while (!todo.empty()) {
            advance(todo, std::min(dp, static_cast<int>(std::ceil(t))));
            std::vector<int32_t> still;
            for (int32_t i : todo)
                if (fails(i)) still.push_back(i);
            todo = std::move(still);
            t = std::min(static_cast<double>(dp), 1.5 * t);
        }
    }
};

FastAdaptiveSoftmax::FastAdaptiveSoftmax(std::shared_ptr<const ColumnMajorHead> head, int threads) : FastAdaptiveSoftmax(std::move(head), FastOptions{.threads = threads}) {}

FastAdaptiveSoftmax::FastAdaptiveSoftmax(std::shared_ptr<const ColumnMajorHead> head, FastOptions options) : h_(std::move(head)), options_(options) {
    if (!h_) throw Error(ErrorKind::invalid_argument, "FastAdaptiveSoftmax: no head matrix");
    if (options_.exact_prefix < 0) throw Error(ErrorKind::invalid_argument, "FastAdaptiveSoftmax: the exact prefix must be >= 0 columns");
    if (!(options_.stream_cost > 0 && std::isfinite(options_.stream_cost)))
        throw Error(ErrorKind::invalid_argument, "FastAdaptiveSoftmax: the stream cost must be a finite number > 0");
#ifdef _OPENMP
    if (options_.threads <= 0) options_.threads = omp_get_num_procs();
#else
    options_.threads = 1;
#endif
    auto& st = *(state_ = std::make_unique<FastArmState>());
    const size_t stride = h_->stride();
    st.K.assign(stride, 0.0f);
    st.KP = st.Z = st.Z2 = st.mu = st.e = st.K;
    st.var.assign(stride, kInfF);
    st.T.assign(stride, 0);
    st.active.assign(stride, 0);
    st.all.resize(h_->n());
    std::iota(st.all.begin(), st.all.end(), 0);
}

FastAdaptiveSoftmax::~FastAdaptiveSoftmax() = default;

std::span<const float> FastAdaptiveSoftmax::last_estimates() const { return {state_->mu.data(), static_cast<size_t>(n())}; }
std::span<const int32_t> FastAdaptiveSoftmax::last_columns_read() const { return {state_->T.data(), static_cast<size_t>(n())}; }

std::vector<int32_t> FastAdaptiveSoftmax::best_arms_only(std::span<const float> x, const AdaptiveParams& p) {
    check_params(p, n());
    if (x.size() != static_cast<size_t>(d()))
        throw Error(ErrorKind::invalid_argument, "AdaptiveSoftmax: query has " + std::to_string(x.size()) + " values, the head has d = " + std::to_string(d()));
    Query q(*h_, *state_, recorder_, x, p.beta, query_noise_seed(p.seed, ++queries_), options_, portable_);
    if (q.dp == 0) return all_logits_tied(n(), p.k).head.top;
    warmup_ended_early_ = q.warm_up(p, warmup_ended_early_);
    return q.eliminate(p, p.delta / 2);
}

AdaptiveResult FastAdaptiveSoftmax::run(std::span<const float> x, const AdaptiveParams& p) {
    check_params(p, n());
    if (x.size() != static_cast<size_t>(d()))
        throw Error(ErrorKind::invalid_argument, "AdaptiveSoftmax: query has " + std::to_string(x.size()) + " values, the head has d = " + std::to_string(d()));
    const int n = this->n();
    using Clock = std::chrono::steady_clock;
    auto ms_between = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
    const Clock::time_point t0 = Clock::now();
    Query q(*h_, *state_, recorder_, x, p.beta, query_noise_seed(p.seed, ++queries_), options_, portable_);
    AdaptiveResult r;
    if (q.dp == 0) return all_logits_tied(n, p.k);
    const double d_s = p.delta / 2; // exact best-arm value: delta split in two
    const Clock::time_point t1 = Clock::now();
    warmup_ended_early_ = q.warm_up(p, warmup_ended_early_);
    r.cost.warmup = q.cost.samples;
    const Clock::time_point t2 = Clock::now();
    const std::vector<int32_t> S = q.eliminate(p, d_s);
    for (int32_t i : S) q.exact(i);
    r.cost.best_arm = q.cost.samples - r.cost.warmup;
    const Clock::time_point t3 = Clock::now();
    q.normalize(p, d_s);
    r.cost.normalizer = q.cost.samples - r.cost.warmup - r.cost.best_arm;

    if (options_.debiased_normalizer) {
        std::vector<float> debiased(n);
        for (int i = 0; i < n; ++i) debiased[i] = q.st.var[i] > 0 && std::isfinite(q.st.var[i]) ? q.st.mu[i] - q.st.var[i] / 2 : q.st.mu[i];
        r.head.log_norm = log_sum_exp(debiased);
    } else {
        r.head.log_norm = log_sum_exp(std::span<const float>(q.st.mu.data(), n));
    }
    const Clock::time_point t4 = Clock::now();
    r.cost.setup_ms = ms_between(t0, t1), r.cost.warmup_ms = ms_between(t1, t2), r.cost.best_arm_ms = ms_between(t2, t3);
    r.cost.normalizer_ms = ms_between(t3, t4);
    r.head.top = S;
    for (int32_t i : S) r.head.top_logits.push_back(q.st.mu[i]);
    r.head.p_top = static_cast<float>(std::exp(q.st.mu[S[0]] - r.head.log_norm));
    r.cost.samples = q.cost.samples;
    r.cost.multiply_adds = q.cost.multiply_adds;
    r.cost.bytes_read = q.cost.bytes_read;
    r.cost.baseline = q.cost.baseline;
    r.cost.d_prime = q.dp;
    return r;
}

} // namespace winnow::head
