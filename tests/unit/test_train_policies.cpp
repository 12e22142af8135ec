// Memory policies of the trainer: the exact ones (log-sum-exp attention, recompute of norms and activations) give
// the dense baseline's gradients; the approximate ones (softmax output approximation, ASA) change them by a
// measured amount and keep every gradient they claim exact; and the bytes each keeps are the spec's formulas
// (../shared/specs/memory-lean.md §1.3, §1.4), counted from the trainer's own allocations.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "finite_difference.h"
#include "train/softmax_approx.h"
#include "winnow/error.h"
#include "train/transformer.h"

namespace {

using namespace winnow;
using namespace winnow::train;

TrainShape shape(Arch arch, int C = 16, int n_ctx = 40) {
    TrainShape s;
    s.arch = arch;
    s.n_vocab = 13;
    s.n_embd = C;
    s.n_layer = 2;
    s.n_head = 4;
    s.n_head_kv = arch == Arch::gpt2 ? 4 : 2;
    s.head_dim = C / 4;
    s.n_ff = 4 * C;
    s.n_ctx = n_ctx;
    s.rope = arch == Arch::gpt2 ? RopeStyle::none : RopeStyle::adjacent_pairs;
    s.rope_dim = arch == Arch::gpt2 ? 0 : C / 4;
    s.tied_head = arch == Arch::gpt2;
    return s;
}

template <typename F>
std::vector<F> gradients(Arch arch, const MemoryPolicy& policy, int T, double* loss = nullptr) {
    Transformer<F> m(shape(arch), policy);
    m.init_random(5);
    std::mt19937_64 rng(2);
    std::normal_distribution<double> nd(0.0, 0.2);
    for (auto& p : m.params()) p += static_cast<F>(nd(rng));
    const int B = 2;
    std::vector<int32_t> tokens(B * T), targets(B * T);
    for (int i = 0; i < B * T; ++i) {
        tokens[i] = (i * 5 + 1) % 13;
        targets[i] = (i * 3 + 2) % 13;
    }
    m.zero_grad();
    const double l = m.step(tokens.data(), targets.data(), B, T, true);
    if (loss) *loss = l;
    return m.grads();
}

double cosine(const std::vector<double>& a, const std::vector<double>& b) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        ab += a[i] * b[i];
        aa += a[i] * a[i];
        bb += b[i] * b[i];
    }
    return ab / std::sqrt(aa * bb);
}

double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
    double worst = 0, scale = 0;
    for (size_t i = 0; i < a.size(); ++i) scale = std::max(scale, std::fabs(a[i]));
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]) / scale);
    return worst;
}

class ExactPolicies : public ::testing::TestWithParam<Arch> {};

TEST_P(ExactPolicies, GiveTheDenseGradients) {
    const auto dense = gradients<double>(GetParam(), MemoryPolicy{}, 12);
    for (const char* spec : {"attention=lse", "recompute=on", "attention=lse,recompute=on", "checkpoint=on", "checkpoint=on,attention=lse,recompute=on"}) {
        const auto g = gradients<double>(GetParam(), MemoryPolicy::parse(spec), 12);
        EXPECT_LT(max_rel_diff(dense, g), 1e-12) << spec;
    }
    // in fp32, recomputing norms and activations (and whole layers) repeats the same arithmetic: bit-identical
    const auto dense32 = gradients<float>(GetParam(), MemoryPolicy{}, 12);
    EXPECT_EQ(gradients<float>(GetParam(), MemoryPolicy::parse("recompute=on"), 12), dense32);
    EXPECT_EQ(gradients<float>(GetParam(), MemoryPolicy::parse("checkpoint=on,recompute=on"), 12), dense32);
    // the log-sum-exp path recomputes P with another rounding: equal to fp32 round-off
    const auto lse32 = gradients<float>(GetParam(), MemoryPolicy::parse("attention=lse,recompute=on,checkpoint=on"), 12);
    std::vector<double> a(dense32.begin(), dense32.end()), b(lse32.begin(), lse32.end());
    EXPECT_LT(max_rel_diff(a, b), 1e-5);
}

TEST_P(ExactPolicies, ApproximateOnesReportTheirGradientCosine) {
    const int T = 32; // rows longer than 2m, so the approximation is active
    const auto dense = gradients<double>(GetParam(), MemoryPolicy{}, T);
    for (const char* spec : {"attention=approx,m=2", "attention=approx,m=5", "linear=asa1", "linear=asa4", "attention=lse,linear=asa4,recompute=on"}) {
        const auto g = gradients<double>(GetParam(), MemoryPolicy::parse(spec), T);
        const double c = cosine(dense, g);
        std::printf("%s %-42s gradient cosine vs exact %.4f\n", to_string(GetParam()), spec, c);
        EXPECT_GT(c, 0.5) << spec; // a descent-consistent direction
        EXPECT_LT(c, 1 - 1e-9) << spec; // and really approximate
    }
}

INSTANTIATE_TEST_SUITE_P(Arch, ExactPolicies, ::testing::Values(Arch::gpt2, Arch::llama));

