// Every trainer op's backward against central finite differences of its forward, in double: for a random
// upstream gradient dy, L = sum(dy * op(inputs)) and the backward must return dL/dinput for every input.
#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "train/ops.h"

namespace {

using namespace winnow::train;
using Vec = std::vector<double>;

Vec randn(size_t n, uint64_t seed, double scale = 1.0) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> nd(0.0, scale);
    Vec v(n);
    for (auto& x : v) x = nd(rng);
    return v;
}

// Checks analytic (the backward's result for `input`) against (L(input + h e_i) - L(input - h e_i)) / 2h.
void expect_gradient(const char* what, Vec& input, const Vec& analytic, const std::function<double()>& loss, double tol = 1e-6) {
    ASSERT_EQ(input.size(), analytic.size());
    const double h = 1e-6;
    double worst = 0;
    for (size_t i = 0; i < input.size(); ++i) {
        const double keep = input[i];
        input[i] = keep + h;
        const double up = loss();
        input[i] = keep - h;
        const double down = loss();
        input[i] = keep;
        const double numeric = (up - down) / (2 * h);
        worst = std::max(worst, std::fabs(numeric - analytic[i]) / std::max(1.0, std::fabs(numeric)));
    }
    EXPECT_LT(worst, tol) << what;
}

double dot(const Vec& a, const Vec& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
}

TEST(TrainOps, Linear) {
    const int N = 3, in = 5, out = 4;
    Vec x = randn(N * in, 1), W = randn(out * in, 2), b = randn(out, 3), dy = randn(N * out, 4), y(N * out);
    auto loss = [&] { linear_forward(y.data(), x.data(), W.data(), b.data(), N, in, out); return dot(y, dy); };
    Vec dx(x.size()), dW(W.size()), db(b.size());
    linear_backward(dx.data(), dW.data(), db.data(), dy.data(), x.data(), W.data(), N, in, out);
    expect_gradient("dx", x, dx, loss);
    expect_gradient("dW", W, dW, loss);
    expect_gradient("db", b, db, loss);
}

TEST(TrainOps, LayerNorm) {
    const int N = 3, C = 7;
    Vec x = randn(N * C, 5), w = randn(C, 6), b = randn(C, 7), dy = randn(N * C, 8), y(N * C), mean(N), rstd(N);
    auto loss = [&] { layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-5); return dot(y, dy); };
    loss();
    Vec dx(x.size()), dw(C), db(C);
    layernorm_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), mean.data(), rstd.data(), N, C);
    expect_gradient("dx", x, dx, loss);
    expect_gradient("dw", w, dw, loss);
    expect_gradient("db", b, db, loss);
}

TEST(TrainOps, RmsNorm) {
    const int N = 3, C = 7;
    Vec x = randn(N * C, 9), w = randn(C, 10), dy = randn(N * C, 11), y(N * C), rstd(N);
    auto loss = [&] { rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5); return dot(y, dy); };
    loss();
    Vec dx(x.size()), dw(C);
    rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), N, C);
    expect_gradient("dx", x, dx, loss);
    expect_gradient("dw", w, dw, loss);
}

TEST(TrainOps, GeluAndSwiGlu) {
    const size_t n = 40;
    Vec x = randn(n, 12, 2.0), dy = randn(n, 13), y(n);
    auto gl = [&] { gelu_forward(y.data(), x.data(), n); return dot(y, dy); };
    Vec dx(n);
    gelu_backward(dx.data(), x.data(), dy.data(), n);
    expect_gradient("gelu", x, dx, gl);
    Vec gate = randn(n, 14, 2.0), up = randn(n, 15);
    auto sl = [&] { swiglu_forward(y.data(), gate.data(), up.data(), n); return dot(y, dy); };
    Vec dg(n), du(n);
    swiglu_backward(dg.data(), du.data(), dy.data(), gate.data(), up.data(), n);
    expect_gradient("swiglu gate", gate, dg, sl);
    expect_gradient("swiglu up", up, du, sl);
}

