// The fast AdaptiveSoftmax (Des Raj estimator, column-major stored values, exact rows for small rounds): its layout
// against the stored rows, exactness when every arm is read in full, determinism per seed and thread count, the
// (eps, delta)-PAC rate on 2000 random instances with a planted best arm (the protocol of the reference's test),
// sublinear sample growth in d, no re-reads in the cost, and calibrated held-out success.
#include <cmath>
#include <cstring>
#include <string>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "debiased_normalizer_check.h"
#include "planted_instances.h"

#include "head/adaptive_softmax.h"
#include "head/calibration.h"
#include "head/exact_head.h"
#include "head/fast_adaptive_softmax.h"
#include "head/adaptive_head.h"
#include "model/model.h"
#include "model/require_input.h"
#include "winnow/error.h"
#ifdef WINNOW_HAVE_CUDA
#include "backend/cuda/device.h"
#endif
#include "io/quant.h"

namespace {

using namespace winnow::head;
using winnow::test::Instance;
using winnow::test::planted;
using winnow::test::success;

FastAdaptiveSoftmax make_head(const Instance& in, bool q8 = false, int threads = 1, int exact_prefix = 0, double stream_cost = FastOptions{}.stream_cost) {
    return FastAdaptiveSoftmax(std::make_shared<ColumnMajorHead>(in.A, in.n, in.d, q8),
                               FastOptions{.threads = threads, .exact_prefix = exact_prefix, .stream_cost = stream_cost});
}

class ColumnLayout : public ::testing::TestWithParam<bool> {};

TEST_P(ColumnLayout, HoldsTheStoredValuesAndRowDotsMatchDoublePrecision) {
    const bool q8 = GetParam();
    const int n = 37, d = 96; // n not a multiple of the SIMD group: the columns are padded
    auto in = planted(n, d, 17);
    std::mt19937_64 rng(3);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (auto& v : in.x) v = nd(rng);
    const ColumnMajorHead H(in.A, n, d, q8);
    const std::vector<float> dense = H.dense();
    if (q8) { // exactly the Q8_0 values: ggml's reference quantizer, then its decoder
        std::vector<winnow::BlockQ8_0> blocks(static_cast<size_t>(n) * d / 32);
        std::vector<float> want(in.A.size());
        winnow::quantize_row_ref(winnow::GgmlType::Q8_0, in.A.data(), blocks.data(), in.A.size());
        winnow::dequantize_row(winnow::GgmlType::Q8_0, blocks.data(), want.data(), in.A.size());
        EXPECT_EQ(dense, want);
    } else {
        EXPECT_EQ(dense, in.A);
    }
    EXPECT_EQ(H.stride(), 64);
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < d; ++j) {
            const float v = q8 ? H.quant_column(j)[i] * winnow::fp16_to_fp32(H.scale_row(j / 32)[i]) : H.float_column(j)[i];
            ASSERT_EQ(v, dense[static_cast<size_t>(i) * d + j]) << i << "," << j;
        }
    ExactQuery prep;
    H.prepare_exact(in.x, prep);
    for (int i = 0; i < n; ++i) {
        double want = 0;
        for (int j = 0; j < d; ++j) want += static_cast<double>(dense[static_cast<size_t>(i) * d + j]) * in.x[j];
        EXPECT_NEAR(H.row_dot(i, prep), want, 1e-5);
    }
}

INSTANTIATE_TEST_SUITE_P(Storage, ColumnLayout, ::testing::Bool());

TEST(FastAdaptiveSoftmax, ExactWhenEveryArmIsReadInFull) {
    // d' = 8 < the first PullToVar step of 16: every arm is read in full, so the answer is the exact softmax up to
    // summation order (the arms are summed in fp32 SIMD column blocks: measured 2e-9 on p_top, 1e-7 on log_norm)
    for (bool q8 : {false, true}) {
        auto in = planted(40, 32, 1);
        for (int j = 8; j < 32; ++j) in.x[j] = 0; // zero columns are never sampled: d' = 8
        auto head = make_head(in, q8);
        const std::vector<float> A = head.head().dense();
        const auto r = head.run(in.x, AdaptiveParams{});
        const auto ex = exact_softmax(A, in.n, in.d, in.x);
        EXPECT_EQ(r.head.top, ex.top);
        EXPECT_NEAR(r.head.p_top, ex.p_top, 1e-5);
        EXPECT_NEAR(r.head.log_norm, ex.log_norm, 1e-5);
        EXPECT_EQ(r.cost.samples, r.cost.baseline);
        EXPECT_EQ(r.cost.baseline, 40 * 8);
    }
}

