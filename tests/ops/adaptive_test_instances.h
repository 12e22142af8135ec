#pragma once
// The random heads and queries the GPU adaptive head's tests share (tests/ops/test_adaptive_query.cpp on every machine,
// tests/gpu/test_cuda_adaptive_head.cpp on a GPU): A row-major [n][d] with N(0, 0.05^2) entries, x with N(0, 1)
// entries, and, when planted, one random row pushed along x so that its logit clears the others by ~8 (theirs have sd
// 0.05 |x| ~ 0.05 sqrt(d)).
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace winnow::test {

struct AdaptiveInstance {
    std::vector<float> A, x;
    int winner = -1; // planted: the exact argmax
};

inline AdaptiveInstance adaptive_instance(int n, int d, uint64_t seed, bool planted) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    AdaptiveInstance in;
    in.A.resize(static_cast<size_t>(n) * d);
    for (auto& v : in.A) v = 0.05f * nd(rng);
    in.x.resize(d);
    for (auto& v : in.x) v = nd(rng);
    if (planted) {
        in.winner = static_cast<int>(rng() % n);
        double xx = 0;
        for (float v : in.x) xx += static_cast<double>(v) * v;
        const float push = static_cast<float>((8.0 + 0.25 * std::sqrt(static_cast<double>(d))) / xx);
        for (int j = 0; j < d; ++j) in.A[static_cast<size_t>(in.winner) * d + j] += push * in.x[j];
    }
    return in;
}

} // namespace winnow::test
