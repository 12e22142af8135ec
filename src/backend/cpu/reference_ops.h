#pragma once
// The reference of every elementwise / per-row op the decoder and the trainer run: one readable loop nest per op, in
// the style of llm.c, templated on the scalar type. With F = float it is what the CPU backend and the trainer execute;
// with F = double it is the oracle the op-parity harness (tests/ops) and the gradient checks compare against. There is
// no second copy of these ops anywhere in winnow.
// Layouts: rows of activations [N][C]; multi-head rows [N][heads * head_dim].
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/model_config.h"

namespace winnow::ref {

// LayerNorm: y = (x - mean) * rstd * w + b; mean and rstd per row are kept when the pointers are not null.
template <typename F>
void layernorm_forward(F* y, F* mean, F* rstd, const F* x, const F* w, const F* b, int N, int C, F eps) {
    for (int n = 0; n < N; ++n) {
        const F* xn = x + static_cast<size_t>(n) * C;
        F* yn = y + static_cast<size_t>(n) * C;
        double m = 0;
        for (int i = 0; i < C; ++i) m += xn[i];
        m /= C;
        double v = 0;
        for (int i = 0; i < C; ++i) v += (xn[i] - m) * (xn[i] - m);
        v /= C;
        const F r = static_cast<F>(1.0 / std::sqrt(v + eps)), mf = static_cast<F>(m);
        // the kept (rounded) mean, so that recomputing y from mean and rstd in the backward is bit-identical
        for (int i = 0; i < C; ++i) yn[i] = (xn[i] - mf) * r * w[i] + b[i];
        if (mean) mean[n] = mf;
        if (rstd) rstd[n] = r;
    }
}

// RMSNorm: y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps) (kept when rstd is not null).
template <typename F>
void rmsnorm_forward(F* y, F* rstd, const F* x, const F* w, int N, int C, F eps) {
    for (int n = 0; n < N; ++n) {
        const F* xn = x + static_cast<size_t>(n) * C;
        F* yn = y + static_cast<size_t>(n) * C;
        double ss = 0;
        for (int i = 0; i < C; ++i) ss += static_cast<double>(xn[i]) * xn[i];
        const F r = static_cast<F>(1.0 / std::sqrt(ss / C + eps));
        for (int i = 0; i < C; ++i) yn[i] = xn[i] * r * w[i];
        if (rstd) rstd[n] = r;
    }
}

template <typename F>
F gelu_tanh(F x) {
    const F k = static_cast<F>(0.7978845608028654); // sqrt(2 / pi)
    return F(0.5) * x * (F(1) + std::tanh(k * (x + F(0.044715) * x * x * x)));
}

template <typename F>
void gelu_forward(F* y, const F* x, size_t n) {
    for (size_t i = 0; i < n; ++i) y[i] = gelu_tanh(x[i]);
}

// SwiGLU: y = silu(gate) * up
template <typename F>
void swiglu_forward(F* y, const F* gate, const F* up, size_t n) {
    for (size_t i = 0; i < n; ++i) y[i] = gate[i] / (F(1) + std::exp(-gate[i])) * up[i];
}

// GeGLU (Gemma's gated FFN): y = gelu_tanh(gate) * up
template <typename F>
void geglu_forward(F* y, const F* gate, const F* up, size_t n) {
    for (size_t i = 0; i < n; ++i) y[i] = gelu_tanh(gate[i]) * up[i];
}

// Gemma 2's soft cap: x = cap * tanh(x / cap), in place
template <typename F>
void softcap(F* x, size_t n, F cap) {
    for (size_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

// y[r] += x[r] (row_count rows of C; x_rows == 1 broadcasts one row of x to every row of y).
template <typename F>
void add_rows(F* y, const F* x, size_t rows, size_t x_rows, size_t C) {
    for (size_t r = 0; r < rows; ++r) {
        const F* xr = x + (x_rows == 1 ? 0 : r) * C;
        F* yr = y + r * C;
        for (size_t i = 0; i < C; ++i) yr[i] += xr[i];
    }
}

// cos and sin of the angle of pair i at position pos, rounded to float (rope_apply's, and the CPU backend's table's);
// the angle is divided by the pair's frequency factor (1 leaves its bits unchanged)
inline void rope_cos_sin(int pos, int i, int rope_dim, float base, float& c, float& s, float factor = 1.0f) {
    const double theta = static_cast<double>(pos) * std::pow(static_cast<double>(base), -2.0 * i / rope_dim) / static_cast<double>(factor);
    c = static_cast<float>(std::cos(theta)), s = static_cast<float>(std::sin(theta));
}

// Rotates pair i (of rope_dim / 2 = half) by (c, s) in each of the heads of one position's row [heads][hd].
template <typename F>
inline void rope_rotate_pair(F* row, int heads, int hd, int half, int i, RopeStyle style, F c, F s) {
    const int a = style == RopeStyle::adjacent_pairs ? 2 * i : i, b = style == RopeStyle::adjacent_pairs ? 2 * i + 1 : i + half;
    for (int h = 0; h < heads; ++h) {
        F* xh = row + static_cast<size_t>(h) * hd;
        const F x0 = xh[a], x1 = xh[b];
        xh[a] = x0 * c - x1 * s;
        xh[b] = x0 * s + x1 * c;
    }
}

// Rotates the first rope_dim dims of each head of x [B*T][heads][hd]; row t of each of the B sequences is at
// position pos0 + t (inverse: rotated by minus that angle, the backward of the rotation: its Jacobian is orthogonal).
// theta_i = pos * base^(-2i / rope_dim) is computed in double and cos/sin rounded to float, in both precisions, so
// the double instantiation checks the float one's arithmetic, not a different angle. freq_factors (rope_dim / 2 of them,
// or null): each pair's angle divided by its factor.
template <typename F>
void rope_apply(F* x, int B, int T, int heads, int hd, int rope_dim, float base, RopeStyle style, bool inverse, int pos0 = 0,
                const float* freq_factors = nullptr) {
    if (style == RopeStyle::none) return;
    const int half = rope_dim / 2;
    for (int t = 0; t < T; ++t)
        for (int i = 0; i < half; ++i) {
            float cf, sf;
            rope_cos_sin(pos0 + t, i, rope_dim, base, cf, sf, freq_factors ? freq_factors[i] : 1.0f);
            const F c = static_cast<F>(cf), s0 = static_cast<F>(sf);
            for (int bt = 0; bt < B; ++bt)
                rope_rotate_pair(x + (static_cast<size_t>(bt) * T + t) * heads * hd, heads, hd, half, i, style, c, inverse ? -s0 : s0);
        }
}

// Causal attention of n query rows at positions pos0.. over a KV cache [positions][n_head_kv * hd] (grouped heads:
// query head h reads kv head h / (n_head / n_head_kv)). `allowed(kv_head, q_pos, k_pos)` restricts the keys further
// (a block-sparse pattern, possibly per KV head group); it must allow k_pos == q_pos. Scores are softmaxed over the allowed keys only; with
// spion_denominator the disallowed keys of the row (k_pos <= q_pos) add exp(0 - max) each to the denominator.
template <typename F, typename Allowed>
void attention_cached(F* out, const F* q, const F* k_cache, const F* v_cache, int pos0, int n, int n_head, int n_head_kv, int hd,
                      F scale, Allowed allowed, bool spion_denominator = false, F softcap = 0) {
    const int group = n_head / n_head_kv, kv_dim = n_head_kv * hd;
    std::vector<F> p;
    for (int t = 0; t < n; ++t)
        for (int h = 0; h < n_head; ++h) {
            const int q_pos = pos0 + t, kvh = h / group;
            const F* qh = q + (static_cast<size_t>(t) * n_head + h) * hd;
            p.assign(q_pos + 1, F(0));
            F mx = -INFINITY;
            for (int j = 0; j <= q_pos; ++j) {
                if (!allowed(kvh, q_pos, j)) continue;
                const F* kj = k_cache + static_cast<size_t>(j) * kv_dim + kvh * hd;
                F s = 0;
                for (int d = 0; d < hd; ++d) s += qh[d] * kj[d];
                p[j] = s * scale;
                if (softcap != 0) p[j] = softcap * std::tanh(p[j] / softcap);
                mx = std::max(mx, p[j]);
            }
            F sum = 0;
            int dropped = 0;
            for (int j = 0; j <= q_pos; ++j) {
                if (allowed(kvh, q_pos, j)) sum += (p[j] = std::exp(p[j] - mx));
                else ++dropped;
            }
            if (spion_denominator) sum += static_cast<F>(dropped) * std::exp(-mx);
            F* oh = out + (static_cast<size_t>(t) * n_head + h) * hd;
            for (int d = 0; d < hd; ++d) oh[d] = 0;
            for (int j = 0; j <= q_pos; ++j) {
                if (!allowed(kvh, q_pos, j)) continue;
                const F w = p[j] / sum;
                const F* vj = v_cache + static_cast<size_t>(j) * kv_dim + kvh * hd;
                for (int d = 0; d < hd; ++d) oh[d] += w * vj[d];
            }
        }
}

} // namespace winnow::ref