TEST(FastAdaptiveSoftmax, DeterministicForAFixedSeedAndThreadCount) {
    auto in = planted(5000, 512, 2); // enough arms for the threaded rounds
    AdaptiveParams p;
    p.seed = 1234;
    auto a = make_head(in, true, 2), b = make_head(in, true, 2);
    const auto ra = a.run(in.x, p), rb = b.run(in.x, p);
    EXPECT_EQ(ra.head.top, rb.head.top);
    EXPECT_EQ(ra.head.p_top, rb.head.p_top);
    EXPECT_EQ(ra.cost.samples, rb.cost.samples);
    auto c = make_head(in, true, 1); // the threads split arms, never one arm's sums: same answer on one thread
    const auto rc = c.run(in.x, p);
    EXPECT_EQ(rc.head.top, ra.head.top);
    EXPECT_EQ(rc.head.p_top, ra.head.p_top);
    p.seed = 99;
    auto e = make_head(in, true, 2);
    EXPECT_NE(e.run(in.x, p).head.log_norm, ra.head.log_norm); // another column order
}

// top-k: k candidates come back, best first, the same set as the exact head's on a clear instance, for both
// implementations (a round that would leave k or fewer candidates is not taken).
TEST(FastAdaptiveSoftmax, TopKReturnsKArms) {
    auto in = planted(2048, 256, 12);
    for (int i = 1; i < 5; ++i) // four more standouts below arm 0
        for (int j = 0; j < in.d; ++j) in.A[static_cast<size_t>(i) * in.d + j] = (0.8f - 0.1f * i) * in.A[j];
    AdaptiveParams p;
    p.k = 5;
    auto fast = make_head(in);
    AdaptiveSoftmax faithful(in.A, in.n, in.d);
    const auto ex = exact_softmax(fast.head().dense(), in.n, in.d, in.x, 1.0f, 5);
    for (AdaptiveAlgorithm* algo : {static_cast<AdaptiveAlgorithm*>(&fast), static_cast<AdaptiveAlgorithm*>(&faithful)}) {
        const auto r = algo->run(in.x, p);
        ASSERT_EQ(r.head.top.size(), 5u) << algo->name();
        EXPECT_EQ(r.head.top, ex.top) << algo->name();
        EXPECT_EQ(algo->best_arms_only(in.x, p).size(), 5u) << algo->name();
    }
    std::vector<float> zero(in.d, 0.0f); // no usable column: k distinct arms
    EXPECT_EQ(fast.best_arms_only(zero, p), (std::vector<int32_t>{0, 1, 2, 3, 4}));
}

TEST(FastAdaptiveSoftmax, CostHasNoReReadsAndAddsUp) {
    auto in = planted(300, 2048, 3);
    auto fast = make_head(in);
    AdaptiveSoftmax faithful(in.A, in.n, in.d);
    const auto r = fast.run(in.x, AdaptiveParams{});
    const auto ref = faithful.run(in.x, AdaptiveParams{});
    EXPECT_EQ(r.cost.warmup + r.cost.best_arm + r.cost.normalizer, r.cost.samples);
    EXPECT_EQ(r.cost.baseline, 300LL * 2048);
    EXPECT_LT(r.cost.fraction(), 1.0);
    // every product is a new sample (up to the SIMD lanes of arms a masked round does not advance)
    EXPECT_LE(r.cost.multiply_adds, r.cost.samples * 11 / 10);
    EXPECT_GT(ref.cost.multiply_adds, ref.cost.samples * 3 / 2); // the reference re-reads its prefixes
    EXPECT_LE(r.cost.bytes_read, r.cost.multiply_adds * 4 * 11 / 10); // fp32 storage: 4 bytes per product
}

// The charged samples against an independent recount (see the reference's test): the recorder marks the selected
// lanes of every streamed vector and every exact row where the kernels read them; the distinct (arm, column) pairs
// among the sampled columns must equal cost.samples. Both storages, one and two threads (threaded rounds need
// >= 4096 arms), top-1 and top-3, the theory constants and an aggressive setting.
TEST(FastAdaptiveSoftmax, DistinctReadsEqualChargedSamples) {
    auto few_columns = planted(40, 32, 1); // d' = 8: every arm read in full, exactly
    for (int j = 8; j < 32; ++j) few_columns.x[j] = 0;
    for (const auto& in : {planted(300, 2048, 3), winnow::test::flat(128, 512, 9), planted(5000, 256, 2), few_columns})
        for (bool q8 : {false, true})
            for (int threads : {1, 2})
                for (auto [prefix, stream_cost] : {std::pair{0, 3.0}, {8, 3.0}, {0, 1e-9}, {0, 1e9}}) { // always stream, always exact rows
                    auto head = make_head(in, q8, threads, prefix, stream_cost);
                    ReadRecorder rec;
                    head.set_read_recorder(&rec);
                    for (const auto& [r, recount_matches] : winnow::test::runs_recounted(head, in, rec)) {
                        EXPECT_TRUE(recount_matches) << "n " << in.n << " d " << in.d << " q8 " << q8 << " threads " << threads << " prefix " << prefix
                                                     << " stream cost " << stream_cost << " k " << r.head.top.size();
                        EXPECT_GT(r.cost.samples, 0);
                    }
                }
}

