#include "head/fast_adaptive_softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <cstdio>
#include <chrono>
#include <cstdlib>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "backend/cpu/simd.h"
#include "winnow/error.h"

namespace winnow::head {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr int kGroup = 8;          // arms per SIMD vector
constexpr int kBlock = 32;         // arms the stream kernel advances together (4 vectors)
constexpr int kLine = 64;          // arms per 64-byte line of an int8 column
constexpr int kChunk = 2048;       // arms per stream chunk (a multiple of kLine)
constexpr int kRun = 8;            // columns per pass over a chunk

// sum_i exp(v[i] - shift), in fp32 lanes with a double total; the terms are written to `terms` when not null.
double sum_exp(const float* v, size_t n, float shift, float* terms) {
    double total = 0;
    size_t i = 0;
#ifdef WINNOW_AVX2
    const __m256 sh = _mm256_set1_ps(shift);
    while (i + 8 <= n) {
        __m256 acc = _mm256_setzero_ps();
        const size_t end = std::min(n, i + 4096) & ~size_t{7};
        for (; i < end; i += 8) {
            const __m256 e = cpu::exp_ps(_mm256_sub_ps(_mm256_loadu_ps(v + i), sh));
            if (terms) _mm256_storeu_ps(terms + i, e);
            acc = _mm256_add_ps(acc, e);
        }
        total += cpu::hsum(acc);
    }
#endif
    for (; i < n; ++i) {
        const float e = std::exp(v[i] - shift);
        if (terms) terms[i] = e;
        total += e;
    }
    return total;
}

} // namespace

// Per-arm estimator state (arrays of stride() entries; the padding lanes are computed and never read).
struct FastArmState {
    std::vector<float> K, Z, Z2;  // Des Raj: sum of the columns read, sum of z_m, sum of z_m^2
    std::vector<float> mu, var;   // beta <A_i, x> estimated, and its variance (0: exact)
    std::vector<int32_t> T;       // columns read, in the query's order (d' once exact)
    std::vector<int32_t> active;  // -1: advanced by the current masked stream
    std::vector<float> e;         // normalizer weights
    std::vector<int32_t> all;     // 0 .. n-1
};

struct FastAdaptiveSoftmax::Query {
    const ColumnMajorHead& H;
    FastArmState& st;
    int threads;
    float beta;
    int n, dp = 0;                // d': columns with w_j |x_j| > 0
    std::vector<int32_t> col;     // the m-th column of the query's order, and its quant block
    std::vector<int32_t> blk;
    std::vector<float> xs, coef;  // x at that column, and its Des Raj coefficient (1 - p_1 - .. - p_{m-1}) / p_m
    double sigma2 = 0;            // sub-Gaussian proxy for one pull (as in the reference)
    cpu::PreparedActivation prep; // x prepared for exact row dot products on the stored format
    AdaptiveCost cost;

