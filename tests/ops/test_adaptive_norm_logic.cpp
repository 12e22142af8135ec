// The GPU AdaptiveSoftmax's normalizer and set logic (backend/cuda/adaptive_norm_logic.cuh) run on the host, its CPU
// twins: the weights and their sums against a straightforward double computation (tolerance: the terms' exp and the
// sums' order differ), the sums' documented order on values where any order is exact, fails() on hand-made arms (exact
// arms, zero / NaN / infinite weights and variances, the thresholds' edges) and against the CPU fast path's lambda
// written out, pull_to_var's set statistics against plain loops, the max keys, and the log-sum-exp against the CPU's
// head::log_sum_exp. The CUDA build of the same functions is compared with these twins by
// tests/gpu/test_cuda_adaptive_head.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cuda/adaptive_norm_logic.cuh"
#include "head/adaptive_algorithm.h"
#include "backend/cuda/float_bits.cuh"

namespace {

namespace ad = winnow::cuda::adaptive;

// FastAdaptiveSoftmax::Query::normalize's fails(i), as written there.
bool cpu_fails(float e_f, float var, int32_t T, int dp, double f, double a, double b) {
    const double e = e_f, fv = f * var;
    return T < dp && e > 0 && (fv * std::sqrt(e) > a || fv * e > b);
}

struct Arms {
    std::vector<float> mu, var;
    std::vector<int32_t> T;
};

Arms random_arms(std::mt19937& rng, int n, bool zero_vars) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    Arms a;
    a.mu.resize(n), a.var.resize(n), a.T.resize(n);
    for (int i = 0; i < n; ++i) {
        a.mu[i] = 3.0f * nd(rng);
        a.var[i] = zero_vars && rng() % 3 == 0 ? 0.0f : 0.05f * std::fabs(nd(rng));
        a.T[i] = static_cast<int32_t>(16 + rng() % 100);
    }
    return a;
}

TEST(AdaptiveNormLogic, WeightsAndSumsMatchADoubleReference) {
    std::mt19937 rng(3);
    for (int n : {1, 31, 32, 255, 256, 257, 1000, 5000, 49152}) {
        const Arms a = random_arms(rng, n, n % 2 == 0);
        const float c2 = 2.0f * std::log(6.0f * n / 0.005f);
        std::vector<float> e(n);
        std::vector<double> partials(2 * ad::norm_blocks(n));
        const ad::NormSums s = ad::norm_weights_host(a.mu.data(), a.var.data(), n, c2, e.data(), partials.data());
        // la and its max as the CPU computes them (float operations), then everything else in double
        float la_max = -INFINITY;
        std::vector<float> la(n);
        for (int i = 0; i < n; ++i) la[i] = a.mu[i] - std::sqrt(c2 * a.var[i]), la_max = std::max(la_max, la[i]);
        ASSERT_EQ(winnow::cuda::float_bits(s.la_max), winnow::cuda::float_bits(la_max)) << "n " << n;
        double sum_e = 0, sum_g = 0;
        for (int i = 0; i < n; ++i) {
            const double ref = std::exp(static_cast<double>(la[i] - la_max)); // the twin's float difference, then exp in double
            ASSERT_NEAR(e[i], ref, 1e-6 * ref + 1e-30) << "n " << n << " arm " << i;
            sum_e += ref, sum_g += std::sqrt(ref);
        }
        EXPECT_NEAR(s.sum_e, sum_e, 1e-6 * sum_e) << "n " << n;
        EXPECT_NEAR(s.sum_g, sum_g, 1e-6 * sum_g) << "n " << n;
        // the host adds the partials in block order: the twin's sums are exactly add_partials of its partials
        const int64_t blocks = ad::norm_blocks(n);
        EXPECT_EQ(s.sum_e, ad::add_partials(partials.data(), blocks));
        EXPECT_EQ(s.sum_g, ad::add_partials(partials.data() + blocks, blocks));
    }
}

// Small integers add exactly in any order: the documented butterfly + warp order must then give the plain sum, and
// a block's zeros past the end must add nothing.
TEST(AdaptiveNormLogic, BlockSumIsTheSumWhereAnyOrderIsExact) {
    std::mt19937 rng(4);
    for (int trial = 0; trial < 100; ++trial) {
        double v[ad::kNormThreads] = {};
        const int used = 1 + static_cast<int>(rng() % ad::kNormThreads);
        double plain = 0;
        for (int t = 0; t < used; ++t) v[t] = static_cast<double>(rng() % 1000), plain += v[t];
        ASSERT_EQ(ad::block_sum_host(v), plain);
    }
}