// The warm-up runs as one pass to its cap that evaluates the reference's checks (after 16, 24, 36, ... columns: does any
// arm still have a variance above the target?) on the way. Rows constant across the columns, under a query of equal
// values, make every Des Raj term the arm's exact value: variance 0 at the first check, so the warm-up must end there,
// charged 16 columns per arm with exactly those reads recorded, though the pass read on to the cap (counted in
// multiply_adds). A random instance keeps failing the checks at the theory constants and runs to the cap. Both
// storages, one and two threads, the vector and the portable path.
TEST(FastAdaptiveSoftmax, WarmUpEndsAtTheFirstPassingCheck) {
    const int n = 5000, d = 512, cap = d / 10; // d' = d: every column weighs the same
    Instance flat_rows{n, d, std::vector<float>(static_cast<size_t>(n) * d), std::vector<float>(d, 1.0f)};
    for (int i = 0; i < n; ++i) std::fill_n(flat_rows.A.begin() + static_cast<size_t>(i) * d, d, i == 42 ? 0.05f : 0.001f * static_cast<float>(i % 7));
    auto random = planted(n, d, 5);
    for (auto& v : random.x) v = 1.0f + 0.5f * std::sin(static_cast<float>(&v - random.x.data()));
    for (bool q8 : {false, true})
        for (int threads : {1, 2})
            for (bool portable : {false, true}) {
                auto head = make_head(flat_rows, q8, threads);
                head.use_portable_path(portable);
                ReadRecorder rec;
                head.set_read_recorder(&rec);
                const auto r = head.run(flat_rows.x, AdaptiveParams{});
                const std::string where = "q8 " + std::to_string(q8) + " threads " + std::to_string(threads) + " portable " + std::to_string(portable);
                EXPECT_EQ(r.cost.warmup, 16LL * n) << where;
                EXPECT_EQ(rec.distinct_samples(), r.cost.samples) << where;
                EXPECT_GE(r.cost.multiply_adds, static_cast<int64_t>(cap) * n) << where; // the pass that read on is counted
                EXPECT_EQ(r.head.top.front(), 42) << where;

                auto random_head = make_head(random, q8, threads);
                random_head.use_portable_path(portable);
                random_head.set_read_recorder(&rec);
                const auto full = random_head.run(random.x, AdaptiveParams{});
                EXPECT_EQ(full.cost.warmup, static_cast<int64_t>(cap) * n) << where;
                EXPECT_EQ(rec.distinct_samples(), full.cost.samples) << where;
            }
}

// A warm-up that ends at a later check (24, 36 or 54 columns of the schedule 16, 24, 36, 54, cap 57 here): the state it
// ends with must be the one a warm-up capped at that check reaches by running to it, bit for bit (the same answer,
// logits and normalizer), and the samples those columns cost. The query's scale sets the variances against the
// fixed target; a sweep finds scales that stop at each later check, on the vector and the portable path.
TEST(FastAdaptiveSoftmax, WarmUpEndingAtALaterCheckKeepsThatChecksState) {
    const int n = 5000, d = 576; // cap = 57: checks after 16, 24, 36 and 54 columns
    auto in = planted(n, d, 11);
    for (auto& v : in.x) v = 1.0f + 0.5f * std::sin(0.37f * static_cast<float>(&v - in.x.data()));
    for (bool portable : {false, true}) {
        std::vector<int> stops;
        for (float scale = 1e-2f; scale < 1e8f && stops.size() < 3; scale *= 1.25f) {
            std::vector<float> x = in.x;
            for (float& v : x) v *= scale;
            auto head = make_head(in, true, 2);
            head.use_portable_path(portable);
            const auto r = head.run(x, AdaptiveParams{});
            const int stop = static_cast<int>(r.cost.warmup / n);
            ASSERT_EQ(r.cost.warmup % n, 0);
            if (stop == 16 || stop == 57 || std::find(stops.begin(), stops.end(), stop) != stops.end()) continue;
            stops.push_back(stop);
            AdaptiveParams capped;
            capped.warmup_cap = (stop + 0.5) / d; // floor(cap d') = stop: the same passes, the last one to `stop`
            auto to_stop = make_head(in, true, 2);
            to_stop.use_portable_path(portable);
            const auto c = to_stop.run(x, capped);
            const std::string where = "stop " + std::to_string(stop) + " portable " + std::to_string(portable);
            EXPECT_EQ(c.cost.warmup, r.cost.warmup) << where;
            EXPECT_EQ(c.cost.samples, r.cost.samples) << where;
            EXPECT_EQ(c.head.top, r.head.top) << where;
            EXPECT_EQ(c.head.top_logits, r.head.top_logits) << where;
            EXPECT_EQ(c.head.log_norm, r.head.log_norm) << where;
        }
        std::sort(stops.begin(), stops.end());
        EXPECT_EQ(stops, (std::vector<int>{24, 36, 54})) << "portable " << portable;
    }
}

