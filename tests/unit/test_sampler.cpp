// Sampler chain against distributions computed by hand from the HF / llama.cpp definitions.
#include <cmath>
#include <map>
#include <vector>

#include <gtest/gtest.h>

#include "decode/sampler.h"
#include "winnow/error.h"

namespace {

using winnow::Sampler;
using winnow::SamplerOrder;
using winnow::SamplingParams;

// logits = log(p) for a known distribution p, so softmax(logits) == p exactly up to rounding
std::vector<float> log_probs(const std::vector<double>& p) {
    std::vector<float> l;
    for (double v : p) l.push_back(static_cast<float>(std::log(v)));
    return l;
}

std::map<int32_t, float> candidates(const Sampler& s) {
    std::map<int32_t, float> m;
    for (auto& [id, p] : s.last_candidates()) m[id] = p;
    return m;
}

TEST(Sampler, GreedyPicksArgmax) {
    Sampler s(SamplingParams{});
    EXPECT_EQ(s.sample(std::vector<float>{0.1f, 2.0f, -1.0f, 1.9f}, {}), 1);
}

TEST(Sampler, TopPBoundaryFollowsHf) {
    // p = .5 .3 .15 .05. HF drops a token when the mass of it and all less likely ones is <= 1 - top_p.
    const auto l = log_probs({0.5, 0.3, 0.15, 0.05});
    SamplingParams p;
    p.temperature = 1.0f;
    p.top_p = 0.79f; // 1 - top_p = .21; tails: {.05} drop; {.15,.05} = .2 <= .21 drop; {.3,.15,.05} = .5 keep
    Sampler s(p);
    s.sample(l, {});
    auto c = candidates(s);
    ASSERT_EQ(c.size(), 2u);
    EXPECT_NEAR(c[0], 0.5 / 0.8, 1e-6);
    EXPECT_NEAR(c[1], 0.3 / 0.8, 1e-6);
    p.top_p = 0.84f; // 1 - top_p = .16: tail .2 > .16 now, so the third token stays
    Sampler s2(p);
    s2.sample(l, {});
    EXPECT_EQ(candidates(s2).size(), 3u);
}

TEST(Sampler, TopPBoundaryFollowsLlamaCpp) {
    // llama.cpp keeps the smallest prefix whose cumulative mass reaches top_p: .5 + .3 = .8 >= .79
    SamplingParams p;
    p.temperature = 1.0f;
    p.top_p = 0.79f;
    p.order = SamplerOrder::llama_cpp;
    Sampler s(p);
    s.sample(log_probs({0.5, 0.3, 0.15, 0.05}), {});
    EXPECT_EQ(candidates(s).size(), 2u);
    p.top_p = 0.81f; // .8 < .81: one more token
    Sampler s2(p);
    s2.sample(log_probs({0.5, 0.3, 0.15, 0.05}), {});
    EXPECT_EQ(candidates(s2).size(), 3u);
}

TEST(Sampler, MinPKeepsTokensAboveFractionOfTop) {
    // min_p = 0.25: keep p >= 0.25 * 0.4 = 0.1 -> .4 .3 .2 .1 survive... and 0.0999 does not
    SamplingParams p;
    p.temperature = 1.0f;
    p.min_p = 0.25f;
    Sampler s(p);
    s.sample(log_probs({0.4, 0.3, 0.2, 0.0999, 0.0001}), {});
    auto c = candidates(s);
    ASSERT_EQ(c.size(), 3u);
    EXPECT_NEAR(c[0], 0.4 / 0.9, 1e-6);
}

TEST(Sampler, TopKKeepsTies) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.top_k = 2;
    Sampler s(p);
    s.sample(std::vector<float>{3.0f, 1.0f, 3.0f, 3.0f, 0.0f}, {});
    EXPECT_EQ(candidates(s).size(), 3u); // three tokens tie at the 2nd-largest logit, HF keeps all of them
}

TEST(Sampler, TemperatureScalesLogitsBeforeFiltersInHfOrder) {
    // logits 0 and ln 3: at T = 1 probabilities .25/.75; at T = 0.5 they become 1/10 and 9/10
    SamplingParams p;
    p.temperature = 0.5f;
    Sampler s(p);
    s.sample(std::vector<float>{0.0f, static_cast<float>(std::log(3.0))}, {});
    auto c = candidates(s);
    EXPECT_NEAR(c[0], 0.1, 1e-6);
    EXPECT_NEAR(c[1], 0.9, 1e-6);
}