// The order itself, on a case where it shows: 2^53 + 1 + 1 is 2^53 added left to right, 2^53 + 2 when the two ones
// meet first. Lanes 0, 1, 3 of warp 0: the butterfly adds lane 1 to lane 3's partner pair first (o = 2: 1 + 3 -> 1,
// o = 1: lane 0 + lane 1), so lane 0 ends with v0 + (v1 + v3).
TEST(AdaptiveNormLogic, BlockSumFollowsTheButterflyOrder) {
    double v[ad::kNormThreads] = {};
    v[0] = 9007199254740992.0; // 2^53
    v[1] = 1.0;
    v[3] = 1.0;
    EXPECT_EQ(ad::block_sum_host(v), 9007199254740994.0);
    // across warps: the warps' values are added in warp order by one thread
    double w[ad::kNormThreads] = {};
    w[0] = 9007199254740992.0, w[32] = 1.0, w[64] = 1.0;
    EXPECT_EQ(ad::block_sum_host(w), 9007199254740992.0);
}

TEST(AdaptiveNormLogic, FailsOnHandMadeArms) {
    const int dp = 100;
    const double f = 1.0, a = 0.5, b = 0.25;
    // e = 0.25, var = 1: f var sqrt(e) = 0.5 (not > a), f var e = 0.25 (not > b)
    EXPECT_FALSE(ad::norm_fails(0.25f, 1.0f, 10, dp, f, a, b));
    EXPECT_TRUE(ad::norm_fails(0.25f, 1.0f, 10, dp, f, std::nextafter(0.5, 0.0), b)); // the a clause
    EXPECT_TRUE(ad::norm_fails(0.25f, 1.0f, 10, dp, f, a, std::nextafter(0.25, 0.0))); // the b clause
    EXPECT_FALSE(ad::norm_fails(0.25f, 1.0f, dp, dp, f, 0, 0));     // exact: never
    EXPECT_FALSE(ad::norm_fails(0.25f, 1.0f, dp + 5, dp, f, 0, 0)); // past d' too
    EXPECT_FALSE(ad::norm_fails(0.0f, 1.0f, 10, dp, f, 0, 0));      // zero weight
    EXPECT_FALSE(ad::norm_fails(-0.0f, 1.0f, 10, dp, f, 0, 0));
    EXPECT_FALSE(ad::norm_fails(NAN, 1.0f, 10, dp, f, 0, 0));       // NaN weight
    EXPECT_FALSE(ad::norm_fails(0.25f, NAN, 10, dp, f, 0, 0));      // NaN variance: comparisons false
    EXPECT_FALSE(ad::norm_fails(0.25f, 0.0f, 10, dp, f, 0, 0));     // zero variance: 0 > 0 is false
    EXPECT_TRUE(ad::norm_fails(0.25f, INFINITY, 10, dp, f, a, b));  // infinite variance: fails
    EXPECT_TRUE(ad::norm_fails(INFINITY, 1.0f, 10, dp, f, a, b));   // infinite weight
    EXPECT_TRUE(ad::norm_fails(1e-30f, 1e30f, 10, dp, f, 1e-3, 1e30)); // the a clause on extreme scales
    // the fudge factor scales the variance
    EXPECT_FALSE(ad::norm_fails(0.25f, 1.0f, 10, dp, 0.5, 0.25, 0.125));
    EXPECT_TRUE(ad::norm_fails(0.25f, 1.0f, 10, dp, 0.5, std::nextafter(0.25, 0.0), 0.125));
}

TEST(AdaptiveNormLogic, FailsEqualsTheCpuLambdaOnRandomArms) {
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const float specials[] = {0.0f, -0.0f, NAN, INFINITY, 1e-38f, 1e38f};
    for (int trial = 0; trial < 200000; ++trial) {
        float e = std::fabs(nd(rng)), var = std::fabs(nd(rng)) * 0.1f;
        if (rng() % 20 == 0) e = specials[rng() % 6];
        if (rng() % 20 == 0) var = specials[rng() % 6];
        const int32_t T = static_cast<int32_t>(rng() % 120);
        const double f = 0.01 + (rng() % 1000) / 100.0, a = std::fabs(nd(rng)) * 0.1, b = std::fabs(nd(rng)) * 0.01;
        ASSERT_EQ(ad::norm_fails(e, var, T, 100, f, a, b), cpu_fails(e, var, T, 100, f, a, b)) << e << " " << var << " " << T;
    }
}

// norm_filter_host: the first call flags every failing arm, later calls keep only flagged arms that still fail.
TEST(AdaptiveNormLogic, FilterNarrowsTheTodoSet) {
    const int dp = 50;
    std::vector<float> e = {0.5f, 0.5f, 0.0f, 0.5f, 0.5f}, var = {1.0f, 0.0f, 1.0f, 1.0f, 1.0f};
    std::vector<int32_t> T = {10, 10, 10, dp, 10};
    std::vector<uint8_t> todo(5, 7);
    EXPECT_EQ(ad::norm_filter_host(true, e.data(), var.data(), T.data(), 5, dp, 1.0, 0.1, 0.1, todo.data()), 2);
    EXPECT_EQ(todo, (std::vector<uint8_t>{1, 0, 0, 0, 1}));
    var[0] = 0.0f; // arm 0 is now tight enough; arm 1 fails now but was not flagged
    var[1] = 1.0f;
    EXPECT_EQ(ad::norm_filter_host(false, e.data(), var.data(), T.data(), 5, dp, 1.0, 0.1, 0.1, todo.data()), 1);
    EXPECT_EQ(todo, (std::vector<uint8_t>{0, 0, 0, 0, 1}));
}

