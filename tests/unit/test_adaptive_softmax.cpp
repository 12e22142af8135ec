// AdaptiveSoftmax reference implementation on synthetic instances with known answers (spec §5 "synthetic"):
// exactness when every arm reaches d', determinism per seed, the (eps, delta)-PAC rate over many random instances
// with a planted best arm, and sample complexity that grows sublinearly in d.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "debiased_normalizer_check.h"
#include "planted_instances.h"

#include "head/adaptive_head.h"
#include "head/adaptive_softmax.h"
#include "head/column_major_head.h"
#include "head/exact_head.h"
#include "head/fast_adaptive_softmax.h"
#include "winnow/error.h"

namespace {

using namespace winnow::head;
using winnow::test::Instance;
using winnow::test::planted;
using winnow::test::success;

constexpr int kFlatTrials = 500;       // flat PAC instances per setting
constexpr double kUnderSampled = 3e-2; // the mutant's fudge factors: 30x below the theory constants

TEST(AdaptiveSoftmax, ExactWhenEveryArmReachesDPrime) {
    // d' = 8 < the first PullToVar step of 16: every arm is computed exactly, so the answer is the exact softmax,
    // bit for bit (the planted instance's sums are exact in double, so exact_softmax's summation order cannot show)
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

// The charged sample count against an independent recount: the recorder marks each (arm, column) product where the
// head's loops read it; the distinct ones among the query's sampled columns must equal cost.samples (prefix
// re-reads count once, an exact row counts its d' sampled columns). Also after a first query on the same object.
TEST(AdaptiveSoftmax, DistinctReadsEqualChargedSamples) {
    for (const auto& in : {planted(300, 2048, 3), winnow::test::flat(128, 512, 9), planted(40, 8, 1)}) {
        AdaptiveSoftmax as(in.A, in.n, in.d);
        ReadRecorder rec;
        as.set_read_recorder(&rec);
        for (int k : {1, 3}) {
            AdaptiveParams p;
            p.k = k;
            p.fudge_best = p.fudge_norm = k == 1 ? 1.0 : 0.05; // the theory constants, and an aggressive setting
            const auto r = as.run(in.x, p);
            EXPECT_EQ(rec.distinct_samples(), r.cost.samples) << "n " << in.n << " d " << in.d << " k " << k;
            EXPECT_GT(r.cost.samples, 0);
        }
        EXPECT_EQ(rec.queries(), 2);
    }
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

// The same protocol on flat instances (128 arms, d = 512, p_top ~ 0.05, the winner 0.05 nat above the next arm):
// a normalizer that ignored the near-top arms would report p ~ 1 and fail every one of them.
TEST(AdaptiveSoftmax, PacFailureRateAtMostDeltaOnFlatInstances) {
    auto run = [](const Instance& in, const AdaptiveParams& p, int) {
        AdaptiveSoftmax as(in.A, in.n, in.d);
        return std::pair(as.run(in.x, p), exact_softmax(in.A, in.n, in.d, in.x, p.beta));
    };
    const auto o = winnow::test::flat_pac_trials(kFlatTrials, run);
    std::printf("flat PAC: %d / %d failures (allowed %.0f), mean p_top %.3f, mean fraction %.3f (gain %.2fx)\n", o.failures, kFlatTrials, o.allowed,
                o.mean_p_top, o.mean_fraction, 1 / o.mean_fraction);
    EXPECT_LT(o.mean_p_top, 0.1); // flat: ignoring the other arms would be off by a factor > 10
    EXPECT_LE(o.failures, o.allowed);
    // The mutant: factors far below the calibrated ones shrink every pull target, the test must then see failures
    // beyond delta (else the assertion above could not fail).
    const auto m = winnow::test::flat_pac_trials(kFlatTrials, run, kUnderSampled);
    std::printf("flat PAC, under-sampled (f = %g): %d / %d failures, mean fraction %.3f\n", kUnderSampled, m.failures, kFlatTrials, m.mean_fraction);
    EXPECT_GT(m.failures, m.allowed);
    // for comparison, the planted protocol under the same mutant (printed: it is what the flat instances add)
    const auto planted_m = winnow::test::pac_trials(2000, [](const Instance& in, const AdaptiveParams& p, int) {
        AdaptiveParams q = p;
        q.fudge_best = q.fudge_norm = kUnderSampled;
        AdaptiveSoftmax as(in.A, in.n, in.d);
        return std::pair(as.run(in.x, q), exact_softmax(in.A, in.n, in.d, in.x, q.beta));
    });
    std::printf("planted PAC, under-sampled (f = %g): %d / 2000 failures (allowed %.0f)\n", kUnderSampled, planted_m.failures, planted_m.allowed);
}

// FaithfulOptions::debiased_normalizer (the check in debiased_normalizer_check.h). Whether it helps is an empirical
// question (bench head --normalizer; on SmolLM2 it halves the f_ln the calibration needs,
// bench/reports/adaptive-head-rotation-smollm2.md).
TEST(AdaptiveSoftmax, DebiasedNormalizerOnlyLowersTheSumOfEstimatedArms) {
    const auto run = [](const Instance& in, bool debiased, double fudge_norm) {
        AdaptiveParams p;
        p.seed = 3;
        p.fudge_norm = fudge_norm;
        AdaptiveSoftmax as(in.A, in.n, in.d, {.debiased_normalizer = debiased});
        return as.run(in.x, p);
    };
    // d = 16: the elimination's first pull, to 16 columns, reads every column, so every arm is exact
    winnow::test::expect_debiasing_lowers_only_the_estimated_normalizer(run, winnow::test::flat(256, 16, 7002, 0, 0.05f, 1.0f));
}

// FaithfulOptions::normalizer_exact_share: an arm whose upper bound could hold that share of the estimated normalizer
// is computed exactly before the normalizer's pulls. A share so small that every arm's bound clears it makes every
// arm exact: the answer is the exact softmax, charged n d'. The share 1 makes few arms exact and reads less; a share
// outside [0, 1] is refused.
TEST(AdaptiveSoftmax, NormalizerExactShareComputesTheHeavyArmsExactly) {
    const Instance in = winnow::test::flat(2048, 512, 7001, 0, 1.0f, 4.0f);
    const auto run = [&](double share) {
        AdaptiveParams p;
        p.seed = 3;
        p.fudge_norm = 1e-3;
        AdaptiveSoftmax as(in.A, in.n, in.d, {.normalizer_exact_share = share, .normalizer_exact_sds = -1});
        return as.run(in.x, p);
    };
    const auto exact = exact_softmax(in.A, in.n, in.d, in.x);
    const auto all = run(1e-300), reference = run(0), one = run(1);
    EXPECT_EQ(all.cost.samples, int64_t{in.n} * in.d);
    EXPECT_NEAR(all.head.p_top, exact.p_top, 1e-5 * exact.p_top);
    EXPECT_EQ(all.head.top[0], exact.top[0]);
    EXPECT_LT(reference.cost.samples, all.cost.samples);
    EXPECT_LE(one.cost.samples, all.cost.samples);
    std::printf("samples: share 0 %lld, share 1 %lld, every arm %lld\n", static_cast<long long>(reference.cost.samples),
                static_cast<long long>(one.cost.samples), static_cast<long long>(all.cost.samples));
    EXPECT_THROW(AdaptiveSoftmax(in.A, in.n, in.d, {.normalizer_exact_share = 1.5}), winnow::Error);
    EXPECT_THROW(AdaptiveSoftmax(in.A, in.n, in.d, {.normalizer_exact_share = -0.1}), winnow::Error);
    EXPECT_THROW(AdaptiveSoftmax(in.A, in.n, in.d, {.normalizer_exact_sds = std::nan("")}), winnow::Error);
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
    EXPECT_LE(cal.fudge_norm, winnow::kMaxFudgeNorm);

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

namespace {

using namespace winnow::head;
using winnow::test::Instance;
using winnow::test::planted;

// A head whose answers are scripted by the fudge factor it is given, to test the calibration search itself: its arm
// choice is right on a query when `right_best(f_b, query)`, its full run when `right_full(f_ln, query)` (by default the
// same rule), and it keeps every factor it was asked about.
class ScriptedHead final : public AdaptiveAlgorithm {
public:
    explicit ScriptedHead(std::function<bool(double, int)> right_best, std::function<bool(double, int)> right_full = {})
        : right_best_(std::move(right_best)), right_full_(right_full ? std::move(right_full) : right_best_) {}
    AdaptiveResult run(std::span<const float> x, const AdaptiveParams& p) override {
        tried_norm.push_back(p.fudge_norm);
        run_fudge_best = p.fudge_best;
        AdaptiveResult r;
        r.head.top = {right_full_(p.fudge_norm, static_cast<int>(x[0])) ? 0 : 1};
        r.head.p_top = 0.5f;
        return r;
    }
    std::vector<int32_t> best_arms_only(std::span<const float> x, const AdaptiveParams& p) override {
        tried_best.push_back(p.fudge_best);
        return {right_best_(p.fudge_best, static_cast<int>(x[0])) ? 0 : 1};
    }
    int n() const override { return 2; }
    int d() const override { return 1; }
    const char* name() const override { return "scripted"; }
    double max_fudge_norm() const override { return max_norm; }
    std::vector<double> tried_best, tried_norm;
    double run_fudge_best = 0; // the f_b of the full run being scripted
    double max_norm = winnow::kMaxFudgeNorm; // the top of f_ln's search range

private:
    std::function<bool(double, int)> right_best_, right_full_;
};

// The scripted head's tuning set: query q is {q}, and arm 0 at probability 0.5 is every query's exact answer.
struct ScriptedQueries {
    std::vector<std::vector<float>> xs;
    std::vector<HeadResult> truth;
};

ScriptedQueries scripted_queries(int queries) {
    ScriptedQueries s;
    s.truth.resize(queries);
    for (int q = 0; q < queries; ++q) {
        s.xs.push_back({static_cast<float>(q)});
        s.truth[q].top = {0};
        s.truth[q].p_top = 0.5f;
    }
    return s;
}

Calibration calibrate_scripted(ScriptedHead& head, int queries, double delta, double best_arm_share = 0.5) {
    const ScriptedQueries s = scripted_queries(queries);
    AdaptiveParams p;
    p.delta = delta;
    return calibrate(head, s.xs, s.truth, p, 0, 1, best_arm_share);
}

// calibrate_over_shares: the shares in turn until one meets both budgets. The scripted head picks a wrong arm on
// queries 0 and 1 while f_b < 0.1, and its full run misses the estimate on queries 2, 3 and 4 whatever f_ln. Delta 0.04
// allows 4 failures: at share 0.5 f_b's search may spend 2, so it takes f_b small (2 wrong arms) and the full run then
// fails 5, over budget even at f_ln's top; at share 0.25 (1) f_b must reach 0.1, and the full run fails 3: met. Delta
// 0.05 allows 5 (3 for f_b): 2 + 3 fit at share 0.5, and 0.25 is never tried.
Calibration calibrate_shares(ScriptedHead& head, double delta, const std::vector<double>& shares) {
    const ScriptedQueries s = scripted_queries(100);
    AdaptiveParams p;
    p.delta = delta;
    return calibrate_over_shares(head, s.xs, s.truth, p, 0, 1, shares);
}

TEST(AdaptiveSoftmaxCalibration, TriesTheBestArmSharesInTurnUntilTheBudgetIsMet) {
    auto right_arm = [](double f_b, int q) { return f_b >= 0.1 * (1 - 1e-12) || q >= 2; };
    ScriptedHead* self = nullptr;
    ScriptedHead head(right_arm, [&](double, int q) { return right_arm(self->run_fudge_best, q) && !(q >= 2 && q <= 4); });
    self = &head;
    const Calibration missed_then_met = calibrate_shares(head, 0.04, {0.5, 0.25});
    EXPECT_TRUE(missed_then_met.met);
    EXPECT_EQ(missed_then_met.best_arm_share, 0.25);
    EXPECT_EQ(missed_then_met.allowed, 4);
    EXPECT_EQ(missed_then_met.allowed_best, 1);
    EXPECT_GE(missed_then_met.fudge_best, 0.1 * (1 - 1e-12));
    const Calibration only_half = calibrate_shares(head, 0.04, {0.5});
    EXPECT_EQ(only_half.best_arm_share, 0.5);
    EXPECT_LT(only_half.fudge_best, 0.1);
    EXPECT_FALSE(only_half.met);
    EXPECT_EQ(only_half.failures_at_top_norm, 5);
    EXPECT_GT(missed_then_met.runs, only_half.runs); // both calibrations' searches
    // met at the first share: the second is never tried, and the runs are the first calibration's
    const Calibration first = calibrate_shares(head, 0.05, {0.5, 0.25});
    const Calibration alone = calibrate_shares(head, 0.05, {0.5});
    EXPECT_TRUE(first.met);
    EXPECT_EQ(first.best_arm_share, 0.5);
    EXPECT_EQ(first.runs, alone.runs);
    EXPECT_THROW(calibrate_shares(head, 0.05, {}), winnow::Error);
}

TEST(AdaptiveSoftmaxCalibration, TriesTheTheoryConstantsFirstAndFlagsAMissedBudget) {
    // wrong on 30 of 100 queries whatever the factor: delta 0.1 allows 10, so not even f = 1 meets the budget
    ScriptedHead hopeless([](double, int q) { return q % 10 >= 3; });
    const Calibration c = calibrate_scripted(hopeless, 100, 0.1);
    EXPECT_FALSE(c.met);
    EXPECT_FALSE(c.met_best);
    EXPECT_FALSE(c.met_norm);
    EXPECT_EQ(c.allowed, 10);
    EXPECT_EQ(c.allowed_best, 5);
    ASSERT_FALSE(hopeless.tried_best.empty());
    EXPECT_EQ(hopeless.tried_best.front(), 1.0); // the most conservative factor is the first one tried
    EXPECT_DOUBLE_EQ(hopeless.tried_norm.front(), winnow::kMaxFudgeNorm);
    // the factors do not change the failures here, so the cheapest factor fails as often as the bound: it is kept
    EXPECT_LT(c.fudge_best, 1.1e-6);
    EXPECT_LT(c.fudge_norm, 1.1e-6);
    // a head whose f_ln is not monotone above 1 (the reference's normalizer) is searched up to 1 only
    ScriptedHead reference_like([](double, int q) { return q % 10 >= 3; });
    reference_like.max_norm = 1.0;
    calibrate_scripted(reference_like, 100, 0.1);
    EXPECT_EQ(reference_like.tried_norm.front(), 1.0);
    EXPECT_LE(*std::max_element(reference_like.tried_norm.begin(), reference_like.tried_norm.end()), 1.0);

    // right whenever f >= 0.01: the search finds 0.01 within its tolerance (0.01 in log10 f), budget met
    ScriptedHead threshold([](double f, int) { return f >= 0.01 * (1 - 1e-12); });
    const Calibration t = calibrate_scripted(threshold, 100, 0.1);
    EXPECT_TRUE(t.met);
    EXPECT_EQ(threshold.tried_best.front(), 1.0);
    EXPECT_NEAR(std::log10(t.fudge_best), -2.0, 0.011);
    EXPECT_NEAR(std::log10(t.fudge_norm), -2.0, 0.011);

    // always right: the smallest factor of the range
    ScriptedHead easy([](double, int) { return true; });
    const Calibration e = calibrate_scripted(easy, 100, 0.1);
    EXPECT_TRUE(e.met);
    EXPECT_LT(e.fudge_best, 1.1e-6);
}

// The reference spent the whole failure budget on f_b; then any estimate failure broke it and f_ln (capped at 1) had
// nothing to turn (bench/reports/adaptive-head-rotation-smollm2.md, diagnosis). Delta 0.1 on 100 queries allows 10.
TEST(AdaptiveSoftmaxCalibration, SplitsTheBudgetAndLetsTheNormalizerFactorExceedOne) {
    // arm choice: 8 wrong below f_b = 0.1, 3 wrong from it on. With the whole budget (10) f_b would run to 1e-6; half
    // of it (5) stops the search at 0.1.
    auto best = [](double f, int q) { return q >= (f >= 0.1 * (1 - 1e-12) ? 3 : 8); };
    // full run: 3 wrong arms always, and 20 estimate failures below f_ln = 10 (more than the theory constants)
    auto full = [](double f, int q) { return q >= 3 && (f >= 10 * (1 - 1e-12) || q >= 23); };
    ScriptedHead head(best, full);
    const Calibration c = calibrate_scripted(head, 100, 0.1);
    EXPECT_EQ(c.allowed, 10);
    EXPECT_EQ(c.allowed_best, 5);
    EXPECT_TRUE(c.met);
    EXPECT_NEAR(std::log10(c.fudge_best), -1.0, 0.011);
    EXPECT_NEAR(std::log10(c.fudge_norm), 1.0, 0.011);
    EXPECT_GT(c.fudge_norm, 1.0);

    // 12 wrong arms in the full run whatever f_ln (more than the 10 allowed), and 20 estimate failures below
    // f_ln = 10: the budget is missed, and the factor is the smallest that fails no more often than f_ln's bound (10),
    // not the bound itself (1000), whose extra reads buy nothing
    auto full_floor = [](double f, int q) { return q >= 12 && (f >= 10 * (1 - 1e-12) || q >= 32); };
    ScriptedHead floor_head(best, full_floor);
    const Calibration m = calibrate_scripted(floor_head, 100, 0.1);
    EXPECT_TRUE(m.met_best);
    EXPECT_FALSE(m.met_norm);
    EXPECT_FALSE(m.met);
    EXPECT_NEAR(std::log10(m.fudge_norm), 1.0, 0.011);

    // f_b's share of the budget (rounded up): 0.25 of 10 allows 3 wrong arms, which f_b = 0.1 still meets; 0.2 allows 2,
    // which not even f_b = 1 does (3 wrong arms)
    ScriptedHead quarter(best, full);
    const Calibration q = calibrate_scripted(quarter, 100, 0.1, 0.25);
    EXPECT_EQ(q.allowed_best, 3);
    EXPECT_TRUE(q.met_best);
    EXPECT_NEAR(std::log10(q.fudge_best), -1.0, 0.011);
    ScriptedHead fifth(best, full);
    const Calibration f = calibrate_scripted(fifth, 100, 0.1, 0.2);
    EXPECT_EQ(f.allowed_best, 2);
    EXPECT_FALSE(f.met_best);
    EXPECT_EQ(f.failures_at_top_best, 3);
    EXPECT_EQ(f.failures_at_top_norm, 3); // the full run at f_ln's top: the 3 wrong arms
    EXPECT_THROW(calibrate_scripted(fifth, 100, 0.1, 0.0), winnow::Error);
}

// A zero variance estimate short of d' is not an exact value: arms 0 and 1 are zero on the 32 heavy columns that
// come first in every column order and differ only on 32 light ones (arm 1 wins). Read to the warm-up cap, both
// estimate 0 with variance 0; the heavy arms 2..7 are eliminated. Treating variance 0 as exact returned arm 0.
TEST(AdaptiveSoftmax, ZeroVarianceShortOfDPrimeIsNotExact) {
    const int n = 8, d = 64;
    Instance in{n, d, std::vector<float>(static_cast<size_t>(n) * d, 0.0f), std::vector<float>(d, 1.0f)};
    for (int j = 0; j < 32; ++j)
        for (int i = 2; i < n; ++i) in.A[static_cast<size_t>(i) * d + j] = -1.0f;
    for (int j = 32; j < d; ++j) {
        in.A[static_cast<size_t>(0) * d + j] = 1.0f / 1024;
        in.A[static_cast<size_t>(1) * d + j] = 2.0f / 1024;
    }
    const auto ex = exact_softmax(in.A, n, d, in.x);
    ASSERT_EQ(ex.top[0], 1);
    AdaptiveSoftmax faithful(in.A, n, d);
    auto fast = winnow::head::FastAdaptiveSoftmax(std::make_shared<ColumnMajorHead>(in.A, n, d, false), 1);
    for (AdaptiveAlgorithm* algo : {static_cast<AdaptiveAlgorithm*>(&faithful), static_cast<AdaptiveAlgorithm*>(&fast)})
        for (uint64_t seed = 0; seed < 20; ++seed) {
            AdaptiveParams p;
            p.seed = seed;
            EXPECT_EQ(algo->run(in.x, p).head.top[0], 1) << algo->name() << " seed " << seed;
            EXPECT_EQ(algo->best_arms_only(in.x, p)[0], 1) << algo->name() << " seed " << seed;
        }
}

TEST(AdaptiveSoftmax, BothEntryPointsCheckTheQueryLength) {
    const auto in = planted(16, 32, 4);
    AdaptiveSoftmax faithful(in.A, in.n, in.d);
    auto fast = winnow::head::FastAdaptiveSoftmax(std::make_shared<ColumnMajorHead>(in.A, in.n, in.d, false), 1);
    const std::vector<float> short_x(in.d - 1, 1.0f);
    for (AdaptiveAlgorithm* algo : {static_cast<AdaptiveAlgorithm*>(&faithful), static_cast<AdaptiveAlgorithm*>(&fast)}) {
        EXPECT_THROW(algo->run(short_x, AdaptiveParams{}), winnow::Error) << algo->name();
        EXPECT_THROW(algo->best_arms_only(short_x, AdaptiveParams{}), winnow::Error) << algo->name();
    }
}

TEST(AdaptiveSoftmax, LogSumExpKernelMatchesDoublePrecision) {
    std::mt19937_64 rng(8);
    std::normal_distribution<float> nd(0.0f, 4.0f);
    for (size_t n : {size_t{1}, size_t{7}, size_t{49152}}) {
        std::vector<float> v(n);
        for (auto& x : v) x = nd(rng);
        double mx = v[0], s = 0;
        for (float x : v) mx = std::max(mx, static_cast<double>(x));
        for (float x : v) s += std::exp(x - mx);
        EXPECT_NEAR(log_sum_exp(v), mx + std::log(s), 1e-6) << n;
    }
}

// The text regions: tuning windows end before the boundary, test windows start at or after it.
TEST(AdaptiveSoftmaxCalibration, TuningAndTestWindowsShareNoToken) {
    const size_t tokens = 7639, boundary = tuning_region_end(tokens, 0.2);
    EXPECT_EQ(boundary, 1528u);
    const auto tune = window_starts(0, boundary, 64, 200, "tuning"), test = window_starts(boundary, tokens, 64, 800, "test");
    ASSERT_EQ(tune.size(), 200u);
    ASSERT_EQ(test.size(), 800u);
    for (size_t s : tune) EXPECT_LE(s + 64, boundary);
    for (size_t s : test) {
        EXPECT_GE(s, boundary);
        EXPECT_LE(s + 64, tokens);
    }
    EXPECT_THROW(window_starts(0, 40, 64, 10, "tuning"), winnow::Error);
    EXPECT_THROW(tuning_region_end(100, 1.0), winnow::Error);
}

std::string write_temp(const std::string& name, const std::string& bytes) {
    const auto path = (std::filesystem::temp_directory_path() / ("winnow-head-test-" + std::to_string(::getpid()) + "-" + name)).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
}

TEST(HeadCalibrationFile, ModelContentHashFollowsTheBytesNotThePath) {
    std::string bytes(100037, '\0'); // not a multiple of 32: the tail path too
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 131 + 7);
    const auto a = write_temp("a.gguf", bytes), b = write_temp("b.gguf", bytes);
    bytes[bytes.size() / 2] ^= 1;
    const auto c = write_temp("c.gguf", bytes);
    bytes.back() ^= 1;
    const auto e = write_temp("e.gguf", bytes.substr(0, bytes.size() - 1));
    EXPECT_EQ(model_content_hash(a), model_content_hash(b));
    EXPECT_NE(model_content_hash(a), model_content_hash(c));
    EXPECT_NE(model_content_hash(c), model_content_hash(e));
    EXPECT_EQ(model_content_hash(a).substr(0, 7), "100037:");
    EXPECT_THROW(model_content_hash(a + ".missing"), winnow::Error);
    for (const auto& p : {a, b, c, e}) std::filesystem::remove(p);
}

TEST(HeadCalibrationFile, RejectsAnotherModelOrEpsilonInOneLine) {
    HeadCalibrationFile f;
    f.model = "m.gguf";
    f.model_hash = "98362432:00000000000000aa";
    f.epsilon = 0.3;
    f.put({"fast", 0.01, 0.1, 0.5, false});
    const auto path = write_temp("m.head.json", "");
    f.save(path);
    const auto g = HeadCalibrationFile::load(path);
    EXPECT_EQ(g.model_hash, f.model_hash);
    ASSERT_NE(g.find("fast", 0.01), nullptr);
    EXPECT_FALSE(g.find("fast", 0.01)->met);
    EXPECT_NO_THROW(g.check_matches(path, f.model_hash, 0.3));
    auto message = [&](const std::string& hash, double eps) {
        try {
            g.check_matches(path, hash, eps);
        } catch (const winnow::Error& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    const std::string other_model = message("98362432:00000000000000ab", 0.3), other_eps = message(f.model_hash, 0.2);
    EXPECT_NE(other_model.find("another model"), std::string::npos) << other_model;
    EXPECT_NE(other_eps.find("eps = 0.3"), std::string::npos) << other_eps;
    for (const auto& m : {other_model, other_eps}) EXPECT_EQ(m.find('\n'), std::string::npos);
    HeadCalibrationFile old = f; // written before the hash was recorded: cannot be matched, so refused
    old.model_hash.clear();
    old.save(path);
    EXPECT_THROW(HeadCalibrationFile::load(path).check_matches(path, f.model_hash, 0.3), winnow::Error);
    std::filesystem::remove(path);
}

// f_ln above 1 (more normalizer reads than the theory constants) is a calibrated value and survives a round trip; past
// kMaxFudgeNorm, or f_b above 1, the file is refused, and so is a run given such factors.
TEST(HeadCalibrationFile, KeepsANormalizerFactorAboveOneAndRefusesOneAboveTheBound) {
    HeadCalibrationFile f;
    f.model = "m.gguf";
    f.model_hash = "98362432:00000000000000aa";
    f.put({"fast", 0.05, 0.1, 25.0, true});
    const auto path = write_temp("range.head.json", "");
    f.save(path);
    ASSERT_NE(HeadCalibrationFile::load(path).find("fast", 0.05), nullptr);
    EXPECT_DOUBLE_EQ(HeadCalibrationFile::load(path).find("fast", 0.05)->fudge_norm, 25.0);
    for (const auto& [fb, fln] : {std::pair{0.1, 2 * winnow::kMaxFudgeNorm}, std::pair{1.5, 1.0}}) {
        HeadCalibrationFile bad = f;
        bad.factors.clear();
        bad.put({"fast", 0.05, fb, fln, true});
        bad.save(path);
        EXPECT_THROW(HeadCalibrationFile::load(path), winnow::Error) << fb << " " << fln;
    }
    std::filesystem::remove(path);
    AdaptiveParams p;
    p.fudge_norm = 25.0;
    EXPECT_NO_THROW(check_params(p, 10));
    p.fudge_norm = 2 * winnow::kMaxFudgeNorm;
    EXPECT_THROW(check_params(p, 10), winnow::Error);
}

} // namespace

namespace {

using namespace winnow::head;

// Mean samples per query over the first 20 tuning queries of the calibration setting, at factor f_ln.
double norm_phase_reads(AdaptiveSoftmax& head, const std::vector<std::vector<float>>& queries, double f_ln) {
    AdaptiveParams p;
    p.delta = 0.05;
    p.beta = 4.0f;
    p.fudge_norm = f_ln;
    double reads = 0;
    for (int q = 0; q < 20; ++q) {
        p.seed = 500 + q;
        const auto r = head.run(queries[q], p);
        reads += static_cast<double>(r.cost.samples) / 20;
    }
    return reads;
}

// With f_ln on the targets only (FaithfulOptions::norm_factor_on_targets_only) a larger f_ln reads more, decade after
// decade, up to kMaxFudgeNorm; in the reference, f_ln also shrinks the lower bounds alpha_i that the targets grow
// with, so its reads fall again at large f_ln (the normalizer read nothing at f_ln = 1000 on SmolLM2): a calibration
// search over f_ln > 1 needs the monotone form.
TEST(AdaptiveSoftmaxCalibration, NormalizerFactorOnTargetsOnlyIsMonotone) {
    const int n = 512, d = 1024;
    const auto [base, tune, test] = winnow::test::leaning_queries(n, d);
    AdaptiveSoftmax monotone(base.A, n, d, {.norm_factor_on_targets_only = true}), reference(base.A, n, d);
    std::vector<double> mono, ref;
    for (double f : {0.01, 0.1, 1.0, 10.0, 100.0, 1000.0}) {
        mono.push_back(norm_phase_reads(monotone, tune, f));
        ref.push_back(norm_phase_reads(reference, tune, f));
        std::printf("f_ln %g: samples per query: targets only %.0f, reference %.0f\n", f, mono.back(), ref.back());
    }
    // measured (samples per query of n d' = 524288): 99k, 311k, 473k, then every product from 100 on; the reference:
    // the same to f_ln = 1, then 506k, 249k, 103k
    for (size_t i = 1; i < mono.size(); ++i) EXPECT_GE(mono[i], mono[i - 1]) << i;
    EXPECT_GT(mono.back(), mono[2]); // f_ln = 1000 reads more than the theory constants
    EXPECT_LT(ref.back(), ref[2] / 2);
}

// FaithfulOptions::warmup_without_norm_factor: the warm-up's samples (and the arms the elimination starts from) no
// longer move with f_ln, while the normalizer phase still does; without the option the warm-up follows f_ln.
TEST(AdaptiveSoftmax, WarmupWithoutNormFactorLeavesTheWarmupToTheTheoryConstant) {
    const auto in = winnow::test::flat(128, 512, 21);
    auto warmups = [&](bool fixed) {
        std::vector<int64_t> warm, norm;
        for (double f : {0.01, 1.0, 100.0}) {
            AdaptiveSoftmax as(in.A, in.n, in.d, {.batched_warmup = false, .norm_factor_on_targets_only = true, .warmup_without_norm_factor = fixed});
            AdaptiveParams p;
            p.fudge_norm = f;
            p.warmup_cap = 1.0; // uncapped, so the variance target decides where each arm stops
            const auto r = as.run(in.x, p);
            warm.push_back(r.cost.warmup);
            norm.push_back(r.cost.normalizer);
        }
        return std::pair(warm, norm);
    };
    const auto [fixed_warm, fixed_norm] = warmups(true);
    const auto [ref_warm, ref_norm] = warmups(false);
    std::printf("warm-up samples at f_ln 0.01 / 1 / 100: fixed %lld %lld %lld, following f_ln %lld %lld %lld\n", (long long)fixed_warm[0],
                (long long)fixed_warm[1], (long long)fixed_warm[2], (long long)ref_warm[0], (long long)ref_warm[1], (long long)ref_warm[2]);
    EXPECT_EQ(fixed_warm[0], fixed_warm[1]);
    EXPECT_EQ(fixed_warm[1], fixed_warm[2]);
    EXPECT_EQ(fixed_warm[1], ref_warm[1]); // f_ln = 1: the two rules agree
    EXPECT_LT(ref_warm[0], ref_warm[1]);
    EXPECT_LT(ref_warm[1], ref_warm[2]);
    EXPECT_LT(fixed_norm[0], fixed_norm[2]); // f_ln still moves the normalizer phase
}

} // namespace
