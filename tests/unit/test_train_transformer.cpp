// The trainer's whole model: gradients of a tiny gpt2 and a tiny llama (GQA, RoPE) against central finite
// differences in double; the forward against the decoder's logits on the tiny GGUF models (written by gguf-py);
// AdamW against a hand-computed update; and a tiny model overfitting a short text.
#include <cmath>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "decode/forward.h"
#include "model/model.h"
#include "model/require_input.h"
#include "finite_difference.h"
#include "train/adamw.h"
#include "train/transformer.h"
#include "winnow/error.h"

namespace {

using namespace winnow;
using namespace winnow::train;

TrainShape tiny_shape(Arch arch) {
    TrainShape s;
    s.arch = arch;
    s.n_vocab = 11;
    s.n_embd = 8;
    s.n_layer = 2;
    s.n_head = arch == Arch::gpt2 ? 2 : 4;
    s.n_head_kv = 2;
    s.head_dim = arch == Arch::gpt2 ? 4 : 2;
    s.n_ff = 12;
    s.n_ctx = 16;
    s.rope = arch == Arch::gpt2 ? RopeStyle::none : RopeStyle::rotate_half;
    s.rope_dim = arch == Arch::gpt2 ? 0 : 2;
    s.tied_head = arch == Arch::gpt2;
    return s;
}

class WholeModelGradient : public ::testing::TestWithParam<Arch> {};

TEST_P(WholeModelGradient, MatchesFiniteDifferencesInDouble) {
    Transformer<double> m(tiny_shape(GetParam()));
    m.init_random(3);
    // larger weights than the init, so every op is away from its linear regime
    std::mt19937_64 rng(9);
    std::normal_distribution<double> nd(0.0, 0.3);
    for (auto& p : m.params()) p += nd(rng);
    const int B = 2, T = 5;
    std::vector<int32_t> tokens(B * T), targets(B * T);
    for (int i = 0; i < B * T; ++i) {
        tokens[i] = (i * 7 + 3) % 11;
        targets[i] = i == 4 ? -1 : (i * 5 + 1) % 11; // one position without a target
    }
    m.zero_grad();
    m.step(tokens.data(), targets.data(), B, T, true);
    const std::vector<double> analytic = m.grads();
    // every tensor: its first, middle and last element
    int checked = 0;
    double worst = 0;
    for (const auto& t : m.tensors()) {
        for (size_t i : {size_t{0}, t.size / 2, t.size - 1}) {
            const double numeric = winnow::test::numeric_gradient(m, t.offset + i, tokens, targets, B, T);
            const double err = std::fabs(numeric - analytic[t.offset + i]) / std::max(1e-3, std::fabs(numeric));
            EXPECT_LT(err, 1e-5) << t.name << "[" << i << "] numeric " << numeric << " analytic " << analytic[t.offset + i];
            worst = std::max(worst, err);
            ++checked;
        }
    }
    std::printf("%s: %d parameters checked, worst relative error %.2e\n", to_string(GetParam()), checked, worst);
}

INSTANTIATE_TEST_SUITE_P(Arch, WholeModelGradient, ::testing::Values(Arch::gpt2, Arch::llama));

// The trainer's forward on a real model file computes the decoder's logits.
void expect_logits_match_decoder(const std::string& path) {
    WINNOW_REQUIRE_FILE(path);
    auto model = Model::load(path);
    Transformer<float> m(TrainShape::from(model->config()));
    m.load(*model);
    std::vector<int32_t> tokens;
    for (int i = 0; i < 12; ++i) tokens.push_back((i * 37 + 5) % model->config().n_vocab);
    const std::vector<float> ours = m.logits(tokens.data(), static_cast<int>(tokens.size()));
    auto be = make_cpu_backend(1);
    Forward f(*model, *be, 64);
    const std::vector<float>& want = f.eval(tokens, true);
    ASSERT_EQ(ours.size(), want.size());
    float scale = 0, worst = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        scale = std::max(scale, std::fabs(want[i]));
        worst = std::max(worst, std::fabs(ours[i] - want[i]));
    }
    std::printf("%s: trainer vs decoder logits, max |diff| %.3g of max |logit| %.3g\n", path.c_str(), worst, scale);
    EXPECT_LT(worst, 1e-4 * std::max(1.0f, scale));
}

TEST(TrainerForward, TinyGpt2MatchesTheDecoder) { expect_logits_match_decoder(WINNOW_FIXTURE_DIR "/tiny-gpt2.gguf"); }
TEST(TrainerForward, TinyLlamaMatchesTheDecoder) { expect_logits_match_decoder(WINNOW_FIXTURE_DIR "/tiny-llama.gguf"); }