// After a query whose warm-up ended early, the next query runs the reference's passes, not one pass to the cap: the
// same sums, so the same answer, logits, normalizer and samples bit for bit, and only the reads of the wasted pass
// saved. Two heads at the same query count (so the same column order) differ only in their first query: one that runs
// to the cap (the second query takes one pass) and one that ends early (the second takes passes).
TEST(FastAdaptiveSoftmax, WarmUpPassByPassAfterAnEarlyEndGivesTheOnePassBits) {
    const int n = 5000, d = 576; // cap = 57: checks after 16, 24, 36 and 54 columns
    auto in = planted(n, d, 11);
    for (auto& v : in.x) v = 1.0f + 0.5f * std::sin(0.37f * static_cast<float>(&v - in.x.data()));
    auto scaled = [&](float scale) {
        std::vector<float> x = in.x;
        for (float& v : x) v *= scale;
        return x;
    };
    // scales whose warm-up ends at each check, and one that runs to the cap (found on one-query heads sharing one copy
    // of the columns)
    const auto columns = std::make_shared<ColumnMajorHead>(in.A, in.n, in.d, true);
    std::vector<std::pair<int, float>> by_stop;
    float full = 0, early = 0;
    for (float scale = 1e-2f; scale < 1e8f && by_stop.size() < 5; scale *= 1.25f) {
        FastAdaptiveSoftmax head(columns, FastOptions{.threads = 2});
        const int stop = static_cast<int>(head.run(scaled(scale), AdaptiveParams{}).cost.warmup / n);
        if (stop == 57 && full == 0) full = scale;
        if (stop == 16 && early == 0) early = scale;
        if (std::none_of(by_stop.begin(), by_stop.end(), [&](const auto& s) { return s.first == stop; })) by_stop.emplace_back(stop, scale);
    }
    ASSERT_GT(full, 0);
    ASSERT_GT(early, 0);
    ASSERT_GE(by_stop.size(), 5u); // 16, 24, 36, 54 and 57
    for (bool portable : {false, true})
        for (const auto& [stop, scale] : by_stop) {
            FastAdaptiveSoftmax one_pass(columns, FastOptions{.threads = 2}), passes(columns, FastOptions{.threads = 2});
            one_pass.use_portable_path(portable);
            passes.use_portable_path(portable);
            ReadRecorder rec;
            passes.set_read_recorder(&rec);
            one_pass.run(scaled(full), AdaptiveParams{});
            passes.run(scaled(early), AdaptiveParams{});
            const auto a = one_pass.run(scaled(scale), AdaptiveParams{}), b = passes.run(scaled(scale), AdaptiveParams{});
            const std::string where = "stop " + std::to_string(stop) + " portable " + std::to_string(portable);
            EXPECT_EQ(a.cost.warmup, static_cast<int64_t>(stop) * n) << where;
            EXPECT_EQ(b.cost.warmup, a.cost.warmup) << where;
            EXPECT_EQ(b.cost.samples, a.cost.samples) << where;
            EXPECT_EQ(rec.distinct_samples(), b.cost.samples) << where;
            EXPECT_EQ(b.head.top, a.head.top) << where;
            EXPECT_EQ(0, std::memcmp(a.head.top_logits.data(), b.head.top_logits.data(), a.head.top_logits.size() * sizeof(float))) << where;
            EXPECT_EQ(0, std::memcmp(&a.head.log_norm, &b.head.log_norm, sizeof a.head.log_norm)) << where;
            // the pass by pass warm-up reads no column twice: fewer multiply-adds when it ends early, the same otherwise
            if (stop < 57) EXPECT_LT(b.cost.multiply_adds, a.cost.multiply_adds) << where;
            else EXPECT_EQ(b.cost.multiply_adds, a.cost.multiply_adds) << where;
        }
}

