// AdaptiveSoftmax reference implementation on synthetic instances with known answers (spec §5 "synthetic"):
// exactness when every arm reaches d', determinism per seed, the (eps, delta)-PAC rate over many random instances
// with a planted best arm, and sample complexity that grows sublinearly in d.
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "planted_instances.h"

#include "head/adaptive_softmax.h"
#include "head/exact_head.h"

namespace {

using namespace winnow::head;
using winnow::test::Instance;
using winnow::test::planted;
using winnow::test::success;

TEST(AdaptiveSoftmax, ExactWhenEveryArmReachesDPrime) {
    // d' = 8 < the first PullToVar step of 16: every arm is computed exactly, so the answer is the exact softmax,
    // bit for bit (same sums in the same order as exact_softmax)
    auto in = planted(40, 8, 1);
    AdaptiveSoftmax as(in.A, in.n, in.d);
    AdaptiveParams p;
    const auto r = as.run(in.x, p);
    const auto ex = exact_softmax(in.A, in.n, in.d, in.x);
    EXPECT_EQ(r.head.top, ex.top);
    EXPECT_EQ(r.head.p_top, ex.p_top);
    EXPECT_EQ(r.head.log_norm, ex.log_norm);
    EXPECT_EQ(r.cost.samples, r.cost.baseline);
    EXPECT_DOUBLE_EQ(r.cost.fraction(), 1.0);
}

TEST(AdaptiveSoftmax, DeterministicForAFixedSeed) {
    auto in = planted(200, 512, 2);
    AdaptiveParams p;
    p.seed = 1234;
    AdaptiveSoftmax a(in.A, in.n, in.d), b(in.A, in.n, in.d);
    const auto ra = a.run(in.x, p), rb = b.run(in.x, p);
    EXPECT_EQ(ra.head.top, rb.head.top);
    EXPECT_EQ(ra.head.p_top, rb.head.p_top);
    EXPECT_EQ(ra.cost.samples, rb.cost.samples);
    EXPECT_EQ(ra.cost.multiply_adds, rb.cost.multiply_adds);
    p.seed = 99;
    AdaptiveSoftmax c(in.A, in.n, in.d);
    EXPECT_NE(c.run(in.x, p).cost.multiply_adds, ra.cost.multiply_adds); // another column order
}

TEST(AdaptiveSoftmax, CostAccountingAddsUp) {
    auto in = planted(300, 2048, 3);
    AdaptiveSoftmax as(in.A, in.n, in.d);
    const auto r = as.run(in.x, AdaptiveParams{});
    EXPECT_EQ(r.cost.warmup + r.cost.best_arm + r.cost.normalizer, r.cost.samples);
    EXPECT_GE(r.cost.multiply_adds, r.cost.samples); // re-reads when the Gumbel threshold moves
    EXPECT_EQ(r.cost.baseline, 300LL * 2048);
    EXPECT_LT(r.cost.fraction(), 1.0);
}

// PAC: over 2000 random instances with the theory constants (no calibration), the empirical failure rate must
// not exceed delta beyond binomial noise: failures <= delta N + 3 sqrt(N delta (1 - delta)).
TEST(AdaptiveSoftmax, PacFailureRateAtMostDelta) {
    const auto o = winnow::test::pac_trials(2000, [](const Instance& in, const AdaptiveParams& p, int) {
        AdaptiveSoftmax as(in.A, in.n, in.d);
        return std::pair(as.run(in.x, p), exact_softmax(in.A, in.n, in.d, in.x, p.beta));
    });
    std::printf("PAC: %d / 2000 failures (allowed %.0f), mean fraction %.3f (gain %.2fx)\n", o.failures, o.allowed, o.mean_fraction, 1 / o.mean_fraction);
    EXPECT_LE(o.failures, o.allowed);
}

// Spec §5 synthetic scaling: per-arm samples grow sublinearly in d (the naive cost grows linearly).
TEST(AdaptiveSoftmax, SampleComplexitySublinearInD) {
    const auto per_arm = winnow::test::samples_per_arm_by_d([](const Instance& in, const AdaptiveParams& p) {
        AdaptiveSoftmax as(in.A, in.n, in.d);
        return as.run(in.x, p);
    });
    for (double s : per_arm) EXPECT_GT(s, 0) << "the planted arm was missed";
    EXPECT_LT(per_arm[1] / per_arm[0], 10.0 / 2); // 10x the dimension, well under 10x the samples
    EXPECT_LT(per_arm[2] / per_arm[0], 100.0 / 4);
}

} // namespace