    Query(const ColumnMajorHead& h, FastArmState& s, std::span<const float> x, float b, uint64_t noise_seed, int nthreads)
        : H(h), st(s), threads(nthreads), beta(b), n(h.n()) {
        const auto& w = H.column_l1();
        const int d = H.d();
        std::vector<double> sj(d);
        double total = 0, absx = 0;
        for (int j = 0; j < d; ++j) {
            sj[j] = w[j] * std::fabs(static_cast<double>(x[j]));
            total += sj[j];
        }
        std::mt19937_64 rng(noise_seed);
        std::vector<std::pair<double, int32_t>> keyed;
        for (int j = 0; j < d; ++j) {
            if (sj[j] <= 0) continue; // zero columns are never sampled and count neither way
            const double u = (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53;
            keyed.emplace_back(std::log(sj[j] / total) - std::log(-std::log(u)), j);
            absx += std::fabs(static_cast<double>(x[j]));
        }
        std::sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& c) { return a.first > c.first; });
        dp = static_cast<int>(keyed.size());
        col.resize(dp);
        blk.resize(dp);
        xs.resize(dp);
        coef.resize(dp);
        double remaining = 0; // suffix sums: no cancellation in 1 - p_1 - .. - p_{m-1}
        for (int m = dp - 1; m >= 0; --m) {
            const int j = keyed[m].second;
            const double p = sj[j] / total;
            remaining += p;
            col[m] = j;
            blk[m] = j / 32;
            xs[m] = x[j];
            coef[m] = static_cast<float>(remaining / p);
        }
        const double sigma_x = dp ? absx / dp : 0;
        sigma2 = H.sigma2_atoms() * sigma_x * sigma_x * static_cast<double>(dp) * dp * beta * beta;
        cpu::prepare_activation(H.rows().type, x.data(), d, prep);
        cost.d_prime = dp;
        cost.baseline = static_cast<int64_t>(n) * dp;
    }

    // Advances by columns [from, to) of the order every arm with T == from (masked: only the active ones).
    // fresh: the first pass of a query; every arm starts from nothing.
    void stream(int from, int to, bool masked, bool fresh = false) {
        const int stride = H.stride(), chunks = (stride + kChunk - 1) / kChunk, steps = to - from;
        const bool q8 = H.storage() == ColumnMajorHead::Storage::q8;
        int64_t arms = 0, lines_read = 0, groups_read = 0;
        // Chunks of arms, and within a chunk runs of at most 8 columns: every column is read as a contiguous run
        // of the chunk's arms (few concurrent streams, so the hardware prefetcher keeps up), while the chunk's
        // running sums stay in L1/L2 between runs.
#pragma omp parallel for schedule(static) reduction(+ : arms, lines_read, groups_read) num_threads(threads) if (stride >= 4096)
        for (int c = 0; c < chunks; ++c) {
            const int end = std::min(stride, (c + 1) * kChunk);
            for (int m0 = from; m0 < to; m0 += kRun) {
                const int m1 = std::min(to, m0 + kRun);
                bool line_touched = false;
                for (int base = c * kChunk; base < end; base += kBlock) {
                    if (base % kLine == 0) {
                        lines_read += line_touched && m0 == from;
                        line_touched = false;
                    }
                    const uint32_t sel = advance_group(base, m0, m1, masked, fresh && m0 == from, q8, m1 == to);
                    if (!sel || m0 != from) continue;
                    line_touched = true;
                    ++groups_read;
                    arms += __builtin_popcount(base + kBlock <= n ? sel : sel & ((1u << std::max(0, n - base)) - 1));
                }
                lines_read += line_touched && m0 == from;
            }
        }
        cost.samples += arms * steps;
        cost.multiply_adds += groups_read * kBlock * steps;
        // bytes: whole 64-byte lines of each column (int8) or the groups' floats, plus the block-scale lines
        if (q8) {
            int blocks = 0; // distinct scale rows among the new columns (re-read per column in the worst case)
            std::vector<bool> seen(H.d() / 32 + 1, false);
            for (int m = from; m < to; ++m) blocks += !seen[blk[m]], seen[blk[m]] = true;
            cost.bytes_read += lines_read * 64 * (steps + 2 * static_cast<int64_t>(blocks));
        } else {
            cost.bytes_read += groups_read * kBlock * 4 * steps;
        }
    }

    // One block of 32 arms: advances the selected ones (T == from, and active when masked; every one when fresh)
    // from `from` to `to` columns and refreshes their estimates. Returns the selection as a bit mask.
    // last: `to` is the end of the stream, so the estimates are refreshed (otherwise only the sums move on).
    int advance_group(int base, int from, int to, bool masked, bool fresh, bool q8, bool last) {
        float* K = st.K.data() + base;
        float* Z = st.Z.data() + base;
        float* Z2 = st.Z2.data() + base;
        int32_t* T = st.T.data() + base;
#ifdef WINNOW_AVX2
        // four groups at once: the running sums are serial dependency chains, interleaving four hides their latency
        constexpr int G = kBlock / kGroup;
        __m256i sel[G];
        bool any = false;
        for (int g = 0; g < G; ++g) {
            sel[g] = _mm256_set1_epi32(-1);
            if (!fresh) {
                sel[g] = _mm256_cmpeq_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(T + g * kGroup)), _mm256_set1_epi32(from));
                if (masked)
                    sel[g] = _mm256_and_si256(sel[g], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(st.active.data() + base + g * kGroup)));
            }
            any = any || !_mm256_testz_si256(sel[g], sel[g]);
        }
        if (!any) return 0;
        __m256 k[G], z1[G], z2[G];
        for (int g = 0; g < G; ++g) {
            k[g] = fresh ? _mm256_setzero_ps() : _mm256_loadu_ps(K + g * kGroup);
            z1[g] = fresh ? _mm256_setzero_ps() : _mm256_loadu_ps(Z + g * kGroup);
            z2[g] = fresh ? _mm256_setzero_ps() : _mm256_loadu_ps(Z2 + g * kGroup);
        }
        for (int m = from; m < to; ++m) {
            const __m256 xm = _mm256_set1_ps(xs[m]), cm = _mm256_set1_ps(coef[m]);
            __m256 y[G];
            if (q8) {
                const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(H.quant_column(col[m]) + base));
                const uint16_t* sc = H.scale_row(blk[m]) + base;
                const __m128i qlo = _mm256_castsi256_si128(q), qhi = _mm256_extracti128_si256(q, 1);
                const __m128i qs[G] = {qlo, _mm_srli_si128(qlo, 8), qhi, _mm_srli_si128(qhi, 8)};
                for (int g = 0; g < G; ++g) {
                    const __m256 s8 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + g * kGroup)));
                    y[g] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(qs[g])), _mm256_mul_ps(s8, xm));
                }
            } else {
                for (int g = 0; g < G; ++g) y[g] = _mm256_mul_ps(_mm256_loadu_ps(H.float_column(col[m]) + base + g * kGroup), xm);
            }
            for (int g = 0; g < G; ++g) {
                const __m256 z = _mm256_fmadd_ps(y[g], cm, k[g]);
                k[g] = _mm256_add_ps(k[g], y[g]);
                z1[g] = _mm256_add_ps(z1[g], z);
                z2[g] = _mm256_fmadd_ps(z, z, z2[g]);
            }
        }
        int bits = 0;
        const __m256 b = _mm256_set1_ps(beta);
        for (int g = 0; g < G; ++g) {
            const int o = g * kGroup;
            _mm256_maskstore_ps(K + o, sel[g], k[g]);
            _mm256_maskstore_ps(Z + o, sel[g], z1[g]);
            _mm256_maskstore_ps(Z2 + o, sel[g], z2[g]);
            _mm256_maskstore_epi32(T + o, sel[g], _mm256_set1_epi32(to));
            bits |= _mm256_movemask_ps(_mm256_castsi256_ps(sel[g])) << o;
            if (!last) continue;
            // the estimates (finalize(), eight at a time)
            __m256 mu, var;
            if (to >= dp) {
                mu = _mm256_mul_ps(b, k[g]);
                var = _mm256_setzero_ps();
            } else if (to >= 2) {
                const float t = static_cast<float>(to);
                const __m256 mean = _mm256_div_ps(z1[g], _mm256_set1_ps(t));
                const __m256 spread = _mm256_max_ps(_mm256_setzero_ps(), _mm256_sub_ps(z2[g], _mm256_mul_ps(z1[g], mean)));
                mu = _mm256_mul_ps(b, mean);
                var = _mm256_div_ps(_mm256_mul_ps(_mm256_set1_ps(beta * beta), spread), _mm256_set1_ps(t * (t - 1)));
            } else {
                mu = _mm256_mul_ps(b, z1[g]);
                var = _mm256_set1_ps(kInf);
            }
            _mm256_maskstore_ps(st.mu.data() + base + o, sel[g], mu);
            _mm256_maskstore_ps(st.var.data() + base + o, sel[g], var);
        }
        return bits;
