#include "head/adaptive_softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "winnow/error.h"

namespace winnow::head {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

double logsumexp(const std::vector<double>& v) {
    double mx = -kInf;
    for (double x : v) mx = std::max(mx, x);
    if (!std::isfinite(mx)) return mx;
    double s = 0;
    for (double x : v) s += std::exp(x - mx);
    return mx + std::log(s);
}

} // namespace

// Everything one query needs: its column order, the per-arm estimates and the cost counters.
struct AdaptiveSoftmax::Query {
    const AdaptiveSoftmax& h;
    std::span<const float> x;
    double beta;
    int dp = 0;                    // d': columns with w_j |x_j| > 0
    std::vector<double> logq;      // l_j of the sampled columns, in perm order
    std::vector<double> key;       // keys in perm order (descending)
    std::vector<int32_t> perm;     // column order: every prefix is a weighted sample without replacement
    double sigma2 = 0;             // sub-Gaussian proxy for one pull
    int m = 0;                     // the exact prefix: perm[0, m) is read exactly by every arm (FaithfulOptions)
    int floor_T = 0;               // with an exact prefix, no arm stops between 0 and m + tail_pilot reads
    std::vector<int> T;            // per-arm prefix length
    std::vector<double> mu, var;
    std::vector<double> exact_part; // per arm: sum over the exact prefix of A_ij x_j (computed once)
    AdaptiveCost cost;
    std::vector<std::vector<double>> rho_cache; // inclusion probabilities per prefix length (index: T)

    Query(const AdaptiveSoftmax& owner, std::span<const float> xq, double b, uint64_t noise_seed) : h(owner), x(xq), beta(b) {
        const int n = h.n_;
        ColumnOrder order = gumbel_column_order(h.stats_.l1, x, noise_seed);
        if (h.options_.exact_prefix > 0) lead_with_exact_prefix(order, h.options_.exact_prefix);
        m = order.exact_prefix;
        dp = order.size();
        floor_T = m > 0 ? std::min(dp, m + std::max(0, h.options_.tail_pilot)) : 0;
        sigma2 = order.sigma2(h.stats_.sigma2_atoms, beta);
        perm = std::move(order.column);
        key = std::move(order.key);
        for (double q : order.share) logq.push_back(std::log(q));
        T.assign(n, 0);
        mu.assign(n, 0.0);
        var.assign(n, kInf);
        exact_part.assign(n, 0.0);
        cost.d_prime = dp;
        cost.baseline = static_cast<int64_t>(n) * dp;
        rho_cache.resize(dp + 1);
        if (h.recorder_) h.recorder_->begin_query(n, h.d_, perm);
        if (h.clusters_.k > 0) start_from_centroids();
    }

    // Cluster-centred rows: every arm's estimate starts from its centroid's exact logit, and the samples estimate the
    // residual's. The k centroid dot products are charged as k d' samples (an exact row's price each).
    void start_from_centroids() {
        const auto& c = h.clusters_;
        std::vector<double> centre(c.k, 0.0);
        for (int k = 0; k < c.k; ++k) {
            const float* row = c.centroids.data() + static_cast<size_t>(k) * h.d_;
            for (int j = 0; j < h.d_; ++j) centre[k] += static_cast<double>(row[j]) * x[j];
        }
        for (int i = 0; i < h.n_; ++i) exact_part[i] = centre[c.label[i]];
        cost.samples += static_cast<int64_t>(c.k) * dp;
        cost.multiply_adds += static_cast<int64_t>(c.k) * h.d_;
        if (h.recorder_) h.recorder_->record_side_samples(static_cast<int64_t>(c.k) * dp);
    }

    // rho_t = P(column perm[t] is in a prefix of length T | the threshold tau_T), for t < T. The exact prefix's
    // columns are in every prefix (rho = 1; pull() sums them once, unweighted); the tail's threshold is the tail's
    // own (T+1)-th key, since the prefix's keys are not part of the tail's draw.
    const std::vector<double>& rho(int t_len) {
        auto& r = rho_cache[t_len];
        if (!r.empty() || t_len == 0) return r;
        const double tau = t_len < dp ? key[t_len] : -kInf;
        r.assign(t_len, 1.0);
        if (std::isfinite(tau))
            for (int t = m; t < t_len; ++t) r[t] = -std::expm1(-std::exp(logq[t] - tau));
        return r;
    }