TEST(AdaptiveNormLogic, SetStatsEqualPlainLoops) {
    std::mt19937 rng(9);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const int dp = 80;
    for (int trial = 0; trial < 2000; ++trial) {
        const int n = 1 + static_cast<int>(rng() % 600);
        std::vector<float> var(n);
        std::vector<int32_t> T(n);
        std::vector<uint8_t> in(n);
        for (int i = 0; i < n; ++i) {
            var[i] = std::fabs(nd(rng)) * 0.1f;
            const unsigned c = rng() % 30;
            if (c == 0) var[i] = NAN;
            if (c == 1) var[i] = INFINITY;
            if (c == 2) var[i] = 0.0f;
            if (c == 3) var[i] = -0.0f;
            T[i] = rng() % 4 ? static_cast<int32_t>(16 + rng() % (dp - 16)) : dp;
            if (T[i] == dp) var[i] = 0.0f;
            in[i] = rng() % 3 != 0;
        }
        const float thr = std::fabs(nd(rng)) * 0.1f;
        const ad::SetStats s = ad::set_stats_host(in.data(), var.data(), T.data(), n, thr, dp);
        int32_t count = 0, min_T = ad::kNoArm;
        bool failing = false;
        float max_var = 0;
        for (int i = 0; i < n; ++i)
            if (in[i]) {
                ++count;
                min_T = std::min(min_T, T[i]);
                failing |= var[i] > thr && T[i] < dp; // pull_to_var's test
                if (T[i] < dp) max_var = std::max(max_var, var[i]); // eliminate()'s skip
            }
        ASSERT_EQ(s.count, count);
        ASSERT_EQ(s.min_T, min_T);
        ASSERT_EQ(s.failing != 0, failing);
        ASSERT_EQ(s.max_var(), max_var);
    }
}

TEST(AdaptiveNormLogic, MaxKeysDecodeToTheMaximum) {
    const float values[] = {-INFINITY, -1e38f, -1.0f, -1e-45f, -0.0f, 0.0f, 1e-45f, 1.0f, 3.5f, 1e38f, INFINITY};
    for (float v : values) {
        const float back = ad::max_from_key(ad::max_key(v));
        EXPECT_EQ(back, v) << v;
        EXPECT_NE(ad::max_key(v), 0u) << v;
    }
    EXPECT_EQ(winnow::cuda::float_bits(ad::max_from_key(ad::max_key(-0.0f))), winnow::cuda::float_bits(0.0f)); // -0 folds onto +0
    EXPECT_EQ(ad::max_key(NAN), 0u);
    EXPECT_EQ(ad::max_from_key(0), -INFINITY);
    // a max over keys is the max over the non-NaN values
    std::mt19937 rng(2);
    std::normal_distribution<float> nd(0.0f, 10.0f);
    for (int trial = 0; trial < 1000; ++trial) {
        uint32_t key = 0;
        float mx = -INFINITY;
        for (int i = 0; i < 20; ++i) {
            const float v = rng() % 10 == 0 ? NAN : nd(rng);
            key = std::max(key, ad::max_key(v));
            mx = std::max(mx, v); // std::max(mx, NaN) keeps mx, as the CPU's la_max loop
        }
        ASSERT_EQ(ad::max_from_key(key), mx);
    }
}

TEST(AdaptiveNormLogic, LogSumExpMatchesTheCpuAndADoubleReference) {
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0.0f, 4.0f);
    for (int n : {1, 7, 256, 1000, 4097, 49152}) {
        std::vector<float> v(n);
        for (auto& x : v) x = nd(rng);
        const ad::SumExp s = ad::sum_exp_host(v.data(), n);
        double mx = -INFINITY, sum = 0;
        for (float x : v) mx = std::max(mx, static_cast<double>(x));
        for (float x : v) sum += std::exp(x - mx);
        const double ref = mx + std::log(sum);
        EXPECT_EQ(static_cast<double>(s.max), mx);
        EXPECT_NEAR(s.log_sum_exp(), ref, 1e-6) << "n " << n;
        EXPECT_NEAR(s.log_sum_exp(), winnow::head::log_sum_exp(v), 1e-6) << "n " << n;
    }
    // NaN entries are passed over by the max (the CPU's la_max does so; its log_sum_exp keeps a NaN only in front)
    std::vector<float> w = {1.0f, NAN, 2.0f};
    EXPECT_EQ(ad::sum_exp_host(w.data(), 3).max, 2.0f);
}

} // namespace
