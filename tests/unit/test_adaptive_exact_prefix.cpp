// The faithful AdaptiveSoftmax with an exact prefix (FaithfulOptions::exact_prefix, issue 14): every arm reads the
// query's m heaviest columns exactly and only the rest is sampled. Held to the same accounting and PAC protocols as
// the reference, plus mutants that must fail: no tail pilot (an arm that read only the prefix reports variance 0),
// and the under-sampling factors.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "planted_instances.h"

#include "head/adaptive_softmax.h"
#include "head/exact_head.h"
#include "winnow/error.h"

namespace {

using namespace winnow::head;
using winnow::test::Instance;

constexpr int kTrials = 500;

TEST(ExactPrefixOrder, HeaviestColumnsFirstThenTheTailInKeyOrder) {
    std::vector<double> l1(64);
    std::vector<float> x(64);
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<double> u(0.1, 1.0);
    for (auto& w : l1) w = u(rng);
    for (auto& v : x) v = static_cast<float>(u(rng) - 0.55);
    x[7] = 0; // a zero column stays out of the order
    const ColumnOrder ref = gumbel_column_order(l1, x, 11);
    ColumnOrder o = ref;
    lead_with_exact_prefix(o, 10);
    ASSERT_EQ(o.size(), ref.size());
    EXPECT_EQ(o.size(), 63);
    EXPECT_EQ(o.exact_prefix, 10);
    // the prefix: the 10 largest shares, largest first
    std::vector<double> shares = ref.share;
    std::sort(shares.rbegin(), shares.rend());
    for (int t = 0; t < 10; ++t) EXPECT_EQ(o.share[t], shares[t]) << t;
    // the tail: every other column, keys still descending (the Gumbel order of the rest)
    for (int t = 11; t < o.size(); ++t) EXPECT_GT(o.key[t - 1], o.key[t]) << t;
    for (int t = 10; t < o.size(); ++t) EXPECT_LE(o.share[t], shares[9]) << t;
    std::vector<int32_t> a = o.column, b = ref.column;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    EXPECT_EQ(a, b);
    // clamped to the order's size
    ColumnOrder all = ref;
    lead_with_exact_prefix(all, 1000);
    EXPECT_EQ(all.exact_prefix, 63);
}

TEST(ExactPrefix, ExactWhenThePrefixCoversEveryColumn) {
    const auto in = winnow::test::flat(128, 96, 4);
    AdaptiveSoftmax as(in.A, in.n, in.d, {.exact_prefix = 96});
    const auto r = as.run(in.x, AdaptiveParams{});
    const auto ex = exact_softmax(in.A, in.n, in.d, in.x);
    EXPECT_EQ(r.head.top, ex.top);
    EXPECT_NEAR(r.head.p_top, ex.p_top, 1e-6 * ex.p_top); // the same products summed in another order
    EXPECT_EQ(r.cost.samples, r.cost.baseline);
}

TEST(ExactPrefix, RejectsNegativeCounts) {
    const auto in = winnow::test::planted(8, 16, 1);
    const FaithfulOptions negative_prefix{.exact_prefix = -1}, negative_pilot{.exact_prefix = 4, .tail_pilot = -1};
    EXPECT_THROW(AdaptiveSoftmax(in.A, in.n, in.d, negative_prefix), winnow::Error);
    EXPECT_THROW(AdaptiveSoftmax(in.A, in.n, in.d, negative_pilot), winnow::Error);
}

// The independent recount of the paper's metric, with the prefix read once per arm and the tail re-read as the
// threshold moves, batched or per-arm pulls: distinct (arm, column) reads == charged samples, and every arm is
// charged at least the prefix plus the pilot.
TEST(ExactPrefix, DistinctReadsEqualChargedSamples) {
    const FaithfulOptions settings[] = {{.exact_prefix = 1},
                                        {.exact_prefix = 32},
                                        {.exact_prefix = 32, .batched_warmup = false, .batched_elimination = false},
                                        {.exact_prefix = 0, .batched_warmup = false, .batched_elimination = false},
                                        {.exact_prefix = 32, .batched_warmup = false, .batched_elimination = false, .warmup_skips_negligible = true},
                                        {.exact_prefix = 0, .warmup_skips_negligible = true}};
    for (const auto& in : {winnow::test::planted(300, 2048, 3), winnow::test::flat(128, 512, 9), winnow::test::planted(40, 8, 1)}) {
        for (const FaithfulOptions& o : settings) {
            const int m = o.exact_prefix;
            AdaptiveSoftmax as(in.A, in.n, in.d, o);
            ReadRecorder rec;
            as.set_read_recorder(&rec);
            for (const auto& [r, recount_matches] : winnow::test::runs_recounted(as, in, rec)) {
                EXPECT_TRUE(recount_matches) << "n " << in.n << " d " << in.d << " m " << m << " k " << r.head.top.size() << " batched " << o.batched_warmup;
                EXPECT_GE(r.cost.samples, static_cast<int64_t>(in.n) * std::min(in.d, m > 0 ? m + 16 : 1));
                EXPECT_EQ(r.cost.warmup + r.cost.best_arm + r.cost.normalizer, r.cost.samples);
            }
        }
    }
}

auto prefix_run(int m, int pilot, bool batched = true, bool prune = false) {
    return [m, pilot, batched, prune](const Instance& in, const AdaptiveParams& p, int) {
        AdaptiveSoftmax as(in.A, in.n, in.d,
                           {.exact_prefix = m, .tail_pilot = pilot, .batched_warmup = batched, .batched_elimination = batched, .warmup_skips_negligible = prune});
        return std::pair(as.run(in.x, p), exact_softmax(in.A, in.n, in.d, in.x, p.beta));
    };
}

// Flat instances with the energy of x in a few coordinates, like a query in the PCA basis: x_j = +-4 on 16 columns
// and +-1 elsewhere. The flat construction keeps <A_i, x> = l_i exactly, small gaps and p_top ~ 0.05.
Instance lead_heavy(uint64_t seed) {
    Instance in = winnow::test::flat(128, 512, seed);
    // rescale 16 coordinates of x and the matching columns of A inversely: the logits are unchanged, but the
    // column weights w_j |x_j| now favour those columns
    for (int j = 0; j < 16; ++j) {
        in.x[j] *= 4.0f;
        for (int i = 0; i < in.n; ++i) in.A[static_cast<size_t>(i) * in.d + j] /= 4.0f;
    }
    return in;
}

// PAC at the theory constants with an exact prefix, on flat instances and on lead-heavy ones; and the mutants that
// must fail: the under-sampling factors, and no tail pilot (an arm that read only the prefix has Horvitz-Thompson
// variance 0, so the warm-up stops and elimination trusts prefix-only estimates).
TEST(ExactPrefix, PacFailureRateAtMostDeltaAndMutantsFail) {
    auto trials = [](auto run, double fudge, bool heavy) {
        AdaptiveParams p;
        p.delta = 0.1;
        p.epsilon = 0.3;
        p.fudge_best = p.fudge_norm = fudge;
        return winnow::test::pac_trials(kTrials, p, [heavy](int t) { return heavy ? lead_heavy(7000 + t) : winnow::test::flat(128, 512, 5000 + t); },
                                        run);
    };
    for (bool heavy : {false, true}) {
        for (int setting = 0; setting < 3; ++setting) {
            const bool batched = setting == 0, prune = setting == 2;
            const auto o = trials(prefix_run(32, 16, batched, prune), 1.0, heavy);
            std::printf("%s, prefix 32, %s pulls%s: %d / %d failures (allowed %.0f), mean p_top %.3f, gain %.2fx\n", heavy ? "lead-heavy" : "flat",
                        batched ? "batched" : "per-arm", prune ? ", warm-up pruned" : "", o.failures, kTrials, o.allowed, o.mean_p_top, 1 / o.mean_fraction);
            EXPECT_LE(o.failures, o.allowed);
        }
        const auto under = trials(prefix_run(32, 16, false), 3e-2, heavy);
        std::printf("  under-sampled (f = 0.03): %d failures\n", under.failures);
        EXPECT_GT(under.failures, under.allowed);
        const auto no_pilot = trials(prefix_run(32, 0), 1.0, heavy);
        std::printf("  no tail pilot: %d failures\n", no_pilot.failures);
        EXPECT_GT(no_pilot.failures, no_pilot.allowed);
    }
}

// Where the prefix carries the logits (16 heavy columns, a faint tail; the winner ~20 nats above the rest, beyond
// the pruning margin ln(16 n / eps) = 9.5) most arms are provably negligible after the prefix and pilot, so the
// pruned warm-up must cost fewer samples and keep the answer (a rule that never fires, or the flag ignored, fails).
TEST(ExactPrefix, PrunedWarmUpSkipsNegligibleArms) {
    const int n = 256, d = 1024;
    AdaptiveParams p;
    p.delta = 0.1;
    int64_t plain_warmup = 0, pruned_warmup = 0;
    int plain_ok = 0, pruned_ok = 0;
    for (int t = 0; t < 20; ++t) {
        Instance in{n, d, std::vector<float>(static_cast<size_t>(n) * d), std::vector<float>(d, 1.0f)};
        std::mt19937_64 rng(300 + t);
        std::normal_distribution<float> head(0.0f, 1.0f), tail(0.0f, 1e-3f);
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < d; ++j) in.A[static_cast<size_t>(i) * d + j] = j < 16 ? (i == 0 ? 2.0f : head(rng)) : tail(rng);
        const auto ex = exact_softmax(in.A, in.n, in.d, in.x, p.beta);
        p.seed = t;
        for (bool prune : {false, true}) {
            AdaptiveSoftmax as(in.A, in.n, in.d, {.exact_prefix = 16, .batched_warmup = false, .batched_elimination = false, .warmup_skips_negligible = prune});
            const auto r = as.run(in.x, p);
            (prune ? pruned_warmup : plain_warmup) += r.cost.warmup;
            (prune ? pruned_ok : plain_ok) += winnow::test::success(r, ex, p.epsilon);
        }
    }
    std::printf("warm-up samples over 20 queries: %lld plain, %lld pruned; success %d / %d\n", static_cast<long long>(plain_warmup),
                static_cast<long long>(pruned_warmup), plain_ok, pruned_ok);
    EXPECT_LT(pruned_warmup, plain_warmup * 3 / 4);
    EXPECT_EQ(pruned_ok, 20);
}

} // namespace