#else
        int sel_bits = 0;
        for (int r = 0; r < kBlock; ++r) {
            if (!fresh && !(T[r] == from && (!masked || st.active[base + r]))) continue;
            sel_bits |= 1 << r;
            if (fresh) K[r] = Z[r] = Z2[r] = 0;
            for (int m = from; m < to; ++m) {
                const float y = q8 ? H.quant_column(col[m])[base + r] * (fp16_to_fp32(H.scale_row(blk[m])[base + r]) * xs[m])
                                   : H.float_column(col[m])[base + r] * xs[m];
                const float z = y * coef[m] + K[r];
                K[r] += y;
                Z[r] += z;
                Z2[r] += z * z;
            }
            T[r] = to;
            if (last) finalize(base + r);
        }
        return sel_bits;
#endif
    }

    void finalize(int i) {
        const int t = st.T[i];
        if (t >= dp) {
            st.mu[i] = beta * st.K[i];
            st.var[i] = 0;
        } else if (t >= 2) {
            const float mean = st.Z[i] / t;
            st.mu[i] = beta * mean;
            st.var[i] = beta * beta * std::max(0.0f, (st.Z2[i] - st.Z[i] * mean) / (static_cast<float>(t) * (t - 1)));
        } else {
            st.mu[i] = beta * st.Z[i];
            st.var[i] = kInf;
        }
    }

    void exact(int32_t i) {
        if (st.T[i] >= dp && st.var[i] == 0) return; // already exact
        exact_all(&i, 1);
    }

    // Brings every listed arm to at least `target` columns: one masked stream per distinct prefix length when that
    // reads fewer bytes than exact rows, exact rows otherwise.
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
        const double column_bytes = H.storage() == ColumnMajorHead::Storage::q8 ? H.stride() * (1.0 + 2.0 / 32) : H.stride() * 4.0;
        for (size_t a = 0; a < need.size();) {
            size_t b = a;
            while (b < need.size() && st.T[need[b]] == st.T[need[a]]) ++b;
            const int from = st.T[need[a]];
            const double stream_bytes = column_bytes * (target - from), exact_bytes = static_cast<double>(b - a) * H.rows().row_bytes;
            if (getenv("TRACE")) fprintf(stderr, "  advance %zu arms from %d to %d: %s\n", b - a, from, target, (target >= dp || exact_bytes <= stream_bytes) ? "exact" : "stream");
            if (target >= dp || exact_bytes <= stream_bytes) {
                exact_all(need.data() + a, static_cast<int>(b - a));
            } else {
                for (size_t c = a; c < b; ++c) st.active[need[c]] = -1;
                stream(from, target, true);
                for (size_t c = a; c < b; ++c) st.active[need[c]] = 0;
            }
            a = b;
        }
    }

    // exact() for many arms, on all cores.
    void exact_all(const int32_t* arms, int count) {
        int64_t samples = 0;
#pragma omp parallel for schedule(static) reduction(+ : samples) num_threads(threads) if (count >= 256)
        for (int c = 0; c < count; ++c) {
            const int32_t i = arms[c];
            st.mu[i] = beta * H.row_dot(i, prep);
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

    // Phase A: every arm towards variance 1 / (17 L), capped at warmup_cap * d' columns.
    void warm_up(const AdaptiveParams& p) {
        const double L = std::log(6.0 * n / (p.delta / 2));
        const float thr = static_cast<float>(1.0 / (17.0 * L) / p.fudge_norm);
        const int cap = std::max(1, static_cast<int>(std::floor(p.warmup_cap * dp)));
        double t = std::min(16, cap);
        int cur = 0;
        while (cur < cap) {
            if (cur > 0) {
                bool failing = false;
                for (int i = 0; i < n; ++i) failing |= st.var[i] > thr;
                if (!failing) break;
            }
            const int target = std::clamp(static_cast<int>(std::ceil(t)), cur + 1, cap);
            stream(cur, target, false, cur == 0);
            cur = target;
            t *= 1.5;
        }
    }

    // Phase B: successive elimination; returns the k best arms, best first.
    std::vector<int32_t> eliminate(const AdaptiveParams& p, double d_s) {
        std::vector<int32_t> S = st.all;
        double v = sigma2 / 4;
        const double log_term = std::log(6.0 * n * std::max(1.0, std::log(static_cast<double>(dp))) / d_s);
        const float width2 = static_cast<float>(2 * p.fudge_best * log_term); // c_i^2 = width2 * var_i
        for (;;) {
            if (getenv("TRACE")) fprintf(stderr, "round |S|=%zu T0=%d samples=%ld\n", S.size(), st.T[S[0]], (long)cost.samples);
            const int64_t before = cost.samples;
            pull_to_var(S, static_cast<float>(v / p.fudge_best));
            const bool pulled = cost.samples != before;
            int32_t b = S[0];
            for (int32_t i : S)
                if (st.mu[i] > st.mu[b]) b = i;
            const float floor_b = st.mu[b] - std::sqrt(width2 * st.var[b]);
            std::vector<int32_t> keep;
            bool all_exact = true;
            for (int32_t i : S) {
                const float gap = floor_b - st.mu[i]; // keep when mu_i + c_i >= floor_b, no square root needed
                if (gap <= 0 || width2 * st.var[i] >= gap * gap) {
                    keep.push_back(i);
                    all_exact = all_exact && st.var[i] == 0;
                }
            }
            const bool shrank = keep.size() != S.size();
            S = std::move(keep);
            if (static_cast<int>(S.size()) <= p.k || all_exact) break;
            v /= 2; // the per-round sample size roughly doubles
            if (!pulled && !shrank) {
                // Nothing moved, so the next rounds repeat this one until v falls below a variance of S: skip them.
                float max_var = 0;
                for (int32_t i : S)
                    if (st.T[i] < dp) max_var = std::max(max_var, st.var[i]);
                while (max_var > 0 && !(max_var > v / p.fudge_best)) v /= 2;
            }
        }
        const size_t k = std::min<size_t>(p.k, S.size());
        std::partial_sort(S.begin(), S.begin() + k, S.end(), [&](int32_t a, int32_t c) { return st.mu[a] > st.mu[c]; });
        S.resize(k);
        return S;
    }

    // Phase D: arms whose softmax weight needs a tighter estimate are read further (not batched).
    void normalize(const AdaptiveParams& p, double d_s) {
        const double L = std::log(6.0 * n / d_s);
        const float c2 = static_cast<float>(2 * L * p.fudge_norm);
        std::vector<float> la(n);
        float la_max = -kInf;
        for (int i = 0; i < n; ++i) {
            la[i] = st.mu[i] - std::sqrt(c2 * st.var[i]); // log alpha_i
            la_max = std::max(la_max, la[i]);
        }
        const double sum_e = sum_exp(la.data(), n, la_max, st.e.data()); // e_i = alpha_i / max alpha
        double sum_g = 0;                                                 // g_i = sqrt(e_i) = gamma_i / max gamma
        for (int i = 0; i < n; ++i) sum_g += std::sqrt(st.e[i]);
        // var_i > V1_i / f, V1_i = min(eps SA / (16 sqrt2 L SG gamma_i), eps^2 SA / (16 ln(12/d_s) alpha_i)); the common
        // scale of alpha and gamma cancels, leaving: f var_i g_i > a  or  f var_i e_i > b.
        const double a = p.epsilon * sum_e / (16 * std::sqrt(2.0) * L * sum_g);
        const double b = p.epsilon * p.epsilon * sum_e / (16 * std::log(12 / d_s));
        const double f = p.fudge_norm;
        auto fails = [&](int32_t i) {
            const double e = st.e[i], fv = f * st.var[i];
            return st.T[i] < dp && e > 0 && (fv * std::sqrt(e) > a || fv * e > b);
        };
        std::vector<int32_t> todo;
        for (int i = 0; i < n; ++i)
            if (fails(i)) todo.push_back(i);
        if (getenv("TRACE")) fprintf(stderr, "normalizer: %zu arms\n", todo.size());
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

FastAdaptiveSoftmax::FastAdaptiveSoftmax(std::shared_ptr<const ColumnMajorHead> head, int threads) : h_(std::move(head)), threads_(threads) {
    if (!h_) throw Error(ErrorKind::invalid_argument, "FastAdaptiveSoftmax: no head matrix");
#ifdef _OPENMP
    if (threads_ <= 0) threads_ = omp_get_num_procs();
#else
    threads_ = 1;
#endif
    auto& st = *(state_ = std::make_unique<FastArmState>());
    const size_t stride = h_->stride();
    st.K.assign(stride, 0.0f);
    st.Z = st.Z2 = st.mu = st.e = st.K;
    st.var.assign(stride, kInf);
    st.T.assign(stride, 0);
    st.active.assign(stride, 0);
    st.all.resize(h_->n());
    std::iota(st.all.begin(), st.all.end(), 0);
}

FastAdaptiveSoftmax::~FastAdaptiveSoftmax() = default;

std::vector<int32_t> FastAdaptiveSoftmax::best_arms_only(std::span<const float> x, const AdaptiveParams& p) {
    check_params(p, n());
    if (x.size() != static_cast<size_t>(d())) throw Error(ErrorKind::invalid_argument, "AdaptiveSoftmax: query has the wrong length");
    Query q(*h_, *state_, x, p.beta, query_noise_seed(p.seed, ++queries_), threads_);
    if (q.dp == 0) return std::vector<int32_t>(p.k, 0);
    q.warm_up(p);
    return q.eliminate(p, p.delta / 2);
}

AdaptiveResult FastAdaptiveSoftmax::run(std::span<const float> x, const AdaptiveParams& p) {
    check_params(p, n());
    if (x.size() != static_cast<size_t>(d())) throw Error(ErrorKind::invalid_argument, "AdaptiveSoftmax: query has the wrong length");
    const int n = this->n();
    Query q(*h_, *state_, x, p.beta, query_noise_seed(p.seed, ++queries_), threads_);
    AdaptiveResult r;
    if (q.dp == 0) { // x is zero on every used column: all logits are 0
        r.head.top.resize(p.k);
        std::iota(r.head.top.begin(), r.head.top.end(), 0);
        r.head.top_logits.assign(p.k, 0.0f);
        r.head.log_norm = std::log(static_cast<double>(n));
        r.head.p_top = 1.0f / n;
        return r;
    }
    const double d_s = p.delta / 2; // exact best-arm value: delta split in two
    static double tw = 0, te = 0, tn = 0, tl = 0; static int nq = 0;
    auto c0 = std::chrono::steady_clock::now();
    auto lap = [&](double& acc) { auto c1 = std::chrono::steady_clock::now(); acc += std::chrono::duration<double, std::milli>(c1 - c0).count(); c0 = c1; };
    q.warm_up(p);
    lap(tw);
    r.cost.warmup = q.cost.samples;
    const std::vector<int32_t> S = q.eliminate(p, d_s);
    for (int32_t i : S) q.exact(i);
    lap(te);
    r.cost.best_arm = q.cost.samples - r.cost.warmup;
    q.normalize(p, d_s);
    lap(tn);
    if (getenv("TIMES") && ++nq % 100 == 0) fprintf(stderr, "per query: warm-up %.3f elim %.3f norm %.3f ms\n", tw / nq, te / nq, tn / nq);
    r.cost.normalizer = q.cost.samples - r.cost.warmup - r.cost.best_arm;

    const float mu_max = *std::max_element(q.st.mu.begin(), q.st.mu.begin() + n);
    r.head.log_norm = mu_max + std::log(sum_exp(q.st.mu.data(), n, mu_max, nullptr));
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
