#pragma once
// Synthetic AdaptiveSoftmax instances with a known answer, shared by the tests of both implementations:
//  - planted (spec §5 synthetic (b)): A_ij ~ N(0, (scale / d)^2) and x = sign(A_0), so arm 0 stands out with
//    mu_0 ~ 0.8 scale, ~9 standard deviations above the rest: at beta = 8 its probability is ~1, so even a normalizer
//    that ignored every other arm would pass;
//  - flat: the logits are set exactly, many arms a fraction of a nat below the winner (p_top ~ 0.05), hidden in noisy
//    rows, so the right arm needs long prefixes and the normalizer must account for every near-top arm.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <algorithm>
#include <random>
#include <vector>

#include "head/adaptive_algorithm.h"

namespace winnow::test {

struct Instance {
    int n, d;
    std::vector<float> A, x;
};

inline Instance planted(int n, int d, uint64_t seed, float scale = 1.0f) {
    Instance in{n, d, std::vector<float>(static_cast<size_t>(n) * d), std::vector<float>(d)};
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, scale / d);
    for (auto& a : in.A) a = nd(rng);
    for (int j = 0; j < d; ++j) in.x[j] = in.A[j] >= 0 ? 1.0f : -1.0f;
    return in;
}

// A flat softmax with small gaps: x_j = +-1 at random; row i = (l_i / d) x + e_i with e_i ~ N(0, (noise / d)^2) made
// orthogonal to x, so <A_i, x> = l_i exactly while every column's product is noisy. The logits: the winner (a random
// arm) at 0, `close` arms at -gap_k with gap_k uniform in [top_gap, 0.5] (the nearest at exactly top_gap), the rest
// N(-3, 1) below. Use with beta = 1: p_top ~ 1 / (1 + close * 0.75 + ...) ~ 0.05 for close = 24.
inline Instance flat(int n, int d, uint64_t seed, int close = 24, float top_gap = 0.05f, float noise = 1.0f) {
    Instance in{n, d, std::vector<float>(static_cast<size_t>(n) * d), std::vector<float>(d)};
    std::mt19937_64 rng(seed);
    for (auto& v : in.x) v = (rng() & 1) ? 1.0f : -1.0f;
    std::vector<int> arm(n);
    for (int i = 0; i < n; ++i) arm[i] = i;
    std::shuffle(arm.begin(), arm.end(), rng); // arm[0] wins, arm[1..close] are close
    // Close arms sit top_gap..0.5 below the winner; a gap past 0.5 pins them at the gap (and keeps the range
    // ordered, which libstdc++'s assertions check even when close is 0 and no close arm is drawn).
    std::uniform_real_distribution<float> near(top_gap, std::max(top_gap, 0.5f));
    std::normal_distribution<float> far(-3.0f, 1.0f), e(0.0f, noise / d);
    std::vector<double> logit(n);
    for (int r = 0; r < n; ++r) logit[arm[r]] = r == 0 ? 0.0 : r == 1 ? -top_gap : r <= close ? -near(rng) : std::min(-0.6f, far(rng));
    for (int i = 0; i < n; ++i) {
        float* row = in.A.data() + static_cast<size_t>(i) * d;
        double along = 0;
        for (int j = 0; j < d; ++j) along += (row[j] = e(rng)) * in.x[j];
        for (int j = 0; j < d; ++j) row[j] += static_cast<float>((logit[i] - along) / d) * in.x[j]; // <row, x> = l_i
    }
    return in;
}

// The paper's success: the right arm and |p^ - p| <= eps p.
inline bool success(const head::AdaptiveResult& r, const head::HeadResult& exact, double eps) {
    return r.head.top[0] == exact.top[0] && std::abs(r.head.p_top - exact.p_top) <= eps * exact.p_top;
}

// The calibration setting: one planted head matrix (n x d) and 200 tuning + 200 test queries, each leaning towards a
// random target row (sign of the row plus N(0, 0.5^2) noise), like an LM head and its hidden states.
struct QuerySets {
    Instance base;
    std::vector<std::vector<float>> tune, test;
};

