#include "head/calibration.h"

#include <cmath>
#include <functional>
#include <limits>

#include "head/exact_head.h"
#include "winnow/error.h"

namespace winnow::head {

namespace {

// Smallest 10^e (e in [-6, top], tolerance 0.01) for which `failures(f)` stays within the budget. The most
// conservative factor 10^top is tried first; met = false when it fails too. Then no factor of the range meets the
// budget, and the search looks instead for the smallest factor that fails no more often than the top one: the
// failures the factor cannot remove (e.g. wrong arms, which f_ln does not touch) are not worth the top's reads.
double search(const std::function<int(double, int)>& failures, int allowed, double top, int& runs, bool& met, int& at_top) {
    ++runs;
    // counted in full (the early exit only saves work on a failing factor): a miss then sets the search's budget
    at_top = failures(std::pow(10.0, top), std::numeric_limits<int>::max());
    met = at_top <= allowed;
    if (!met) allowed = at_top;
    double lo = -6.0, hi = top;
    while (hi - lo > 0.01) {
        const double mid = (lo + hi) / 2;
        const int f = failures(std::pow(10.0, mid), allowed);
        ++runs;
        if (f > allowed) lo = mid; // too aggressive
        else hi = mid;
    }
    return std::pow(10.0, hi);
}

} // namespace

std::vector<HeadResult> exact_answers(std::span<const float> A, int n, int d, const std::vector<std::vector<float>>& queries, const AdaptiveParams& p) {
    std::vector<HeadResult> r(queries.size());
#pragma omp parallel for schedule(dynamic)
    for (size_t q = 0; q < queries.size(); ++q) r[q] = exact_softmax(A, n, d, queries[q], p.beta, p.k);
    return r;
}

size_t tuning_region_end(size_t tokens, double tune_share) {
    if (!(tune_share > 0 && tune_share < 1)) throw Error(ErrorKind::invalid_argument, "the tuning share of the text must be in (0, 1)");
    return static_cast<size_t>(std::llround(tune_share * static_cast<double>(tokens)));
}

std::vector<size_t> window_starts(size_t begin, size_t end, int window, int count, const std::string& region) {
    const size_t tokens = end > begin ? end - begin : 0;
    if (window < 1 || count < 1 || tokens < static_cast<size_t>(window) + count / 8)
        throw Error(ErrorKind::invalid_argument, "the text's " + region + " region has " + std::to_string(tokens) + " tokens, too few for " +
                                                     std::to_string(count) + " windows of " + std::to_string(window));
    std::vector<size_t> starts;
    const double stride = static_cast<double>(tokens - window) / count;
    for (int q = 0; q < count; ++q) starts.push_back(begin + static_cast<size_t>(q * stride));
    return starts;
}

int allowed_failures(int n, double delta, double confidence) {
    if (confidence <= 0) return static_cast<int>(std::floor(delta * n)); // the authors' rule
    // largest a with P(Binomial(n, delta) <= a) <= 1 - confidence (at least 0)
    double pmf = std::pow(1 - delta, n), cdf = pmf;
    int a = 0;
    while (a < n) {
        pmf *= static_cast<double>(n - a) / (a + 1) * delta / (1 - delta);
        if (cdf + pmf > 1 - confidence) break;
        cdf += pmf;
        ++a;
    }
    return cdf <= 1 - confidence ? a : 0;
}

Calibration calibrate(AdaptiveAlgorithm& head, const std::vector<std::vector<float>>& queries, const std::vector<HeadResult>& exact, AdaptiveParams base,
                      double confidence, int repeats, double best_arm_share) {
    if (exact.size() != queries.size()) throw Error(ErrorKind::invalid_argument, "calibrate: one exact answer per query is needed");
    if (repeats < 1) throw Error(ErrorKind::invalid_argument, "calibrate: repeats must be >= 1");
    const size_t N = queries.size();
    const int allowed = allowed_failures(static_cast<int>(N) * repeats, base.delta, confidence);
    Calibration c;
    c.allowed = allowed;
    if (!(best_arm_share > 0 && best_arm_share <= 1)) throw Error(ErrorKind::invalid_argument, "calibrate: the best arm's budget share must be in (0, 1]");
    c.allowed_best = static_cast<int>(std::ceil(best_arm_share * allowed - 1e-9)); // 0.5: (allowed + 1) / 2
    c.best_arm_share = best_arm_share;

    // f_b: the full run's arm choice (warm-up included), f_ln held at 1, within its share of the budget (allowed_best)
    auto best_failures = [&](double f, int budget) {
        AdaptiveParams p = base;
        p.fudge_best = f;
        p.fudge_norm = 1.0;
        int fails = 0;
        for (size_t t = 0; t < N * repeats && fails <= budget; ++t) {
            const size_t q = t % N;
            p.seed = base.seed + t;
            fails += head.best_arms_only(queries[q], p) != exact[q].top;
        }
        return fails;
    };
    c.fudge_best = search(best_failures, c.allowed_best, 0.0, c.runs, c.met_best, c.failures_at_top_best);

    // f_ln: the full run (wrong arms and estimates) within the whole budget, f_b fixed; f_ln may exceed 1
    auto full_failures = [&](double f, int budget) {
        AdaptiveParams p = base;
        p.fudge_best = c.fudge_best;
        p.fudge_norm = f;
        int fails = 0;
        for (size_t t = 0; t < N * repeats && fails <= budget; ++t) {
            const size_t q = t % N;
            p.seed = base.seed + t;
            const auto r = head.run(queries[q], p);
            fails += !(r.head.top == exact[q].top && std::abs(r.head.p_top - exact[q].p_top) <= base.epsilon * exact[q].p_top);
        }
        return fails;
    };
    c.fudge_norm = search(full_failures, allowed, std::log10(head.max_fudge_norm()), c.runs, c.met_norm, c.failures_at_top_norm);
    c.met = c.met_best && c.met_norm;
    return c;
}

Calibration calibrate_over_shares(AdaptiveAlgorithm& head, const std::vector<std::vector<float>>& queries, const std::vector<HeadResult>& truth,
                                  AdaptiveParams base, double confidence, int repeats, const std::vector<double>& best_arm_shares) {
    if (best_arm_shares.empty()) throw Error(ErrorKind::invalid_argument, "calibrate: no best arm's budget share to try");
    // how far a calibration missed its budget: 0 when met
    const auto miss = [](const Calibration& k) { return k.met ? 0 : std::max(1, k.failures_at_top_norm - k.allowed); };
    Calibration best;
    int runs = 0;
    for (size_t s = 0; s < best_arm_shares.size(); ++s) {
        const Calibration c = calibrate(head, queries, truth, base, confidence, repeats, best_arm_shares[s]);
        runs += c.runs;
        if (s == 0 || miss(c) < miss(best)) best = c;
        if (c.met) break;
    }
    best.runs = runs;
    return best;
}

} // namespace winnow::head
