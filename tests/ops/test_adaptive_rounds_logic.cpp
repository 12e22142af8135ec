// The GPU AdaptiveSoftmax's elimination round reduction (backend/cuda/adaptive_rounds_logic.cuh) run on the host, its
// CPU twin, against the CPU fast path's eliminate() round written out with std:: containers as
// head/fast_adaptive_softmax.cpp has it (k == 1): b = S[0], then b = i for every mu[i] > mu[b]; floor_b; the keep
// loop. On random inputs, inputs full of ties (equal mu, -0 and +0, zero variances), and with NaN and infinite
// estimates, whose handling is the CPU loop's (see the logic header): the best arm, floor_b (bits), every keep flag,
// the count and all_exact must agree. The CUDA build is compared with this twin by tests/gpu/test_cuda_head.cpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cuda/adaptive_rounds_logic.cuh"
#include "backend/cuda/float_bits.cuh"

namespace {

namespace ad = winnow::cuda::adaptive;

struct Round {
    std::vector<float> mu, var;
    std::vector<int32_t> T;
    std::vector<uint8_t> S;
    int dp = 100;
    float width2 = 1.0f;
};

struct Expected {
    int32_t best;
    float floor_b;
    std::vector<uint8_t> keep;
    int32_t kept = 0;
    bool all_exact = true;
};

// The CPU fast path's round, as its loop is written (S: the indices, ascending).
Expected cpu_round(const Round& r) {
    std::vector<int32_t> S;
    for (size_t i = 0; i < r.S.size(); ++i)
        if (r.S[i]) S.push_back(static_cast<int32_t>(i));
    Expected e;
    int32_t b = S[0];
    for (int32_t i : S)
        if (r.mu[i] > r.mu[b]) b = i;
    e.best = b;
    e.floor_b = r.mu[b] - std::sqrt(r.width2 * r.var[b]);
    e.keep.assign(r.S.size(), 0);
    for (int32_t i : S) {
        const float gap = e.floor_b - r.mu[i];
        if (gap <= 0 || r.width2 * r.var[i] >= gap * gap) {
            e.keep[i] = 1;
            ++e.kept;
            e.all_exact = e.all_exact && r.T[i] >= r.dp;
        }
    }
    return e;
}

void check(const Round& r, const std::string& what) {
    const Expected e = cpu_round(r);
    std::vector<uint8_t> keep(r.S.size(), 7);
    const ad::RoundResult got = ad::eliminate_round_host(r.mu.data(), r.var.data(), r.T.data(), r.S.data(), keep.data(), static_cast<int64_t>(r.S.size()),
                                                         r.dp, r.width2);
    ASSERT_EQ(got.best, e.best) << what;
    ASSERT_EQ(winnow::cuda::float_bits(got.floor_b), winnow::cuda::float_bits(e.floor_b)) << what << " floor " << got.floor_b << " vs " << e.floor_b;
    ASSERT_EQ(keep, e.keep) << what;
    ASSERT_EQ(got.kept, e.kept) << what;
    ASSERT_EQ(got.all_exact != 0, e.all_exact) << what;
}

// Values drawn from a small set, so that ties, signed zeros and (when `special`) NaN and infinities are common.
Round random_round(std::mt19937& rng, int n, bool ties, bool special) {
    Round r;
    r.mu.resize(n), r.var.resize(n), r.T.resize(n), r.S.resize(n);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const float tie_mu[] = {-1.0f, -0.0f, 0.0f, 0.5f, 1.0f, 2.0f};
    const float tie_var[] = {0.0f, 0.25f, 1.0f, 4.0f};
    for (int i = 0; i < n; ++i) {
        r.mu[i] = ties ? tie_mu[rng() % 6] : nd(rng);
        r.var[i] = ties ? tie_var[rng() % 4] : std::fabs(nd(rng)) * 0.1f;
        if (special) {
            const unsigned c = rng() % 40;
            if (c == 0) r.mu[i] = NAN;
            if (c == 1) r.mu[i] = INFINITY;
            if (c == 2) r.mu[i] = -INFINITY;
            if (c == 3) r.var[i] = NAN;
            if (c == 4) r.var[i] = INFINITY;
        }
        r.T[i] = rng() % 3 ? r.dp : static_cast<int32_t>(rng() % r.dp);
        r.S[i] = rng() % 4 != 0;
    }
    r.S[rng() % n] = 1; // S is never empty
    r.width2 = ties ? 1.0f : 0.5f + static_cast<float>(rng() % 100) / 10;
    return r;
}

TEST(AdaptiveRoundsLogic, EqualsTheCpuRoundOnRandomInputs) {
    std::mt19937 rng(1);
    for (int trial = 0; trial < 3000; ++trial) {
        const int n = 1 + static_cast<int>(rng() % 300);
        const bool ties = trial % 3 != 0, special = trial % 2 == 1;
        check(random_round(rng, n, ties, special), "trial " + std::to_string(trial));
        if (HasFatalFailure()) return;
    }
}

// The cases the argmax's reduction has to get right by construction, one by one.
TEST(AdaptiveRoundsLogic, TiesZerosNaNAndInfinities) {
    auto make = [](std::vector<float> mu, std::vector<uint8_t> S) {
        Round r;
        r.mu = std::move(mu);
        r.var.assign(r.mu.size(), 0.0f);
        r.T.assign(r.mu.size(), r.dp);
        r.S = std::move(S);
        return r;
    };
    check(make({1, 3, 3, 2, 3}, {1, 1, 1, 1, 1}), "equal maxima: the first");
    check(make({1, 3, 3, 2, 3}, {1, 0, 1, 1, 1}), "equal maxima: the first in S");
    check(make({-0.0f, 0.0f, -0.0f}, {1, 1, 1}), "-0 then +0");
    check(make({0.0f, -0.0f}, {1, 1}), "+0 then -0");
    check(make({-1, -0.0f, 0.0f}, {1, 1, 1}), "-0 first of the zero maxima");
    check(make({NAN, 5, 7}, {1, 1, 1}), "NaN S[0]: the loop never leaves it");
    check(make({NAN, NAN, 7}, {0, 1, 1}), "NaN S[0] past an arm outside S");
    check(make({1, NAN, 7, NAN}, {1, 1, 1, 1}), "NaN arms passed over");
    check(make({NAN, NAN}, {1, 1}), "all NaN");
    check(make({-INFINITY, -INFINITY, -INFINITY}, {1, 1, 1}), "all -inf");
    check(make({NAN, -INFINITY}, {0, 1}), "-inf alone");
    check(make({1, INFINITY, INFINITY}, {1, 1, 1}), "+inf");
    Round one = make({4}, {1});
    one.T[0] = 3;
    check(one, "one arm, not exact");
    // zero variances: only arms at or above floor_b = mu_b stay
    Round z = make({1, 2, 2, 1.5f}, {1, 1, 1, 1});
    check(z, "zero variances");
    // the variance clause: gap^2 exactly width2 var (kept), just above (dropped); gap = 2 - 1 = 1
    Round edge = make({2, 1, 1}, {1, 1, 1});
    edge.var = {0.0f, 1.0f, std::nextafter(1.0f, 0.0f)};
    edge.T = {100, 3, 100};
    check(edge, "upper bound exactly at the floor");
    const ad::RoundResult e = [&] {
        std::vector<uint8_t> keep(3);
        return ad::eliminate_round_host(edge.mu.data(), edge.var.data(), edge.T.data(), edge.S.data(), keep.data(), 3, edge.dp, edge.width2);
    }();
    EXPECT_EQ(e.kept, 2);
    EXPECT_EQ(e.all_exact, 0); // arm 1 kept with T = 3 < d'
}

// The kernel's structure: the two reductions over blocks of 256 arms combined in any order (here reversed) give the
// sequential fold's first and key, so the same best arm.
TEST(AdaptiveRoundsLogic, BlockwiseReductionInAnyOrderEqualsTheFold) {
    std::mt19937 rng(5);
    for (int trial = 0; trial < 200; ++trial) {
        const Round r = random_round(rng, 1 + static_cast<int>(rng() % 2000), trial % 2 == 0, true);
        const int64_t n = static_cast<int64_t>(r.S.size());
        std::vector<uint8_t> keep(n);
        const ad::RoundResult seq = ad::eliminate_round_host(r.mu.data(), r.var.data(), r.T.data(), r.S.data(), keep.data(), n, r.dp, r.width2);
        int32_t first = ad::kNoArm;
        unsigned long long key = 0;
        for (int64_t block = (n - 1) / 256; block >= 0; --block) {
            int32_t bf = ad::kNoArm;
            unsigned long long bk = 0;
            for (int64_t i = std::min(n, (block + 1) * 256) - 1; i >= block * 256; --i)
                if (r.S[i]) bf = std::min(bf, static_cast<int32_t>(i)), bk = std::max(bk, ad::best_key(r.mu[i], i));
            first = std::min(first, bf), key = std::max(key, bk);
        }
        ASSERT_EQ(first, seq.first);
        ASSERT_EQ(key, seq.key);
        ASSERT_EQ(ad::pick_best(first, key, r.mu.data()), seq.best);
    }
}

TEST(AdaptiveRoundsLogic, EmptyCandidateSetKeepsNothing) {
    const float mu[2] = {1, 2}, var[2] = {0, 0};
    const int32_t T[2] = {5, 5};
    const uint8_t S[2] = {0, 0};
    uint8_t keep[2] = {9, 9};
    const ad::RoundResult r = ad::eliminate_round_host(mu, var, T, S, keep, 2, 5, 1.0f);
    EXPECT_EQ(r.best, -1);
    EXPECT_EQ(r.kept, 0);
    EXPECT_EQ(keep[0] + keep[1], 0);
}

} // namespace