// ASA changes only the weight gradients of the linears it covers: every other gradient is exact for the perturbed
// forward y = W (x + eps sign(x)) + b, checked against finite differences of that forward.
TEST(AsaPolicy, GradientsOutsideTheCoveredWeightsAreExactForThePerturbedForward) {
    MemoryPolicy policy = MemoryPolicy::parse("linear=asa2");
    policy.asa_eps = 0.05f;
    Transformer<double> m(shape(Arch::gpt2), policy);
    m.init_random(8);
    const int B = 1, T = 6;
    std::vector<int32_t> tokens = {1, 5, 2, 7, 3, 9}, targets = {5, 2, 7, 3, 9, 4};
    m.zero_grad();
    m.step(tokens.data(), targets.data(), B, T, true);
    const std::vector<double> analytic = m.grads();
    int checked = 0;
    for (const auto& t : m.tensors()) {
        const bool covered = t.name.find("ffn_up.weight") != std::string::npos || t.name.find("ffn_down.weight") != std::string::npos;
        if (covered) continue;
        for (size_t i : {size_t{0}, t.size / 3, t.size - 1}) {
            const double numeric = winnow::test::numeric_gradient(m, t.offset + i, tokens, targets, B, T);
            EXPECT_NEAR(analytic[t.offset + i], numeric, 1e-6 * std::max(1.0, std::fabs(numeric))) << t.name << "[" << i << "]";
            ++checked;
        }
    }
    EXPECT_GT(checked, 40);
}

TEST(SoftmaxApprox, ShortRowsExactLongRowsSumToOneAndKeepTheEnds) {
    SoftmaxApproxStore store;
    const int T = 40, m = 3;
    store.resize(2, T, m);
    std::vector<double> p(T), q(T);
    // row 0: 5 valid entries <= 2m: kept exactly
    double s = 0;
    for (int j = 0; j < 5; ++j) s += (p[j] = std::exp(0.3 * j));
    for (int j = 0; j < 5; ++j) p[j] /= s;
    store.compress(0, p.data(), 5);
    store.rebuild(0, 5, q.data());
    for (int j = 0; j < 5; ++j) EXPECT_EQ(q[j], static_cast<double>(static_cast<float>(p[j]))); // the stored fp32 value
    // row 1: 40 entries, scrambled order
    s = 0;
    for (int j = 0; j < T; ++j) s += (p[j] = std::exp(-0.2 * ((j * 17) % T)));
    for (int j = 0; j < T; ++j) p[j] /= s;
    store.compress(1, p.data(), T);
    store.rebuild(1, T, q.data());
    double total = 0;
    for (int j = 0; j < T; ++j) total += q[j];
    EXPECT_NEAR(total, 1.0, 1e-6);
    std::vector<double> sorted(p.begin(), p.end());
    std::sort(sorted.rbegin(), sorted.rend());
    for (int j = 0; j < T; ++j) {
        const bool end = p[j] >= sorted[m - 1] || p[j] <= sorted[T - m];
        if (end) {
            EXPECT_EQ(q[j], static_cast<double>(static_cast<float>(p[j]))); // the kept ends are exact (stored in fp32)
        } else {
            EXPECT_LE(q[j], sorted[m - 1] * (1 + 1e-6)); // the rebuilt middle decays from the m-th largest
        }
    }
    EXPECT_EQ(store.rank_bytes(), 2u * T);                      // uint8 ranks for T <= 256
    EXPECT_EQ(store.slot_bytes(), 2u * (2 * m + 1) * sizeof(float));
}

// Bytes kept per layer, from the trainer's allocations, against the spec's formulas (GPT-2 layout, fp32, s = 4):
//   minimal exact (dense P):     B T (16 C s + 16) + B NH T^2 s
//   + FlashAttention-style lse:  B T (16 C s + 16 + 4 NH)
//   + recompute norms and GELU:  drops ln1, ln2 and the GELU output (6 C per token)
//   ASA on all four linears:     drops ln1, atty, ln2, fc_gelu (7 C) and keeps their 7 C sign bits
TEST(SavedBytes, MatchTheSpecFormulas) {
    const int C = 64, T = 32, B = 2, NH = 4;
    const size_t BT = static_cast<size_t>(B) * T, s = 4;
    auto saved = [&](const char* spec) {
        Transformer<float> m(shape(Arch::gpt2, C, T), MemoryPolicy::parse(spec));
        std::vector<int32_t> tokens(B * T, 1), targets(B * T, 2);
        m.step(tokens.data(), targets.data(), B, T, false);
        return m.saved_bytes_per_layer();
    };
    EXPECT_EQ(saved(""), BT * (16 * C * s + 16) + static_cast<size_t>(B) * NH * T * T * s);
    EXPECT_EQ(saved("attention=lse"), BT * (16 * C * s + 16 + 4 * NH));
    EXPECT_EQ(saved("attention=lse,recompute=on"), BT * (10 * C * s + 16 + 4 * NH));
    EXPECT_EQ(saved("attention=lse,linear=asa4"), BT * (9 * C * s + 7 * C / 8 + 16 + 4 * NH));
    // per-layer checkpointing: the layer input only (C values per token)
    EXPECT_EQ(saved("checkpoint=on"), BT * C * s);
    // approx, m = 5: per row (2m + 1) fp32 slots and T uint8 ranks
    EXPECT_EQ(saved("attention=approx,m=5"), BT * (16 * C * s + 16) + static_cast<size_t>(B) * NH * T * (11 * 4 + T));
}

TEST(MemoryPolicy, ParsesAndRejects) {
    const auto p = MemoryPolicy::parse("attention=approx,m=10,linear=asa3,recompute=on");
    EXPECT_EQ(p.attention, AttentionPolicy::approx);
    EXPECT_EQ(p.approx_m, 10);
    EXPECT_EQ(p.linear, LinearPolicy::asa3);
    EXPECT_TRUE(p.recompute);
    EXPECT_EQ(p.describe(), "attention=approx,m=10,linear=asa3,recompute=on");
    EXPECT_THROW(MemoryPolicy::parse("attention=sparse"), winnow::Error);
    EXPECT_THROW(MemoryPolicy::parse("m=0"), winnow::Error);
    EXPECT_THROW(MemoryPolicy::parse("linear"), winnow::Error);
}

} // namespace