    // Re-estimates the given arms from the first t_len columns. The sampled part is re-read from its start (rho
    // moved with T), as the reference does; the exact prefix is read once per arm. The loops run column by column
    // over the transposed matrix so a sampled column is one contiguous read across the arms.
    void pull(const std::vector<int32_t>& arms, int t_len) {
        t_len = std::max(t_len, floor_T);
        std::vector<int32_t> todo, fresh;
        for (int32_t i : arms)
            if (T[i] < t_len) {
                todo.push_back(i);
                if (T[i] < m) fresh.push_back(i); // T[i] == 0: the floor keeps every arm at 0 or >= m
            }
        if (todo.empty()) return;
        for (int t = 0; t < m; ++t) {
            const float* col = h.AT_.data() + static_cast<size_t>(perm[t]) * h.n_;
            const double xj = x[perm[t]];
            for (int32_t i : fresh) exact_part[i] += col[i] * xj;
        }
        const auto& r = rho(t_len);
        std::vector<double> s(todo.size(), 0.0), v(todo.size(), 0.0);
        for (int t = m; t < t_len; ++t) {
            const float* col = h.AT_.data() + static_cast<size_t>(perm[t]) * h.n_;
            const double xj = x[perm[t]], inv = 1.0 / r[t], w = (1 - r[t]) * inv * inv;
            for (size_t a = 0; a < todo.size(); ++a) {
                const double ax = col[todo[a]] * xj;
                s[a] += ax * inv;
                v[a] += ax * ax * w;
            }
        }
        if (h.recorder_) record_prefix(todo, t_len);
        cost.multiply_adds += static_cast<int64_t>(fresh.size()) * m;
        for (size_t a = 0; a < todo.size(); ++a) {
            const int32_t i = todo[a];
            cost.samples += t_len - T[i];
            cost.multiply_adds += t_len - m;
            T[i] = t_len;
            mu[i] = beta * (exact_part[i] + s[a]);
            var[i] = t_len >= dp ? 0.0 : beta * beta * v[a]; // the exact prefix adds no variance
        }
    }

    // The test hook: the products pull() just read (the arms' first t_len columns of the order).
    void record_prefix(const std::vector<int32_t>& arms, int t_len) {
        for (int t = 0; t < t_len; ++t)
            for (int32_t i : arms) h.recorder_->record(i, perm[t]);
    }

    // PullToVar: grow prefixes geometrically (16, x1.5) until every arm's variance is under threshold / f.
    void pull_to_var(const std::vector<int32_t>& arms, const std::vector<double>& threshold, double f, int max_pulls, bool batched) {
        double t = std::min(std::max(16, floor_T), max_pulls);
        for (;;) {
            std::vector<int32_t> failing;
            for (size_t a = 0; a < arms.size(); ++a) {
                const int32_t i = arms[a];
                const double thr = (threshold.size() == 1 ? threshold[0] : threshold[a]) / f;
                if (var[i] > thr && T[i] < max_pulls) failing.push_back(i);
            }
            if (failing.empty()) return;
            const int target = std::min(max_pulls, static_cast<int>(std::ceil(t)));
            pull(batched ? arms : failing, target);
            t = std::min(static_cast<double>(max_pulls), 1.5 * t);
        }
    }

    void exact(int i) {
        const float* row = h.A_.data() + static_cast<size_t>(i) * h.d_;
        double m = 0;
        for (int j = 0; j < h.d_; ++j) m += static_cast<double>(row[j]) * x[j];
        if (h.recorder_) h.recorder_->record_row(i);
        cost.samples += dp - T[i];
        cost.multiply_adds += dp;
        T[i] = dp;
        mu[i] = beta * m;
        var[i] = 0;
    }

    int64_t total_samples() const { return cost.samples; }

    // Phase A: every arm to variance 1 / (17 L), capped at a fraction of d'.
    void warm_up(const AdaptiveParams& p) {
        const double L = std::log(6.0 * h.n_ / (p.delta / 2));
        const int cap = std::max({1, floor_T, static_cast<int>(std::floor(p.warmup_cap * dp))});
        const double f_warm = h.options_.warmup_without_norm_factor ? 1.0 : p.fudge_norm;
        std::vector<int32_t> all(h.n_);
        std::iota(all.begin(), all.end(), 0);
        if (floor_T > 0) pull(all, floor_T); // the exact prefix and the tail pilot, for every arm
        if (h.options_.warmup_skips_negligible) {
            if (floor_T == 0) pull(all, std::min(16, cap)); // a first variance estimate for every arm
            all = may_carry_mass(all, L, f_warm, p.epsilon);
        }
        pull_to_var(all, {1.0 / (17.0 * L)}, f_warm, cap, h.options_.batched_warmup);
    }