template <class T>
bool same_bits(const T& a, const T& b) {
    return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// The portable scalar path (what a build without AVX2 runs) against the AVX2 path, on this build: the same
// operations in the same order per arm, so the same bits everywhere: answer, logits, normalizer, sample count. Planted
// and flat instances, a NaN in the head and an arm whose squared estimates overflow (max(0, inf - inf) in the variance is
// NaN on both paths now; on these instances the old scalar 0 did not change the answer either), both
// storages, one and two threads, top-1 and top-3, the theory constants and an aggressive setting. (Without AVX2 the
// two runs take the same path and the test passes trivially.)
TEST(FastAdaptiveSoftmax, PortablePathGivesTheVectorPathsBits) {
    auto with_nan = planted(600, 256, 21), overflowing = planted(600, 256, 22);
    with_nan.A[static_cast<size_t>(7) * with_nan.d + 3] = std::nanf("");
    for (int j = 0; j < overflowing.d; ++j) overflowing.A[static_cast<size_t>(7) * overflowing.d + j] *= 1e19f; // z^2 overflows: var = max(0, inf - inf)
    for (const auto& in : {planted(300, 2048, 3), winnow::test::flat(128, 512, 9), planted(5000, 256, 2), with_nan, overflowing})
        for (bool q8 : {false, true})
            for (int threads : {1, 2})
                for (int k : {1, 3})
                    for (int prefix : {0, 8}) {
                        AdaptiveParams p;
                        p.k = k;
                        p.seed = 77;
                        p.fudge_best = p.fudge_norm = k == 1 ? 1.0 : 0.05;
                        auto vector_path = make_head(in, q8, threads, prefix), portable = make_head(in, q8, threads, prefix);
                        portable.use_portable_path(true);
                        const auto a = vector_path.run(in.x, p), b = portable.run(in.x, p);
                        const std::string where = "n " + std::to_string(in.n) + " d " + std::to_string(in.d) + " q8 " + std::to_string(q8) + " threads " +
                                                  std::to_string(threads) + " k " + std::to_string(k) + " prefix " + std::to_string(prefix);
                        EXPECT_EQ(a.head.top, b.head.top) << where;
                        // bitwise, NaN included
                        EXPECT_TRUE(a.head.top_logits.size() == b.head.top_logits.size() &&
                                    std::memcmp(a.head.top_logits.data(), b.head.top_logits.data(), a.head.top_logits.size() * sizeof(float)) == 0)
                            << where;
                        EXPECT_TRUE(same_bits(a.head.log_norm, b.head.log_norm)) << where << ": " << a.head.log_norm << " vs " << b.head.log_norm;
                        EXPECT_TRUE(same_bits(a.head.p_top, b.head.p_top)) << where << ": " << a.head.p_top << " vs " << b.head.p_top;
                        EXPECT_EQ(a.cost.samples, b.cost.samples) << where;
                        EXPECT_EQ(a.cost.multiply_adds, b.cost.multiply_adds) << where;
                    }
}

TEST(FastAdaptiveSoftmax, RejectsBadOptions) {
    const auto in = planted(40, 32, 1);
    auto H = std::make_shared<ColumnMajorHead>(in.A, in.n, in.d, false);
    EXPECT_THROW(FastAdaptiveSoftmax(H, FastOptions{.exact_prefix = -1}), winnow::Error);
    EXPECT_THROW(FastAdaptiveSoftmax(H, FastOptions{.stream_cost = 0}), winnow::Error);
    EXPECT_THROW(FastAdaptiveSoftmax(H, FastOptions{.stream_cost = std::nan("")}), winnow::Error);
    EXPECT_THROW(FastAdaptiveSoftmax(H, FastOptions{.stream_cost = INFINITY}), winnow::Error);
    // a prefix longer than d' is clamped to it: every arm summed exactly, the exact answer
    FastAdaptiveSoftmax whole(H, FastOptions{.exact_prefix = 1000});
    const auto r = whole.run(in.x, AdaptiveParams{});
    const auto ex = exact_softmax(H->dense(), in.n, in.d, in.x);
    EXPECT_EQ(r.head.top, ex.top);
    EXPECT_NEAR(r.head.log_norm, ex.log_norm, 1e-5);
    EXPECT_EQ(r.cost.samples, r.cost.baseline);
}

// The warm-up's floor with a prefix: prefix + 16-column pilot even when the cap is below it (here 5 columns), and a
// prefix + pilot past d' reads every column.
TEST(FastAdaptiveSoftmax, WarmUpReadsThePrefixAndPilotWhateverTheCap) {
    auto in = planted(600, 256, 8);
    AdaptiveParams p;
    p.warmup_cap = 0.02; // floor(0.02 * 256) = 5 columns
    EXPECT_EQ(make_head(in, false, 1, 8).run(in.x, p).cost.warmup, 600LL * (8 + FastAdaptiveSoftmax::kTailPilot));
    EXPECT_EQ(make_head(in, false, 1, 0).run(in.x, p).cost.warmup, 600LL * 5);
    const auto all = make_head(in, false, 1, 250).run(in.x, p); // 250 + 16 > d' = 256
    EXPECT_EQ(all.cost.warmup, 600LL * 256);
    EXPECT_EQ(all.cost.samples, all.cost.baseline);
}

// The stream-or-exact switch (FastOptions::stream_cost) at its ends: rounds that only stream charge an arm the columns
// it reads, rounds that only take exact rows charge it the rest of d' (d' - T), so the first charges fewer samples in
// the best-arm phase on an instance where elimination runs several rounds.
TEST(FastAdaptiveSoftmax, StreamCostSetsStreamOrExactRows) {
    auto in = planted(5000, 1024, 4);
    const auto streamed = make_head(in, true, 2, 0, 1e-9).run(in.x, AdaptiveParams{}), exact_rows = make_head(in, true, 2, 0, 1e9).run(in.x, AdaptiveParams{});
    EXPECT_EQ(streamed.head.top, exact_rows.head.top);
    EXPECT_EQ(streamed.cost.warmup, exact_rows.cost.warmup); // the warm-up streams whatever the switch says
    EXPECT_LT(streamed.cost.best_arm, exact_rows.cost.best_arm);
}

// FastOptions::debiased_normalizer, as the faithful head's (the check in debiased_normalizer_check.h). On SmolLM2 it
// hurts this head (bench/reports/adaptive-head-rotation-smollm2.md), so it is off by default.
TEST(FastAdaptiveSoftmax, DebiasedNormalizerOnlyLowersTheSumOfEstimatedArms) {
    const auto run = [](const Instance& in, bool debiased, double fudge_norm) {
        FastAdaptiveSoftmax head(std::make_shared<ColumnMajorHead>(in.A, in.n, in.d, false), FastOptions{.threads = 1, .debiased_normalizer = debiased});
        AdaptiveParams p;
        p.seed = 3;
        p.fudge_norm = fudge_norm;
        return head.run(in.x, p);
    };
    auto all_exact = planted(40, 32, 1);
    for (int j = 8; j < 32; ++j) all_exact.x[j] = 0; // d' = 8: every arm read in full
    winnow::test::expect_debiasing_lowers_only_the_estimated_normalizer(run, all_exact);
}

// The exact prefix (FastOptions::exact_prefix): 8 columns carry every logit but for a 1e-4 remainder spread over the
// others. With those 8 as the prefix, an estimate's variance is the tail's only, far below the warm-up's target at its
// first check (prefix + 16-column pilot), so the warm-up ends there and the answer is the exact one to the remainder's
// size. Without a prefix the Des Raj terms swing with each of the 8 heavy columns, so the same warm-up runs on past 24
// columns: what the prefix changes, and what an estimator that let the prefix columns into its terms would not.
TEST(FastAdaptiveSoftmax, ExactPrefixLeavesOnlyTheTailsVariance) {
    const int n = 5000, d = 512, heavy = 8;
    Instance in{n, d, std::vector<float>(static_cast<size_t>(n) * d), std::vector<float>(d, 1.0f)};
    std::mt19937_64 rng(5);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < d; ++j) in.A[static_cast<size_t>(i) * d + j] = j < heavy ? nd(rng) : 1e-4f * nd(rng);
    for (bool portable : {false, true}) {
        const std::string where = "portable " + std::to_string(portable);
        auto with_prefix = make_head(in, false, 2, heavy);
        with_prefix.use_portable_path(portable);
        const auto r = with_prefix.run(in.x, AdaptiveParams{});
        const auto ex = exact_softmax(in.A, n, d, in.x);
        EXPECT_EQ(r.cost.warmup, static_cast<int64_t>(heavy + FastAdaptiveSoftmax::kTailPilot) * n) << where;
        EXPECT_EQ(r.head.top, ex.top) << where;
        EXPECT_NEAR(r.head.log_norm, ex.log_norm, 1e-3) << where;
        EXPECT_NEAR(r.head.p_top, ex.p_top, 1e-3 * ex.p_top) << where;

        auto without = make_head(in, false, 2);
        without.use_portable_path(portable);
        EXPECT_GT(without.run(in.x, AdaptiveParams{}).cost.warmup, 24LL * n) << where;
    }
}

