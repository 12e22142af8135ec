#pragma once
// Synthetic AdaptiveSoftmax instances with a known answer (spec §5 synthetic (b)), shared by the tests of both
// implementations: A_ij ~ N(0, (scale / d)^2) and x = sign(A_0), so arm 0 stands out with mu_0 ~ 0.8 scale.
#include <cmath>
#include <cstdint>
#include <cstdio>
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

// The PAC protocol both implementations are held to: N random planted instances (64 arms, d = 256), theory
// constants, delta 0.1, eps 0.3, beta 8 (a peaked softmax, so the normalizer matters). `run(instance, params)`
// returns the adaptive result and the exact answer for the values it computed with.
struct PacOutcome {
    int failures = 0;
    double mean_fraction = 0, allowed = 0; // allowed: delta N + 3 binomial standard deviations
};

template <class Run>
PacOutcome pac_trials(int N, Run run) {
    head::AdaptiveParams p;
    p.delta = 0.1;
    p.epsilon = 0.3;
    p.beta = 8.0f;
    PacOutcome o;
    for (int t = 0; t < N; ++t) {
        const auto in = planted(64, 256, 1000 + t);
        p.seed = t;
        const auto [r, exact] = run(in, p, t);
        o.failures += !success(r, exact, p.epsilon);
        o.mean_fraction += r.cost.fraction() / N;
    }
    o.allowed = p.delta * N + 3 * std::sqrt(N * p.delta * (1 - p.delta));
    return o;
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

} // namespace winnow::test