    // The arms whose upper bound mu_i + C_i is within ln(16 n / eps) of the best lower bound (FaithfulOptions::
    // warmup_skips_negligible); the others hold at most n e^{-ln(16 n / eps)} = eps / 16 of the best arm's mass.
    std::vector<int32_t> may_carry_mass(const std::vector<int32_t>& arms, double L, double f_norm, double epsilon) const {
        auto width = [&](int32_t i) { return std::sqrt(2 * L * f_norm * var[i]); };
        double best_low = -kInf;
        for (int32_t i : arms) best_low = std::max(best_low, mu[i] - width(i));
        const double margin = std::log(16.0 * h.n_ / epsilon);
        std::vector<int32_t> keep;
        for (int32_t i : arms)
            if (mu[i] + width(i) >= best_low - margin) keep.push_back(i);
        return keep;
    }

    // True when no arm of S short of d' has a positive variance estimate for PullToVar to reduce.
    bool no_variance_left(const std::vector<int32_t>& S) const {
        for (int32_t i : S)
            if (T[i] < dp && var[i] > 0) return false;
        return true;
    }

    // Phase B: successive elimination over all arms; returns the k best, best first.
    std::vector<int32_t> eliminate(const AdaptiveParams& p, double d_s) {
        std::vector<int32_t> S(h.n_);
        std::iota(S.begin(), S.end(), 0);
        double v = sigma2 / 4;
        const double log_term = std::log(6.0 * h.n_ * std::max(1.0, std::log(static_cast<double>(dp))) / d_s);
        for (;;) {
            pull_to_var(S, {v}, p.fudge_best, dp, h.options_.batched_elimination);
            int32_t b = S[0];
            for (int32_t i : S) if (mu[i] > mu[b]) b = i;
            auto conf = [&](int32_t i) { return std::sqrt(2 * p.fudge_best * var[i] * log_term); };
            std::vector<int32_t> keep;
            bool all_exact = true;
            for (int32_t i : S) {
                if (mu[i] + conf(i) >= mu[b] - conf(b)) keep.push_back(i);
                all_exact = all_exact && T[i] >= dp;
            }
            if (static_cast<int>(keep.size()) <= p.k || all_exact) break;
            if (keep.size() == S.size() && no_variance_left(S)) {
                // Arms tied with a zero variance estimate short of d' (e.g. zeros in every column read so far):
                // no pull can separate them and halving v forever would not end. Compute them exactly.
                for (int32_t i : S)
                    if (T[i] < dp) exact(i);
                continue;
            }
            S = std::move(keep);
            v /= 2; // the per-round sample size roughly doubles
        }
        const size_t k = std::min<size_t>(p.k, S.size());
        std::partial_sort(S.begin(), S.begin() + k, S.end(), [&](int32_t a, int32_t b) { return mu[a] > mu[b]; });
        S.resize(k);
        return S;
    }
};

AdaptiveSoftmax::AdaptiveSoftmax(std::span<const float> A, int n, int d, FaithfulOptions options) : A_(A), n_(n), d_(d), options_(options) {
    if (n <= 0 || d <= 0 || A.size() != static_cast<size_t>(n) * d)
        throw Error(ErrorKind::invalid_argument, "AdaptiveSoftmax: A must hold n x d values");
    if (options.exact_prefix < 0 || options.tail_pilot < 0)
        throw Error(ErrorKind::invalid_argument, "AdaptiveSoftmax: the exact prefix and the tail pilot must be >= 0");
    if (!(options.normalizer_exact_share >= 0 && options.normalizer_exact_share <= 1))
        throw Error(ErrorKind::invalid_argument, "AdaptiveSoftmax: the normalizer's exact share must be in [0, 1]");
    if (!std::isfinite(options.normalizer_exact_sds))
        throw Error(ErrorKind::invalid_argument, "AdaptiveSoftmax: the normalizer's exact-share width must be finite");
    if (options.row_clusters < 0) throw Error(ErrorKind::invalid_argument, "AdaptiveSoftmax: the row clusters must be >= 0");
    std::vector<float> residual;
    if (options.row_clusters > 0) {
        clusters_ = cluster_rows(A, n, d, options.row_clusters);
        residual = residual_rows(A, n, clusters_);
    }
    const std::span<const float> sampled = residual.empty() ? A : std::span<const float>(residual);
    AT_.resize(A.size());
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < d; ++j) AT_[static_cast<size_t>(j) * n + i] = sampled[static_cast<size_t>(i) * d + j];
    stats_ = column_statistics(sampled, n, d);
}