TEST(Sampler, OrderMattersForTemperatureWithTopP) {
    // p = .6 .3 .1, T = 2, top_p = .7: HF applies temperature first, llama.cpp last
    const auto l = log_probs({0.6, 0.3, 0.1});
    SamplingParams p;
    p.temperature = 2.0f;
    p.top_p = 0.7f;
    Sampler hf(p);
    hf.sample(l, {});
    p.order = SamplerOrder::llama_cpp;
    Sampler lc(p);
    lc.sample(l, {});
    // HF flattened: sqrt(.6), sqrt(.3), sqrt(.1) normalised = .4569 .3231 .2200; tail {.22} <= .3 dropped -> 2 kept
    EXPECT_EQ(candidates(hf).size(), 2u);
    EXPECT_NEAR(candidates(hf)[0], 0.4569 / (0.4569 + 0.3231), 1e-3);
    // llama.cpp: top_p on the original .6 .3 (.9 >= .7 after two) then temperature: sqrt(.6):sqrt(.3)
    EXPECT_EQ(candidates(lc).size(), 2u);
    EXPECT_NEAR(candidates(lc)[0], std::sqrt(0.6) / (std::sqrt(0.6) + std::sqrt(0.3)), 1e-6);
}

TEST(Sampler, RepetitionPenaltyCoversPromptTokens) {
    // HF: positive logits are divided, negative ones multiplied, for every token already seen (prompt included)
    SamplingParams p;
    p.repeat_penalty = 2.0f;
    Sampler s(p);
    // token 0 (logit 3) was in the prompt -> 1.5 < token 1 (2.0): greedy now picks 1
    EXPECT_EQ(s.sample(std::vector<float>{3.0f, 2.0f, -1.0f}, std::vector<int32_t>{0, 0, 2}), 1);
    p.temperature = 1.0f;
    Sampler s2(p);
    s2.sample(std::vector<float>{3.0f, 2.0f, -1.0f}, std::vector<int32_t>{0, 2});
    auto c = candidates(s2);
    const double z = std::exp(1.5) + std::exp(2.0) + std::exp(-2.0);
    EXPECT_NEAR(c[0], std::exp(1.5) / z, 1e-6);
    EXPECT_NEAR(c[2], std::exp(-2.0) / z, 1e-6);
}

TEST(Sampler, RepeatLastNLimitsTheWindow) {
    SamplingParams p;
    p.repeat_penalty = 10.0f;
    p.repeat_last_n = 1;
    Sampler s(p);
    // token 0 is outside the last-1 window, so it is not penalised
    EXPECT_EQ(s.sample(std::vector<float>{3.0f, 2.0f}, std::vector<int32_t>{0, 1}), 0);
}

TEST(Sampler, SeedReproducesDraws) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.seed = 42;
    std::vector<float> l{0.0f, 0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
    Sampler a(p), b(p);
    std::vector<int32_t> da, db;
    for (int i = 0; i < 200; ++i) {
        da.push_back(a.sample(l, {}));
        db.push_back(b.sample(l, {}));
    }
    EXPECT_EQ(da, db);
    p.seed = 43;
    Sampler c(p);
    std::vector<int32_t> dc;
    for (int i = 0; i < 200; ++i) dc.push_back(c.sample(l, {}));
    EXPECT_NE(da, dc);
}

TEST(Sampler, DrawsFollowTheDistribution) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.seed = 7;
    Sampler s(p);
    const auto l = log_probs({0.7, 0.2, 0.1});
    std::vector<int> counts(3);
    const int n = 20000;
    for (int i = 0; i < n; ++i) counts[s.sample(l, {})]++;
    // binomial sd at p = .7, n = 20000 is ~0.0032: 5 sd bounds
    EXPECT_NEAR(counts[0] / double(n), 0.7, 0.016);
    EXPECT_NEAR(counts[1] / double(n), 0.2, 0.015);
    EXPECT_NEAR(counts[2] / double(n), 0.1, 0.011);
}

TEST(Sampler, InvalidParametersAreRejected) {
    SamplingParams p;
    p.top_p = 0.0f;
    EXPECT_THROW(Sampler{p}, winnow::Error);
    p = {};
    p.min_p = 1.5f;
    EXPECT_THROW(Sampler{p}, winnow::Error);
    p = {};
    p.repeat_penalty = 0.0f;
    EXPECT_THROW(Sampler{p}, winnow::Error);
}

} // namespace