inline QuerySets leaning_queries(int n, int d) {
    QuerySets s{planted(n, d, 11), {}, {}};
    std::mt19937_64 rng(5);
    std::normal_distribution<float> noise(0.0f, 0.5f);
    std::uniform_int_distribution<int> target(0, n - 1);
    for (int q = 0; q < 400; ++q) {
        const int t = target(rng);
        std::vector<float> x(d);
        for (int j = 0; j < d; ++j) x[j] = (s.base.A[static_cast<size_t>(t) * d + j] >= 0 ? 1.0f : -1.0f) + noise(rng);
        (q < 200 ? s.tune : s.test).push_back(std::move(x));
    }
    return s;
}

// The PAC protocol both implementations are held to: N random instances, `make(t)` the t-th, run with the theory
// constants (or the factors in `p`), judged by the paper's success. `run(instance, params, t)` returns the adaptive
// result and the exact answer for the values it computed with. allowed = delta N + 3 binomial standard deviations.
struct PacOutcome {
    int failures = 0;
    double mean_fraction = 0, allowed = 0, mean_p_top = 0;
};

template <class Make, class Run>
PacOutcome pac_trials(int N, head::AdaptiveParams p, Make make, Run run) {
    PacOutcome o;
    for (int t = 0; t < N; ++t) {
        const Instance in = make(t);
        p.seed = t;
        const auto [r, exact] = run(in, p, t);
        o.failures += !success(r, exact, p.epsilon);
        o.mean_fraction += r.cost.fraction() / N;
        o.mean_p_top += exact.p_top / N;
    }
    o.allowed = p.delta * N + 3 * std::sqrt(N * p.delta * (1 - p.delta));
    return o;
}

// The planted protocol: 64 arms, d = 256, delta 0.1, eps 0.3, beta 8 (a peaked softmax).
template <class Run>
PacOutcome pac_trials(int N, Run run) {
    head::AdaptiveParams p;
    p.delta = 0.1;
    p.epsilon = 0.3;
    p.beta = 8.0f;
    return pac_trials(N, p, [](int t) { return planted(64, 256, 1000 + t); }, run);
}

// The flat protocol: 128 arms, d = 512, delta 0.1, eps 0.3, beta 1, the winner 0.05 nat above the next arm and
// p_top ~ 0.05. `fudge` < 1 deliberately under-samples (the mutant setting the tests expect to fail).
template <class Run>
PacOutcome flat_pac_trials(int N, Run run, double fudge = 1.0) {
    head::AdaptiveParams p;
    p.delta = 0.1;
    p.epsilon = 0.3;
    p.fudge_best = p.fudge_norm = fudge;
    return pac_trials(N, p, [](int t) { return flat(128, 512, 5000 + t); }, run);
}

// Samples per arm on the spec's scaling instances (100 arms, d = 1e3, 1e4, 1e5, delta 0.1); every run must find arm 0.
template <class Run>
std::vector<double> samples_per_arm_by_d(Run run) {
    std::vector<double> per_arm;
    for (int d : {1000, 10000, 100000}) {
        const auto in = planted(100, d, 7);
        head::AdaptiveParams p;
        p.delta = 0.1;
        const head::AdaptiveResult r = run(in, p);
        per_arm.push_back(static_cast<double>(r.cost.samples) / in.n);
        std::printf("d = %6d: %.0f samples per arm (%.4f of d), top %d\n", d, per_arm.back(), per_arm.back() / d, r.head.top[0]);
        if (r.head.top[0] != 0) per_arm.back() = -1; // the caller's assertion fails
    }
    return per_arm;
}

// The independent recount of the paper's sample metric: runs `algo` (its recorder already set to `rec`) on in.x at
// top-1 with the theory constants and at top-3 with aggressive factors (0.05), and returns each result with whether
// the distinct (arm, column) reads the recorder saw equal the samples the head charged.
template <class Algo>
std::vector<std::pair<head::AdaptiveResult, bool>> runs_recounted(Algo& algo, const Instance& in, const head::ReadRecorder& rec) {
    std::vector<std::pair<head::AdaptiveResult, bool>> out;
    for (int k : {1, 3}) {
        head::AdaptiveParams p;
        p.k = k;
        p.fudge_best = p.fudge_norm = k == 1 ? 1.0 : 0.05;
        head::AdaptiveResult r = algo.run(in.x, p);
        const bool same = rec.distinct_samples() == r.cost.samples;
        out.emplace_back(std::move(r), same);
    }
    return out;
}

} // namespace winnow::test
