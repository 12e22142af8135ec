// The GPU AdaptiveSoftmax's host-driven query (backend/cuda/adaptive_query.h) with its host executor, HostQuerySteps,
// the CPU twin of the GPU head: it must make the CPU fast path's decisions. On random heads (q8 and f32 storage, n in
// {1000, 4097}, d in {64, 576}) and queries (planted winners, and plain random ones), for the same noise seed, it must
// give FastAdaptiveSoftmax::run's top arm and top logit (bits: both compute it by the stored row's dot product on the
// CPU), the same sample counts of the warm-up and the best-arm phase (the same survivors, pulls and exact promotions,
// round after round), and log_norm and p_top within 1e-5 (the normalizer's exp and sums differ by rounding, so its
// flags may differ at their edges; its sample count is compared loosely). Planted queries must also find the exact
// argmax. The GPU executor is held to this twin by tests/gpu/test_cuda_adaptive_head.cpp.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cuda/adaptive_query.h"
#include "head/column_major_head.h"
#include "head/fast_adaptive_softmax.h"
#include "adaptive_test_instances.h"
#include "winnow/error.h"

namespace {

using namespace winnow;
namespace ad = winnow::cuda::adaptive;

using Instance = winnow::test::AdaptiveInstance;
Instance make_instance(int n, int d, uint64_t seed, bool planted) { return winnow::test::adaptive_instance(n, d, seed, planted); }

int exact_argmax(const head::ColumnMajorHead& H, const std::vector<float>& x) {
    head::ExactQuery prep;
    H.prepare_exact(x, prep);
    int best = 0;
    float bv = -INFINITY;
    for (int i = 0; i < H.n(); ++i) {
        const float v = H.row_dot(i, prep);
        if (v > bv) bv = v, best = i;
    }
    return best;
}

TEST(AdaptiveQueryHost, MakesTheCpuFastPathsDecisions) {
    int trial = 0;
    for (bool q8 : {true, false})
        for (int n : {1000, 4097})
            for (int d : {64, 576})
                for (int kind = 0; kind < 4; ++kind, ++trial) {
                    // 0, 1, 3: planted winner; 2: a plain random query; 3: a loose warm-up threshold (small f_ln) and a
                    // high cap, so that the warm-up stops on its variance test before the cap
                    const Instance in = make_instance(n, d, 100 + trial, kind != 2);
                    auto H = std::make_shared<head::ColumnMajorHead>(in.A, n, d, q8);
                    AdaptiveParams p;
                    p.delta = kind == 1 ? 0.1 : 0.01;
                    p.fudge_best = kind == 1 ? 0.2 : 1.0;
                    p.fudge_norm = kind == 1 ? 0.5 : kind == 3 ? 0.002 : 1.0;
                    if (kind == 3) p.warmup_cap = 0.6;
                    p.seed = 7 + trial;
                    head::FastAdaptiveSoftmax cpu(H, 1);
                    const head::AdaptiveResult want = cpu.run(in.x, p);
                    ad::HostQuerySteps steps(*H);
                    ad::QueryDriver driver(*H, steps, in.x, p, head::query_noise_seed(p.seed, 1)); // the CPU head's first query
                    const head::AdaptiveResult got = driver.run();
                    SCOPED_TRACE(std::string(q8 ? "q8" : "f32") + " n " + std::to_string(n) + " d " + std::to_string(d) + " kind " +
                                 std::to_string(kind));
                    if (getenv("WINNOW_ADAPTIVE_QUERY_VERBOSE"))
                        printf("%s n %d d %d kind %d: dp %d warmup %lld best %lld norm %lld / %lld (cpu norm %lld) top %d p %.4f\n", q8 ? "q8" : "f32", n, d, kind,
                               got.cost.d_prime, (long long)got.cost.warmup, (long long)got.cost.best_arm, (long long)got.cost.normalizer,
                               (long long)got.cost.baseline, (long long)want.cost.normalizer, got.head.top[0], got.head.p_top);
                    ASSERT_EQ(got.head.top, want.head.top);
                    if (in.winner >= 0) {
                        EXPECT_EQ(got.head.top[0], exact_argmax(*H, in.x));
                    }
                    EXPECT_EQ(got.head.top_logits, want.head.top_logits);
                    EXPECT_EQ(got.cost.warmup, want.cost.warmup);
                    EXPECT_EQ(got.cost.best_arm, want.cost.best_arm);
                    EXPECT_EQ(got.cost.d_prime, want.cost.d_prime);
                    EXPECT_EQ(got.cost.baseline, want.cost.baseline);
                    EXPECT_NEAR(static_cast<double>(got.cost.normalizer), static_cast<double>(want.cost.normalizer), 0.02 * want.cost.baseline);
                    EXPECT_NEAR(got.head.log_norm, want.head.log_norm, 1e-5 * std::max(1.0, std::fabs(want.head.log_norm)));
                    EXPECT_NEAR(got.head.p_top, want.head.p_top, 1e-5);
                }
}

// The phases one by one: after the warm-up every arm has read the same prefix; each elimination round keeps a subset
// of the previous candidates; a run stopped after round r resumes to nothing (eliminate returns false until done).
TEST(AdaptiveQueryHost, RoundsOnlyShrinkTheCandidates) {
    const Instance in = make_instance(4097, 576, 5, true);
    auto H = std::make_shared<head::ColumnMajorHead>(in.A, 4097, 576, true);
    AdaptiveParams p;
    p.delta = 0.05;
    std::vector<float> mu, var;
    std::vector<int32_t> T;
    std::vector<uint8_t> prev, cand;
    for (int rounds = 1; rounds <= 6; ++rounds) {
        ad::HostQuerySteps steps(*H);
        ad::QueryDriver driver(*H, steps, in.x, p, head::query_noise_seed(p.seed, 1));
        driver.warm_up();
        steps.read_state(mu, var, T, cand);
        for (int32_t t : T) ASSERT_EQ(t, T[0]);
        const bool done = driver.eliminate(rounds);
        steps.read_state(mu, var, T, cand);
        for (size_t i = 0; i < prev.size(); ++i) ASSERT_LE(cand[i], prev[i]) << "arm " << i << " came back after round " << rounds;
        prev = cand;
        if (done) {
            EXPECT_EQ(cand[in.winner], 1);
            break;
        }
    }
}

TEST(AdaptiveQueryHost, RefusesTopKAndBadQueries) {
    const Instance in = make_instance(100, 64, 1, false);
    auto H = std::make_shared<head::ColumnMajorHead>(in.A, 100, 64, false);
    ad::HostQuerySteps steps(*H);
    AdaptiveParams p;
    p.k = 2;
    EXPECT_THROW({ ad::QueryDriver q(*H, steps, in.x, p, 1); }, Error);
    p.k = 1;
    std::vector<float> short_x(63, 1.0f);
    EXPECT_THROW({ ad::QueryDriver q(*H, steps, short_x, p, 1); }, Error);
    // x zero on every column: all logits tie, the first arm
    std::vector<float> zero(64, 0.0f);
    const head::AdaptiveResult r = ad::QueryDriver(*H, steps, zero, p, 1).run();
    EXPECT_EQ(r.head.top, std::vector<int32_t>{0});
}

} // namespace