#include "head/calibration.h"

namespace {

// One head matrix, many queries, each leaning towards a random target row (like an LM head and hidden states).
TEST(AdaptiveSoftmaxCalibration, TunedFactorsKeepHeldOutSuccessAndRaiseTheGain) {
    const int n = 512, d = 1024;
    const auto [base, tune, test] = winnow::test::leaning_queries(n, d);
    AdaptiveSoftmax head(base.A, n, d);
    AdaptiveParams p;
    p.delta = 0.05;
    p.beta = 4.0f;
    const auto cal = calibrate(head, tune, exact_answers(base.A, n, d, tune, p), p);
    std::printf("calibrated f_b = %.3g, f_ln = %.3g after %d searches\n", cal.fudge_best, cal.fudge_norm, cal.runs);
    EXPECT_LE(cal.fudge_best, 1.0);
    EXPECT_LE(cal.fudge_norm, 1.0);

    auto evaluate = [&](double fb, double fln, int& ok) {
        AdaptiveParams q = p;
        q.fudge_best = fb;
        q.fudge_norm = fln;
        double frac = 0;
        ok = 0;
        for (size_t i = 0; i < test.size(); ++i) {
            q.seed = 10'000 + i;
            const auto r = head.run(test[i], q);
            ok += success(r, exact_softmax(base.A, n, d, test[i], p.beta), p.epsilon);
            frac += r.cost.fraction();
        }
        return test.size() / frac; // gain = 1 / mean fraction
    };
    int ok_theory = 0, ok_tuned = 0;
    const double gain_theory = evaluate(1.0, 1.0, ok_theory), gain_tuned = evaluate(cal.fudge_best, cal.fudge_norm, ok_tuned);
    std::printf("held-out: theory %.2fx gain, %d/200 success; calibrated %.2fx gain, %d/200 success\n", gain_theory, ok_theory, gain_tuned, ok_tuned);
    EXPECT_GE(gain_tuned, gain_theory);
    // calibration meets delta on the tuning set; on held-out queries allow binomial noise (3 sd at n = 200)
    EXPECT_GE(ok_tuned, 200 * (1 - p.delta) - 3 * std::sqrt(200 * p.delta * (1 - p.delta)));
}

} // namespace

namespace {

TEST(AdaptiveSoftmaxCalibration, AllowedFailuresFollowTheBinomialTail) {
    EXPECT_EQ(winnow::head::allowed_failures(200, 0.01, 0), 2);   // the authors' floor(delta N)
    EXPECT_EQ(winnow::head::allowed_failures(1000, 0.1, 0), 100);
    // n = 200, delta = 0.01: P(X <= 0) = 0.134, P(X <= 1) = 0.405, P(X <= 2) = 0.677
    EXPECT_EQ(winnow::head::allowed_failures(200, 0.01, 0.5), 1);
    EXPECT_EQ(winnow::head::allowed_failures(200, 0.01, 0.8), 0);
    EXPECT_EQ(winnow::head::allowed_failures(200, 0.01, 0.95), 0); // nothing rejects at 95%: the strictest rule, 0
    // n = 200, delta = 0.1: mean 20, P(X <= 14) = 0.093, P(X <= 15) = 0.143 (math.comb in Python)
    EXPECT_EQ(winnow::head::allowed_failures(200, 0.1, 0.9), 14);
}

} // namespace