#include <set>

#include "head/calibration.h"

namespace {

// A stand-in head that always answers right and records the seeds it was run with.
class RecordingHead final : public AdaptiveAlgorithm {
public:
    explicit RecordingHead(HeadResult truth) : truth_(std::move(truth)) {}
    AdaptiveResult run(std::span<const float>, const AdaptiveParams& p) override {
        seeds.push_back(p.seed);
        AdaptiveResult r;
        r.head = truth_;
        return r;
    }
    std::vector<int32_t> best_arms_only(std::span<const float>, const AdaptiveParams& p) override {
        seeds.push_back(p.seed);
        return truth_.top;
    }
    int n() const override { return 4; }
    int d() const override { return 2; }
    const char* name() const override { return "recording"; }
    std::vector<uint64_t> seeds;

private:
    HeadResult truth_;
};

// calibrate(..., repeats): every factor tried runs each tuning query `repeats` times, each run with its own noise
// seed, and the failure budget is that of repeats x |queries| trials.
TEST(CalibrationRepeats, EveryTuningQueryRunsRepeatsTimesWithFreshSeeds) {
    HeadResult truth;
    truth.top = {1};
    truth.p_top = 0.5f;
    const std::vector<std::vector<float>> queries(10, std::vector<float>{1.0f, 0.0f});
    const std::vector<HeadResult> exact(10, truth);
    AdaptiveParams p;
    p.delta = 0.1;
    RecordingHead once(truth), twice(truth);
    const Calibration c1 = calibrate(once, queries, exact, p, 0, 1), c2 = calibrate(twice, queries, exact, p, 0, 2);
    EXPECT_EQ(c1.runs, c2.runs);
    EXPECT_EQ(twice.seeds.size(), 2 * once.seeds.size());
    EXPECT_EQ(c1.allowed, 1); // floor(0.1 x 10)
    EXPECT_EQ(c2.allowed, 2); // floor(0.1 x 20)
    // one pass over the factor f = 1: seeds base .. base + 19, all distinct
    const std::set<uint64_t> first(twice.seeds.begin(), twice.seeds.begin() + 20);
    EXPECT_EQ(first.size(), 20u);
    EXPECT_EQ(*first.begin(), p.seed);
    EXPECT_THROW(calibrate(once, queries, exact, p, 0, 0), winnow::Error);
}

} // namespace