// The prefix estimate is unbiased for the logit where the tail matters: the worst arm, eliminated in the first round
// (no pulls) after a warm-up of prefix 8 + pilot 16 columns of 256, averaged over 400 noise draws, lands on its exact logit within
// 4 standard errors. A tail estimate scaled wrongly (say the tail's mean over all 24 columns read) misses by ~a third
// of the tail's part, tens of standard errors.
TEST(FastAdaptiveSoftmax, ExactPrefixEstimateIsUnbiased) {
    auto in = planted(2000, 256, 13);
    const int prefix = 8, read = prefix + FastAdaptiveSoftmax::kTailPilot;
    auto head = make_head(in, false, 1, prefix);
    const std::vector<float> A = head.head().dense();
    std::vector<double> exact(in.n);
    for (int i = 0; i < in.n; ++i)
        for (int j = 0; j < in.d; ++j) exact[i] += static_cast<double>(A[static_cast<size_t>(i) * in.d + j]) * in.x[j];
    const int worst = static_cast<int>(std::min_element(exact.begin(), exact.end()) - exact.begin());
    AdaptiveParams p;
    p.warmup_cap = 0.01;  // the warm-up stops at prefix + pilot
    p.fudge_best = 1e-3;  // and the first elimination round pulls nobody further: narrow bounds, a loose target
    double sum = 0, sum2 = 0;
    const int draws = 400;
    for (int s = 0; s < draws; ++s) {
        p.seed = 1000 + s;
        head.best_arms_only(in.x, p);
        ASSERT_EQ(head.last_columns_read()[worst], read) << "draw " << s;
        const double e = head.last_estimates()[worst];
        sum += e, sum2 += e * e;
    }
    const double mean = sum / draws, sd = std::sqrt((sum2 - sum * mean) / (draws - 1)), se = sd / std::sqrt(draws);
    EXPECT_GT(sd, 0.0); // the tail is sampled: the estimate varies with the draw
    EXPECT_NEAR(mean, exact[worst], 4 * se) << "sd " << sd;
}