TEST(TrainOps, RopeBothConventions) {
    for (auto style : {winnow::RopeStyle::adjacent_pairs, winnow::RopeStyle::rotate_half}) {
        const int B = 2, T = 5, H = 3, hd = 8, rope_dim = 6;
        Vec x = randn(B * T * H * hd, 16), dy = randn(x.size(), 17);
        auto loss = [&] {
            Vec y = x;
            rope_apply(y.data(), B, T, H, hd, rope_dim, 10000.0f, style, false);
            return dot(y, dy);
        };
        Vec dx = dy;
        rope_apply(dx.data(), B, T, H, hd, rope_dim, 10000.0f, style, true);
        expect_gradient("rope", x, dx, loss);
    }
}

// Causal grouped-query attention; the backward from stored P and from the row log-sum-exp (recomputed P) must both
// match the finite differences, and each other.
TEST(TrainOps, AttentionFromStoredPAndFromLogSumExp) {
    const int B = 2, T = 6, NH = 4, NKV = 2, hd = 5;
    Vec q = randn(B * T * NH * hd, 18), k = randn(B * T * NKV * hd, 19), v = randn(B * T * NKV * hd, 20), dy = randn(B * T * NH * hd, 21);
    Vec out(dy.size()), P(static_cast<size_t>(B) * NH * T * T), lse(static_cast<size_t>(B) * NH * T);
    auto loss = [&] { attention_forward<double>(out.data(), P.data(), lse.data(), q.data(), k.data(), v.data(), B, T, NH, NKV, hd); return dot(out, dy); };
    loss();
    Vec dq(q.size()), dk(k.size()), dv(v.size());
    AttentionRowSource<double> fromP;
    fromP.P = P.data();
    attention_backward(dq.data(), dk.data(), dv.data(), dy.data(), fromP, q.data(), k.data(), v.data(), B, T, NH, NKV, hd);
    expect_gradient("dq", q, dq, loss);
    expect_gradient("dk", k, dk, loss);
    expect_gradient("dv", v, dv, loss);
    Vec dq2(q.size()), dk2(k.size()), dv2(v.size());
    AttentionRowSource<double> fromLse;
    fromLse.lse = lse.data();
    attention_backward(dq2.data(), dk2.data(), dv2.data(), dy.data(), fromLse, q.data(), k.data(), v.data(), B, T, NH, NKV, hd);
    for (size_t i = 0; i < dq.size(); ++i) EXPECT_NEAR(dq2[i], dq[i], 1e-12);
    for (size_t i = 0; i < dk.size(); ++i) EXPECT_NEAR(dk2[i], dk[i], 1e-12);
    for (size_t i = 0; i < dv.size(); ++i) EXPECT_NEAR(dv2[i], dv[i], 1e-12);
    // causality: the first position's output depends on the first key only
    for (int t = 0; t < T; ++t)
        for (int j = t + 1; j < T; ++j) EXPECT_EQ(P[(0 * NH + 1) * T * T + t * T + j], 0.0);
}

TEST(TrainOps, ClassifierCrossEntropy) {
    const int N = 70, C = 6, V = 9; // more rows than one 32-row chunk; two rows without a target
    Vec x = randn(N * C, 22), W = randn(V * C, 23);
    std::vector<int> targets(N);
    for (int n = 0; n < N; ++n) targets[n] = n % 11 == 5 ? -1 : (n * 7) % V;
    auto loss = [&] { return classifier_loss<double>(nullptr, nullptr, x.data(), W.data(), targets.data(), N, C, V, 1.0); };
    Vec dx(x.size()), dW(W.size());
    const double l = classifier_loss<double>(dx.data(), dW.data(), x.data(), W.data(), targets.data(), N, C, V, 1.0);
    EXPECT_NEAR(l, loss(), 1e-12);
    expect_gradient("dx", x, dx, loss);
    expect_gradient("dW", W, dW, loss);
    // the loss itself: -log softmax, by hand for row 0
    double mx = -1e300, s = 0, z[9];
    for (int o = 0; o < V; ++o) {
        z[o] = 0;
        for (int i = 0; i < C; ++i) z[o] += x[i] * W[o * C + i];
        mx = std::max(mx, z[o]);
    }
    for (int o = 0; o < V; ++o) s += std::exp(z[o] - mx);
    Vec x1(x.begin(), x.begin() + C);
    std::vector<int> t1 = {targets[0]};
    EXPECT_NEAR(classifier_loss<double>(nullptr, nullptr, x1.data(), W.data(), t1.data(), 1, C, V, 1.0), mx + std::log(s) - z[targets[0]], 1e-12);
}

} // namespace
