#pragma once
// Synthetic AdaptiveSoftmax instances with a known answer (spec §5 synthetic (b)), shared by the tests of both
// implementations: A_ij ~ N(0, (scale / d)^2) and x = sign(A_0), so arm 0 stands out with mu_0 ~ 0.8 scale.
#include <cmath>
#include <cstdint>
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

} // namespace winnow::test