// PAC with an exact prefix of 16 columns, on the flat instances (small gaps, flat softmax: estimate failures count),
// both storages, and the under-sampled setting that must fail them.
TEST(FastAdaptiveSoftmax, PacFailureRateAtMostDeltaWithAnExactPrefix) {
    const int N = 500;
    const auto o = winnow::test::flat_pac_trials(N, [](const Instance& in, const AdaptiveParams& p, int t) {
        auto head = make_head(in, t % 2 == 1, 1, 16);
        return std::pair(head.run(in.x, p), exact_softmax(head.head().dense(), in.n, in.d, in.x, p.beta));
    });
    std::printf("fast flat PAC, exact prefix 16: %d / %d failures (allowed %.0f), mean fraction %.3f (gain %.2fx)\n", o.failures, N, o.allowed, o.mean_fraction,
                1 / o.mean_fraction);
    EXPECT_LE(o.failures, o.allowed);
    const double under = 3e-2; // the instances can fail a head: 30x below the theory constants they must
    const auto m = winnow::test::flat_pac_trials(N, [](const Instance& in, const AdaptiveParams& p, int t) {
        auto head = make_head(in, t % 2 == 1, 1, 16);
        return std::pair(head.run(in.x, p), exact_softmax(head.head().dense(), in.n, in.d, in.x, p.beta));
    }, under);
    std::printf("fast flat PAC, exact prefix 16, under-sampled (f = %g): %d / %d failures, mean fraction %.3f\n", under, m.failures, N, m.mean_fraction);
    EXPECT_GT(m.failures, m.allowed);
}

// PAC: the protocol of the reference's test, over both storages.
TEST(FastAdaptiveSoftmax, PacFailureRateAtMostDelta) {
    const auto o = winnow::test::pac_trials(2000, [](const Instance& in, const AdaptiveParams& p, int t) {
        auto head = make_head(in, t % 2 == 1);
        return std::pair(head.run(in.x, p), exact_softmax(head.head().dense(), in.n, in.d, in.x, p.beta));
    });
    std::printf("fast PAC: %d / 2000 failures (allowed %.0f), mean fraction %.3f (gain %.2fx)\n", o.failures, o.allowed, o.mean_fraction, 1 / o.mean_fraction);
    EXPECT_LE(o.failures, o.allowed);
}

// Flat instances (p_top ~ 0.05, a 0.05-nat gap at the top), both storages, and the under-sampled mutant that must
// fail (see the reference's test).
TEST(FastAdaptiveSoftmax, PacFailureRateAtMostDeltaOnFlatInstances) {
    auto run = [](const Instance& in, const AdaptiveParams& p, int t) {
        auto head = make_head(in, t % 2 == 1);
        return std::pair(head.run(in.x, p), exact_softmax(head.head().dense(), in.n, in.d, in.x, p.beta));
    };
    const int N = 500;
    const auto o = winnow::test::flat_pac_trials(N, run);
    std::printf("fast flat PAC: %d / %d failures (allowed %.0f), mean p_top %.3f, mean fraction %.3f (gain %.2fx)\n", o.failures, N, o.allowed, o.mean_p_top,
                o.mean_fraction, 1 / o.mean_fraction);
    EXPECT_LT(o.mean_p_top, 0.1);
    EXPECT_LE(o.failures, o.allowed);
    const double under = 3e-2; // 30x below the theory constants
    const auto m = winnow::test::flat_pac_trials(N, run, under);
    std::printf("fast flat PAC, under-sampled (f = %g): %d / %d failures, mean fraction %.3f\n", under, m.failures, N, m.mean_fraction);
    EXPECT_GT(m.failures, m.allowed);
}

TEST(FastAdaptiveSoftmax, SampleComplexitySublinearInD) {
    const auto per_arm = winnow::test::samples_per_arm_by_d([](const Instance& in, const AdaptiveParams& p) { return make_head(in).run(in.x, p); });
    for (double s : per_arm) EXPECT_GT(s, 0) << "the planted arm was missed";
    EXPECT_LT(per_arm[1] / per_arm[0], 10.0 / 2);
    EXPECT_LT(per_arm[2] / per_arm[0], 100.0 / 4);
}