TEST(AdamW, OneStepByHand) {
    std::vector<ParamTensor> tensors = {{"w", 0, 2, 1, 2, true}, {"b", 2, 1, 1, 1, false}};
    AdamWConfig c;
    c.lr = 0.1;
    c.weight_decay = 0.5;
    c.grad_clip = 0; // off
    c.total_steps = 1;
    c.min_lr_ratio = 1;
    AdamW<double> opt(c, tensors, 3);
    std::vector<double> p = {1.0, -2.0, 3.0}, g = {0.5, -0.25, 2.0};
    opt.update(p, g, 0);
    // step 1: m = 0.1 g, v = 0.05 g^2; mhat = g, vhat = g^2; the step is lr * g / (|g| + eps), ~ lr * sign(g)
    auto adam = [](double g) { return 0.1 * g / (std::fabs(g) + 1e-8); };
    EXPECT_NEAR(p[0], 1.0 - 0.1 * 0.5 * 1.0 - adam(0.5), 1e-12);  // decayed, then the Adam step
    EXPECT_NEAR(p[1], -2.0 + 0.1 * 0.5 * 2.0 - adam(-0.25), 1e-12);
    EXPECT_NEAR(p[2], 3.0 - adam(2.0), 1e-12);                     // no decay on a bias
    // clipping: the global norm is scaled to grad_clip before the moments
    c.grad_clip = 1.0;
    AdamW<double> clipped(c, tensors, 3);
    std::vector<double> q = {0, 0, 0}, h = {3.0, 4.0, 0.0};
    EXPECT_NEAR(clipped.update(q, h, 0), 5.0, 1e-12);
    EXPECT_NEAR(clipped.m()[0], 0.1 * 3.0 / 5.0, 1e-12);
    // a non-finite gradient stops the run before any weight or moment changes
    std::vector<double> r = {1, 2, 3}, bad = {0.1, std::numeric_limits<double>::infinity(), 0.2};
    EXPECT_THROW(clipped.update(r, bad, 1), winnow::Error);
    EXPECT_EQ(r, (std::vector<double>{1, 2, 3}));
    EXPECT_NEAR(clipped.m()[0], 0.1 * 3.0 / 5.0, 1e-12);
}

TEST(AdamW, WarmUpThenCosine) {
    AdamWConfig c;
    c.lr = 1.0;
    c.warmup_steps = 10;
    c.total_steps = 110;
    c.min_lr_ratio = 0.1;
    EXPECT_NEAR(learning_rate(c, 0), 0.1, 1e-12);
    EXPECT_NEAR(learning_rate(c, 9), 1.0, 1e-12);
    EXPECT_NEAR(learning_rate(c, 10), 1.0, 1e-12);
    EXPECT_NEAR(learning_rate(c, 60), 0.55, 1e-12); // half way: the mean of lr and min_lr
    EXPECT_NEAR(learning_rate(c, 110), 0.1, 1e-12);
}

// A tiny llama memorises a 48-token sequence: the loss falls from ~log(V) to below 0.1 in 150 AdamW steps.
TEST(Trainer, TinyModelOverfitsAShortText) {
    TrainShape s = tiny_shape(Arch::llama);
    s.n_vocab = 24;
    s.n_embd = 32;
    s.n_head = 4;
    s.n_head_kv = 2;
    s.head_dim = 8;
    s.rope_dim = 8;
    s.n_ff = 64;
    s.n_ctx = 64;
    Transformer<float> m(s);
    m.init_random(1);
    const int T = 48;
    std::vector<int32_t> seq(T + 1);
    std::mt19937 rng(4);
    for (auto& t : seq) t = static_cast<int32_t>(rng() % s.n_vocab);
    std::vector<int32_t> tokens(seq.begin(), seq.end() - 1), targets(seq.begin() + 1, seq.end());
    AdamWConfig c;
    c.lr = 1e-2;
    c.warmup_steps = 10;
    c.total_steps = 150;
    c.weight_decay = 0.0;
    AdamW<float> opt(c, m.tensors(), m.params().size());
    double first = 0, last = 0;
    for (int step = 0; step < c.total_steps; ++step) {
        m.zero_grad();
        last = m.step(tokens.data(), targets.data(), 1, T, true);
        if (step == 0) first = last;
        opt.update(m.params(), m.grads(), step);
    }
    std::printf("overfit: loss %.3f -> %.4f\n", first, last);
    EXPECT_NEAR(first, std::log(24.0), 0.3);
    EXPECT_LT(last, 0.1);
}

} // namespace
