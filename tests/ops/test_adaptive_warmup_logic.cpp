// The GPU AdaptiveSoftmax's warm-up pass (backend/cuda/adaptive_warmup_logic.cuh) run on the host, its CPU twin:
// over head::ColumnMajorHead's layout (fp32 and q8 storage) and a query's Gumbel column order with the fast path's
// Des Raj coefficients, the running sums and estimates are checked against a double-precision Des Raj computation of
// the same order, the full pass against the exact dot products, and a pass split into steps (the warm-up's 16, 24,
// 36, ... targets) against one pass, bit for bit. The elimination rounds' masked step (stream_masked_host): which
// arms it advances (the CPU path's stream(from, to, masked = true) selection), their sums against the double
// computation, masked steps against one unmasked pass bit for bit, and the other arms' bits untouched. The CUDA build of the same function is compared with this twin bit
// for bit by tests/gpu/test_cuda_head.cpp on the GPU machine.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>
#ifdef __AVX__
#include <immintrin.h>
#endif

#include <gtest/gtest.h>

#include "backend/cuda/adaptive_warmup_logic.cuh"
#include "head/adaptive_algorithm.h"
#include "head/column_major_head.h"
#include "backend/cuda/float_bits.cuh"

namespace {

using namespace winnow;
namespace ad = winnow::cuda::adaptive;

struct WarmUpCase {
    std::shared_ptr<head::ColumnMajorHead> H;
    std::vector<float> x;
    std::vector<int32_t> col, blk;
    std::vector<float> xs, coef;
    std::vector<double> share;
    ad::ColumnLayout layout() const {
        ad::ColumnLayout l;
        l.stride = H->stride();
        if (H->storage() == head::ColumnMajorHead::Storage::q8) {
            l.quants = H->quant_column(0);
            l.scales = H->scale_row(0);
        } else {
            l.values = H->float_column(0);
        }
        return l;
    }
    ad::QueryOrder order() const { return {col.data(), blk.data(), xs.data(), coef.data(), static_cast<int>(col.size())}; }
};

// A head, a query, and the query's order with the coefficients exactly as FastAdaptiveSoftmax::Query computes them.
WarmUpCase make_setup(int n, int d, bool q8, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> A(static_cast<size_t>(n) * d);
    for (auto& v : A) v = 0.05f * nd(rng);
    WarmUpCase s;
    s.H = std::make_shared<head::ColumnMajorHead>(A, n, d, q8);
    s.x.resize(d);
    for (auto& v : s.x) v = nd(rng);
    s.x[3] = 0.0f; // a column the order leaves out
    const head::ColumnOrder o = head::gumbel_column_order(s.H->statistics().l1, s.x, seed + 1);
    const int dp = o.size();
    s.col = o.column;
    s.share = o.share;
    s.blk.resize(dp), s.xs.resize(dp), s.coef.resize(dp);
    double remaining = 0;
    for (int m = dp - 1; m >= 0; --m) {
        remaining += o.share[m];
        s.blk[m] = s.col[m] / 32;
        s.xs[m] = s.x[s.col[m]];
        s.coef[m] = static_cast<float>(remaining / o.share[m]);
    }
    return s;
}

struct State {
    explicit State(int64_t stride) : K(stride), Z(stride), Z2(stride), mu(stride), var(stride), T(stride) {}
    std::vector<float> K, Z, Z2, mu, var;
    std::vector<int32_t> T;
    ad::ArmState view() { return {K.data(), Z.data(), Z2.data(), mu.data(), var.data(), T.data()}; }
};

class AdaptiveWarmUpLogic : public ::testing::TestWithParam<bool> {};

TEST_P(AdaptiveWarmUpLogic, DesRajSumsAndEstimatesMatchDoublePrecision) {
    const bool q8 = GetParam();
    const WarmUpCase s = make_setup(1000, 128, q8, 7);
    const int dp = static_cast<int>(s.col.size());
    ASSERT_EQ(dp, 127); // x_3 = 0 is left out
    const float beta = 0.7f;
    const std::vector<float> dense = s.H->dense();
    for (int to : {1, 2, 16, 60, dp}) {
        State st(s.H->stride());
        ad::warm_up_host(s.layout(), s.order(), st.view(), s.H->stride(), 0, to, true, beta);
        for (int i = 0; i < 1000; ++i) {
            // Des Raj in double over the same order: z_m = K_{m-1} + y_m coef_m
            double K = 0, Z = 0, Z2 = 0;
            for (int m = 0; m < to; ++m) {
                const double y = static_cast<double>(dense[static_cast<size_t>(i) * 128 + s.col[m]]) * s.xs[m];
                const double z = K + y * s.coef[m];
                K += y, Z += z, Z2 += z * z;
            }
            ASSERT_EQ(st.T[i], to);
            const double scale = 1e-4 * (1 + std::fabs(Z) + std::fabs(K));
            ASSERT_NEAR(st.K[i], K, scale) << "arm " << i << " to " << to;
            ASSERT_NEAR(st.Z[i], Z, scale) << "arm " << i << " to " << to;
            if (to >= dp) {
                EXPECT_EQ(st.var[i], 0.0f);
                EXPECT_NEAR(st.mu[i], beta * K, 1e-4 * (1 + std::fabs(K)));
            } else if (to >= 2) {
                const double mean = Z / to, var = beta * beta * std::max(0.0, Z2 - Z * mean) / (static_cast<double>(to) * (to - 1));
                EXPECT_NEAR(st.mu[i], beta * mean, 1e-4 * (1 + std::fabs(mean)));
                // S^2 = Z2 - Z mean cancels: fp32 error of the sums (t terms) relative to Z2, not to the variance
                const double cancel = 1e-5 * beta * beta * (std::fabs(Z2) + std::fabs(Z * mean)) / (static_cast<double>(to) * (to - 1));
                EXPECT_NEAR(st.var[i], var, cancel + 1e-12);
            } else {
                EXPECT_TRUE(std::isinf(st.var[i]));
                EXPECT_FLOAT_EQ(st.mu[i], beta * st.Z[i]);
            }
        }
    }
    // the full pass is the exact dot product over the sampled columns (the left-out column has x = 0)
    State full(s.H->stride());
    ad::warm_up_host(s.layout(), s.order(), full.view(), s.H->stride(), 0, dp, true, 1.0f);
    for (int i = 0; i < 1000; ++i) {
        double dot = 0;
        for (int j = 0; j < 128; ++j) dot += static_cast<double>(dense[static_cast<size_t>(i) * 128 + j]) * s.x[j];
        ASSERT_NEAR(full.mu[i], dot, 1e-4 * (1 + std::fabs(dot))) << "arm " << i;
    }
}

// The warm-up's steps (16, then 24, then 36 columns ...) leave the same bits as one pass over the same columns.
TEST_P(AdaptiveWarmUpLogic, StepsEqualOnePass) {
    const WarmUpCase s = make_setup(333, 96, GetParam(), 11);
    const int dp = static_cast<int>(s.col.size());
    State a(s.H->stride()), b(s.H->stride());
    int cur = 0;
    for (int target : {16, 24, 36, 54, dp}) {
        ad::warm_up_host(s.layout(), s.order(), a.view(), s.H->stride(), cur, std::min(target, dp), cur == 0, 1.0f);
        cur = std::min(target, dp);
    }
    ad::warm_up_host(s.layout(), s.order(), b.view(), s.H->stride(), 0, dp, true, 1.0f);
    EXPECT_EQ(a.K, b.K);
    EXPECT_EQ(a.Z, b.Z);
    EXPECT_EQ(a.Z2, b.Z2);
    EXPECT_EQ(a.mu, b.mu);
    EXPECT_EQ(a.T, b.T);
}

// One arm's state, all six words, bit for bit (NaN payloads included: the host twin against itself).
bool same_arm(const State& a, const State& b, int i) {
    return winnow::cuda::float_bits(a.K[i]) == winnow::cuda::float_bits(b.K[i]) && winnow::cuda::float_bits(a.Z[i]) == winnow::cuda::float_bits(b.Z[i]) && winnow::cuda::float_bits(a.Z2[i]) == winnow::cuda::float_bits(b.Z2[i]) && winnow::cuda::float_bits(a.mu[i]) == winnow::cuda::float_bits(b.mu[i]) &&
           winnow::cuda::float_bits(a.var[i]) == winnow::cuda::float_bits(b.var[i]) && a.T[i] == b.T[i];
}

// The rounds' masked step advances exactly the arms the CPU path's stream(from, to, masked = true) selects, T == from
// and active != 0 (advance() writes -1; any nonzero word counts), through the right columns, and writes nothing of
// any other arm: neither of an active arm at another prefix length nor of an inactive one at `from`.
TEST_P(AdaptiveWarmUpLogic, MaskedStepAdvancesExactlyTheSelectedArms) {
    const int n = 1000, d = 128;
    const WarmUpCase s = make_setup(n, d, GetParam(), 17);
    const int64_t stride = s.H->stride();
    const float beta = 0.8f;
    const std::vector<float> dense = s.H->dense();
    State st(stride);
    ad::warm_up_host(s.layout(), s.order(), st.view(), stride, 0, 16, true, beta);
    // a third of the arms one step ahead (T = 24), as after an earlier round
    std::vector<int32_t> active(stride, 0);
    for (int i = 0; i < n; i += 3) active[i] = -1;
    ad::stream_masked_host(s.layout(), s.order(), st.view(), active.data(), stride, 16, 24, beta);
    const State before = st;
    std::mt19937 rng(3);
    for (int i = 0; i < n; ++i) active[i] = rng() % 2 ? (rng() % 2 ? -1 : 1) : 0;
    ad::stream_masked_host(s.layout(), s.order(), st.view(), active.data(), stride, 16, 40, beta);
    int advanced = 0, ahead_active = 0;
    for (int i = 0; i < n; ++i) {
        const bool want = before.T[i] == 16 && active[i] != 0;
        ahead_active += before.T[i] == 24 && active[i] != 0;
        if (!want) {
            ASSERT_TRUE(same_arm(st, before, i)) << "arm " << i << " (T " << before.T[i] << ", active " << active[i] << ") was written";
            continue;
        }
        ++advanced;
        ASSERT_EQ(st.T[i], 40) << "arm " << i;
        double K = 0, Z = 0, Z2 = 0; // Des Raj in double over columns [0, 40) of the order
        for (int m = 0; m < 40; ++m) {
            const double y = static_cast<double>(dense[static_cast<size_t>(i) * d + s.col[m]]) * s.xs[m];
            const double z = K + y * s.coef[m];
            K += y, Z += z, Z2 += z * z;
        }
        const double scale = 1e-4 * (1 + std::fabs(Z) + std::fabs(K));
        ASSERT_NEAR(st.K[i], K, scale) << "arm " << i;
        ASSERT_NEAR(st.Z[i], Z, scale) << "arm " << i;
        ASSERT_NEAR(st.Z2[i], Z2, 1e-4 * (1 + Z2)) << "arm " << i;
        const double mean = Z / 40, var = beta * beta * std::max(0.0, Z2 - Z * mean) / (40.0 * 39);
        EXPECT_NEAR(st.mu[i], beta * mean, 1e-4 * (1 + std::fabs(mean))) << "arm " << i;
        EXPECT_NEAR(st.var[i], var, 1e-5 * beta * beta * (Z2 + std::fabs(Z * mean)) / (40.0 * 39) + 1e-12) << "arm " << i;
    }
    EXPECT_GT(advanced, 200); // the three kinds of arm are all there
    EXPECT_GT(ahead_active, 100);
}

// A masked step followed by the rest of the columns leaves the advanced arms with the bits of one unmasked pass over
// the same columns (the same sums in the same order), also with two groups at different prefix lengths interleaved
// as advance() runs them; arms never selected keep the bits they had.
TEST_P(AdaptiveWarmUpLogic, MaskedStepsEqualOneUnmaskedPass) {
    const int n = 700;
    const WarmUpCase s = make_setup(n, 96, GetParam(), 23);
    const int dp = static_cast<int>(s.col.size());
    const int64_t stride = s.H->stride();
    State a(stride), one(stride);
    ad::warm_up_host(s.layout(), s.order(), a.view(), stride, 0, 16, true, 0.6f);
    const State start = a;
    std::vector<int32_t> g1(stride, 0), g2(stride, 0), both(stride, 0); // group 1: i % 5 == 1, group 2: i % 5 == 3
    for (int i = 0; i < n; ++i) g1[i] = i % 5 == 1 ? -1 : 0, g2[i] = i % 5 == 3 ? -1 : 0, both[i] = g1[i] | g2[i];
    ad::stream_masked_host(s.layout(), s.order(), a.view(), g1.data(), stride, 16, 24, 0.6f);
    ad::stream_masked_host(s.layout(), s.order(), a.view(), g2.data(), stride, 16, 37, 0.6f);
    ad::stream_masked_host(s.layout(), s.order(), a.view(), both.data(), stride, 24, 37, 0.6f); // group 1 only: group 2 has T = 37
    ad::stream_masked_host(s.layout(), s.order(), a.view(), both.data(), stride, 37, dp, 0.6f);
    one = start;
    ad::warm_up_host(s.layout(), s.order(), one.view(), stride, 16, dp, false, 0.6f);
    for (int i = 0; i < n; ++i) {
        if (i % 5 == 1 || i % 5 == 3) {
            ASSERT_TRUE(same_arm(a, one, i)) << "advanced arm " << i;
            ASSERT_EQ(a.T[i], dp);
        } else {
            ASSERT_TRUE(same_arm(a, start, i)) << "untouched arm " << i;
        }
    }
}

// A NaN in the query (or the head) makes the arm's sums NaN; the CPU fast path's variance, beta^2 *
// _mm256_max_ps(0, S^2) / (t (t - 1)), is then NaN (MAXPS returns its second operand when one is NaN), and so must
// the twin's be: fmaxf(0, NaN) gave 0, a variance that claims the arm is settled.
TEST_P(AdaptiveWarmUpLogic, NaNQueryGivesTheFastPathsNaNVariance) {
    WarmUpCase s = make_setup(200, 64, GetParam(), 13);
    s.xs[5] = NAN;
    const int dp = static_cast<int>(s.col.size());
    State st(s.H->stride());
    for (int to : {6, 16, dp - 1}) { // from column 6 on, the sums hold the NaN
        ad::warm_up_host(s.layout(), s.order(), st.view(), s.H->stride(), 0, to, true, 0.9f);
        int nan_sums = 0, nan_mu = 0, nan_var = 0;
        for (int i = 0; i < 200; ++i) {
            nan_sums += std::isnan(st.Z[i]) && std::isnan(st.Z2[i]);
            nan_mu += std::isnan(st.mu[i]);
            nan_var += std::isnan(st.var[i]);
        }
        EXPECT_EQ(nan_sums, 200) << "to " << to;
        EXPECT_EQ(nan_mu, 200) << "to " << to;
        EXPECT_EQ(nan_var, 200) << "to " << to; // fmaxf: 0 for every arm
    }
}


// max0_as_avx against the fast path's instruction with its operands in its order, _mm256_max_ps(zero, x): the same
// bits for NaNs of either sign, both zeros, infinities, denormals and ordinary values.
TEST(AdaptiveWarmUpMax0, SameBitsAsTheFastPathsMaxps) {
    const float vals[] = {NAN, -NAN, 0.0f, -0.0f, 1.0f, -1.0f, INFINITY, -INFINITY, 1e-45f, -1e-45f, 3.0e38f, -2.0e-3f};
    for (float x : vals) {
        const float want = std::isnan(x) || x > 0.0f || x == 0.0f ? x : 0.0f; // MAXPS: the second operand unless the first is greater
        EXPECT_EQ(winnow::cuda::float_bits(ad::max0_as_avx(x)), winnow::cuda::float_bits(want)) << x;
#ifdef __AVX__
        alignas(32) float out[8];
        _mm256_store_ps(out, _mm256_max_ps(_mm256_setzero_ps(), _mm256_set1_ps(x)));
        EXPECT_EQ(winnow::cuda::float_bits(ad::max0_as_avx(x)), winnow::cuda::float_bits(out[0])) << x;
#endif
    }
}

INSTANTIATE_TEST_SUITE_P(Storage, AdaptiveWarmUpLogic, ::testing::Values(false, true), [](const auto& i) { return i.param ? std::string("q8") : std::string("f32"); });

} // namespace