TEST(FastAdaptiveSoftmaxCalibration, TunedFactorsKeepHeldOutSuccessAndRaiseTheGain) {
    const int n = 512, d = 1024;
    const auto [base, tune, test] = winnow::test::leaning_queries(n, d);
    auto head = make_head(base, true);
    const std::vector<float> A = head.head().dense();
    AdaptiveParams p;
    p.delta = 0.05;
    p.beta = 4.0f;
    const auto cal = calibrate(head, tune, exact_answers(A, n, d, tune, p), p);
    const auto truth = exact_answers(A, n, d, test, p);
    auto evaluate = [&](AdaptiveParams q) {
        int ok = 0;
        double frac = 0;
        for (size_t i = 0; i < test.size(); ++i) {
            q.seed = 777 + i;
            const auto r = head.run(test[i], q);
            ok += success(r, truth[i], q.epsilon);
            frac += r.cost.fraction();
        }
        return std::pair<double, double>(static_cast<double>(ok) / test.size(), test.size() / frac);
    };
    const auto [theory_success, theory_gain] = evaluate(p);
    AdaptiveParams tuned = p;
    tuned.fudge_best = cal.fudge_best;
    tuned.fudge_norm = cal.fudge_norm;
    const auto [tuned_success, tuned_gain] = evaluate(tuned);
    std::printf("fast calibration: f_b %.3g f_ln %.3g; theory %.1f%% at %.2fx, tuned %.1f%% at %.2fx\n", cal.fudge_best, cal.fudge_norm,
                100 * theory_success, theory_gain, 100 * tuned_success, tuned_gain);
    EXPECT_GE(theory_success, 1 - p.delta);
    EXPECT_GE(tuned_success, 1 - 2 * p.delta); // held out: the tuning set allows delta, plus sampling noise
    EXPECT_GE(tuned_gain, theory_gain);
}

} // namespace

namespace {

using namespace winnow::head;

// The fast head's f_ln divides the normalizer's targets only (fast_adaptive_softmax.h, change 4), so a larger f_ln
// reads at least as much and its calibration may search above 1. Measured (samples per query of n d = 524288):
// 84k, 240k, 517k at f_ln 0.01, 0.1, 1, then every product from 10 on.
TEST(FastAdaptiveSoftmax, NormalizerFactorIsMonotone) {
    const int n = 512, d = 1024;
    const auto [base, tune, test] = winnow::test::leaning_queries(n, d);
    FastAdaptiveSoftmax head(std::make_shared<ColumnMajorHead>(base.A, n, d, false), 1);
    EXPECT_EQ(head.max_fudge_norm(), winnow::kMaxFudgeNorm);
    std::vector<double> reads;
    for (double f : {0.01, 0.1, 1.0, 10.0, 100.0, 1000.0}) {
        AdaptiveParams p;
        p.delta = 0.05;
        p.beta = 2.0f;
        p.fudge_norm = f;
        double r = 0;
        for (int q = 0; q < 20; ++q) {
            p.seed = 500 + q;
            const auto res = head.run(tune[q], p);
            r += static_cast<double>(res.cost.samples) / 20;
        }
        reads.push_back(r);
        std::printf("f_ln %g: samples per query %.0f\n", f, r);
    }
    for (size_t i = 1; i < reads.size(); ++i) EXPECT_GE(reads[i], reads[i - 1] - 0.005 * n * d) << i;
    EXPECT_GT(reads.back(), reads[2]);
}

} // namespace

// AdaptiveHeadOptions::device = cuda: the faithful head is refused by name (the GPU runs the fast head only); the fast
// one needs a GPU, and without one (or without CUDA in the build) the constructor throws winnow::Error, never crashes.
TEST(AdaptiveHeadDevice, GpuHeadIsFastOnlyAndNeedsAGpu) {
    WINNOW_REQUIRE_FILE(WINNOW_FIXTURE_DIR "/tiny-llama.gguf");
    auto model = winnow::LoadedModel::load(WINNOW_FIXTURE_DIR "/tiny-llama.gguf");
    try {
        winnow::head::AdaptiveHead h(*model, {.impl = winnow::head::HeadImpl::faithful, .threads = 1, .device = winnow::Device::cuda});
        ADD_FAILURE() << "the faithful head was accepted on the GPU";
    } catch (const winnow::Error& e) {
        EXPECT_EQ(e.kind(), winnow::ErrorKind::invalid_argument);
        EXPECT_NE(std::string(e.what()).find("--head-impl fast"), std::string::npos) << e.what();
    }
#ifdef WINNOW_HAVE_CUDA
    if (winnow::cuda::device_count() > 0) GTEST_SKIP() << "a GPU is present: tests/gpu covers the GPU head";
#endif
    EXPECT_THROW(winnow::head::AdaptiveHead(*model, {.impl = winnow::head::HeadImpl::fast, .threads = 1, .device = winnow::Device::cuda}), winnow::Error);
}