void AdaptiveSoftmax::check_query_length(std::span<const float> x) const {
    if (x.size() != static_cast<size_t>(d_))
        throw Error(ErrorKind::invalid_argument, "AdaptiveSoftmax: query has " + std::to_string(x.size()) + " values, the head has d = " + std::to_string(d_));
}

std::vector<int32_t> AdaptiveSoftmax::best_arms_only(std::span<const float> x, const AdaptiveParams& p) {
    check_params(p, n_);
    check_query_length(x);
    Query q(*this, x, p.beta, query_noise_seed(p.seed, ++queries_));
    if (q.dp == 0) return all_logits_tied(n_, p.k).head.top;
    q.warm_up(p);
    return q.eliminate(p, p.delta / 2);
}

AdaptiveResult AdaptiveSoftmax::run(std::span<const float> x, const AdaptiveParams& p) {
    check_params(p, n_);
    check_query_length(x);
    Query q(*this, x, p.beta, query_noise_seed(p.seed, ++queries_));
    AdaptiveResult r;
    if (q.dp == 0) return all_logits_tied(n_, p.k);
    const double d_s = p.delta / 2; // exact best-arm value: delta split in two
    const double L = std::log(6.0 * n_ / d_s);
    std::vector<int32_t> all(n_);
    std::iota(all.begin(), all.end(), 0);

    // A) warm-up
    q.warm_up(p);
    r.cost.warmup = q.total_samples();

    // B) best arm(s) by successive elimination
    const std::vector<int32_t> S = q.eliminate(p, d_s);

    // C) the winners' values, exactly
    for (int32_t i : S) q.exact(i);
    r.cost.best_arm = q.total_samples() - r.cost.warmup;

    // D) normalizer: arms with large softmax mass get more pulls, reusing every sample so far
    if (options_.normalizer_exact_share > 0) {
        const double cut = logsumexp(q.mu) + std::log(options_.normalizer_exact_share);
        const double width_sds = options_.normalizer_exact_sds < 0 ? std::sqrt(2 * L) : options_.normalizer_exact_sds;
        for (int i = 0; i < n_; ++i)
            if (q.T[i] < q.dp && q.mu[i] + width_sds * std::sqrt(q.var[i]) >= cut) q.exact(i);
    }
    std::vector<double> la(n_), lg(n_);
    for (int i = 0; i < n_; ++i) {
        const double c = std::sqrt(2 * L * (options_.norm_factor_on_targets_only ? 1.0 : p.fudge_norm) * q.var[i]);
        la[i] = q.mu[i] - c;
        lg[i] = la[i] / 2;
    }
    const double LA = logsumexp(la), LG = logsumexp(lg);
    std::vector<double> v1(n_);
    const double log_eps = std::log(p.epsilon);
    for (int i = 0; i < n_; ++i) {
        const double a = log_eps + LA - std::log(16 * std::sqrt(2.0) * L) - LG - lg[i];
        const double b2 = 2 * log_eps + LA - std::log(16 * std::log(12 / d_s)) - la[i];
        v1[i] = std::exp(std::min(a, b2));
    }
    q.pull_to_var(all, v1, p.fudge_norm, q.dp, false);
    r.cost.normalizer = q.total_samples() - r.cost.warmup - r.cost.best_arm;

    if (options_.debiased_normalizer) {
        std::vector<double> unbiased(n_);
        // an arm with no finite variance estimate counts as its estimate, as in the fast head
        for (int i = 0; i < n_; ++i) unbiased[i] = q.var[i] > 0 && std::isfinite(q.var[i]) ? q.mu[i] - q.var[i] / 2 : q.mu[i];
        r.head.log_norm = logsumexp(unbiased);
    } else {
        r.head.log_norm = logsumexp(q.mu);
    }
    r.head.top = S;
    for (int32_t i : S) r.head.top_logits.push_back(static_cast<float>(q.mu[i]));
    r.head.p_top = static_cast<float>(std::exp(q.mu[S[0]] - r.head.log_norm));
    r.cost.samples = q.cost.samples;
    r.cost.multiply_adds = q.cost.multiply_adds;
    r.cost.bytes_read = q.cost.multiply_adds * static_cast<int64_t>(sizeof(float)); // every product reads one fp32 weight
    r.cost.baseline = q.cost.baseline;
    r.cost.d_prime = q.dp;
    return r;
}

} // namespace winnow::head
