#pragma once
// Forward and backward of every op the trainer runs, on plain arrays, in the style of llm.c: one readable loop nest
// per op, templated on the scalar type so that the gradient checks run the very same code in double.
// Backward functions ACCUMULATE into their gradient outputs (+=): a tensor read by two ops (a tied embedding, the
// residual stream) receives the sum of both contributions. Layouts: activations [N tokens][dim]; N = B * T with
// the T positions of one sequence contiguous; weights [out][in] as in the decoder (y = W x + b).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

#include "backend/cpu/reference_ops.h"
#include "model/model_config.h"
#include "train/sgemm.h"

namespace winnow::train {

// The forward ops shared with the decoder: one reference each (backend/cpu/reference_ops.h).
using ref::gelu_forward;
using ref::gelu_tanh;
using ref::layernorm_forward;
using ref::rmsnorm_forward;
using ref::rope_apply;
using ref::swiglu_forward;

// ---------------------------------------------------------------------------------------------- linear
// y[n][o] = sum_i x[n][i] W[o][i] (+ b[o])
template <typename F>
void linear_forward(F* y, const F* x, const F* W, const F* b, int N, int in, int out) {
    if constexpr (std::is_same_v<F, float>) { // OpenBLAS for the fp32 trainer; the loops below are the reference
        for (int n = 0; n < N; ++n)
            for (int o = 0; o < out; ++o) y[static_cast<size_t>(n) * out + o] = b ? b[o] : 0.0f;
        sgemm(false, true, N, out, in, 1.0f, x, in, W, in, 1.0f, y, out);
        return;
    }
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; ++n)
        for (int o = 0; o < out; ++o) {
            const F* xn = x + static_cast<size_t>(n) * in;
            const F* wo = W + static_cast<size_t>(o) * in;
            F s = b ? b[o] : F(0);
            for (int i = 0; i < in; ++i) s += xn[i] * wo[i];
            y[static_cast<size_t>(n) * out + o] = s;
        }
}

// dx += dy W ; dW += dy^T x ; db += sum_n dy   (dx, db may be null)
template <typename F>
void linear_backward(F* dx, F* dW, F* db, const F* dy, const F* x, const F* W, int N, int in, int out) {
    if constexpr (std::is_same_v<F, float>) {
        if (dx) sgemm(false, false, N, in, out, 1.0f, dy, out, W, in, 1.0f, dx, in); // dx += dy W
        sgemm(true, false, out, in, N, 1.0f, dy, out, x, in, 1.0f, dW, in);           // dW += dy^T x
        if (db)
            for (int n = 0; n < N; ++n)
                for (int o = 0; o < out; ++o) db[o] += dy[static_cast<size_t>(n) * out + o];
        return;
    }
    if (dx) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; ++n) {
            F* dxn = dx + static_cast<size_t>(n) * in;
            const F* dyn = dy + static_cast<size_t>(n) * out;
            for (int o = 0; o < out; ++o) {
                const F g = dyn[o];
                const F* wo = W + static_cast<size_t>(o) * in;
                for (int i = 0; i < in; ++i) dxn[i] += g * wo[i];
            }
        }
    }
#pragma omp parallel for schedule(static)
    for (int o = 0; o < out; ++o) {
        F* dwo = dW + static_cast<size_t>(o) * in;
        F bsum = 0;
        for (int n = 0; n < N; ++n) {
            const F g = dy[static_cast<size_t>(n) * out + o];
            bsum += g;
            const F* xn = x + static_cast<size_t>(n) * in;
            for (int i = 0; i < in; ++i) dwo[i] += g * xn[i];
        }
        if (db) db[o] += bsum;
    }
}

// ---------------------------------------------------------------------------------------------- norms
template <typename F>
void layernorm_backward(F* dx, F* dw, F* db, const F* dy, const F* x, const F* w, const F* mean, const F* rstd, int N, int C) {
    for (int n = 0; n < N; ++n) {
        const F* xn = x + static_cast<size_t>(n) * C;
        const F* dyn = dy + static_cast<size_t>(n) * C;
        F* dxn = dx + static_cast<size_t>(n) * C;
        // dnorm_i = dy_i w_i; dx = rstd (dnorm - mean(dnorm) - xhat mean(dnorm xhat))
        F mean_d = 0, mean_dx = 0;
        for (int i = 0; i < C; ++i) {
            const F xhat = (xn[i] - mean[n]) * rstd[n];
            const F dnorm = dyn[i] * w[i];
            mean_d += dnorm;
            mean_dx += dnorm * xhat;
        }
        mean_d /= C;
        mean_dx /= C;
        for (int i = 0; i < C; ++i) {
            const F xhat = (xn[i] - mean[n]) * rstd[n];
            dw[i] += dyn[i] * xhat;
            db[i] += dyn[i];
            dxn[i] += rstd[n] * (dyn[i] * w[i] - mean_d - xhat * mean_dx);
        }
    }
}

template <typename F>
void rmsnorm_backward(F* dx, F* dw, const F* dy, const F* x, const F* w, const F* rstd, int N, int C) {
    for (int n = 0; n < N; ++n) {
        const F* xn = x + static_cast<size_t>(n) * C;
        const F* dyn = dy + static_cast<size_t>(n) * C;
        F* dxn = dx + static_cast<size_t>(n) * C;
        const F r = rstd[n];
        // y_i = x_i r w_i; dr/dx_j = -r^3 x_j / C; dx_j = r (dy_j w_j) - r^3 x_j / C sum_i dy_i w_i x_i
        F dot = 0;
        for (int i = 0; i < C; ++i) dot += dyn[i] * w[i] * xn[i];
        const F k = r * r * r * dot / C;
        for (int i = 0; i < C; ++i) {
            dw[i] += dyn[i] * xn[i] * r;
            dxn[i] += r * dyn[i] * w[i] - k * xn[i];
        }
    }
}

// ---------------------------------------------------------------------------------------------- activations
template <typename F>
void gelu_backward(F* dx, const F* x, const F* dy, size_t n) {
    const F k = static_cast<F>(0.7978845608028654);
    for (size_t i = 0; i < n; ++i) {
        const F v = x[i], u = k * (v + F(0.044715) * v * v * v), t = std::tanh(u);
        const F du = k * (F(1) + F(3 * 0.044715) * v * v);
        dx[i] += dy[i] * (F(0.5) * (F(1) + t) + F(0.5) * v * (F(1) - t * t) * du);
    }
}

template <typename F>
void swiglu_backward(F* dgate, F* dup, const F* dy, const F* gate, const F* up, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        const F s = F(1) / (F(1) + std::exp(-gate[i])), silu = gate[i] * s;
        dup[i] += dy[i] * silu;
        dgate[i] += dy[i] * up[i] * (s + gate[i] * s * (F(1) - s));
    }
}

// ---------------------------------------------------------------------------------------------- RoPE
// rope_apply (forward, and inverse as the backward): backend/cpu/reference_ops.h

// ---------------------------------------------------------------------------------------------- attention
// Causal attention with grouped KV heads. q [B*T][NH][hd], k, v [B*T][NKV][hd], out [B*T][NH][hd].
// P (if not null) receives the probabilities [B][NH][T][T] (row t holds t + 1 valid entries; the rest are 0);
// lse (if not null) the row log-sum-exp of the scaled scores [B][NH][T] (the FlashAttention-style statistic);
// row_sink (if not null) is handed each row's t + 1 probabilities (from several threads, one row each).
template <typename F>
void attention_forward(F* out, F* P, F* lse, const F* q, const F* k, const F* v, int B, int T, int NH, int NKV, int hd,
                       void (*row_sink)(void* ctx, int b, int h, int t, const F* p) = nullptr, void* sink_ctx = nullptr) {
    const int group = NH / NKV;
    const F scale = F(1) / std::sqrt(static_cast<F>(hd));
#pragma omp parallel for collapse(3) schedule(static)
    for (int b = 0; b < B; ++b)
        for (int h = 0; h < NH; ++h)
            for (int t = 0; t < T; ++t) {
                std::vector<F> p(t + 1);
                const F* qt = q + ((static_cast<size_t>(b) * T + t) * NH + h) * hd;
                const int kh = h / group;
                F mx = -INFINITY;
                for (int j = 0; j <= t; ++j) {
                    const F* kj = k + ((static_cast<size_t>(b) * T + j) * NKV + kh) * hd;
                    F s = 0;
                    for (int d = 0; d < hd; ++d) s += qt[d] * kj[d];
                    p[j] = s * scale;
                    mx = std::max(mx, p[j]);
                }
                F sum = 0;
                for (int j = 0; j <= t; ++j) sum += (p[j] = std::exp(p[j] - mx));
                const F inv = F(1) / sum;
                F* ot = out + ((static_cast<size_t>(b) * T + t) * NH + h) * hd;
                for (int d = 0; d < hd; ++d) ot[d] = 0;
                for (int j = 0; j <= t; ++j) {
                    p[j] *= inv;
                    const F* vj = v + ((static_cast<size_t>(b) * T + j) * NKV + kh) * hd;
                    for (int d = 0; d < hd; ++d) ot[d] += p[j] * vj[d];
                }
                if (row_sink) row_sink(sink_ctx, b, h, t, p.data());
                if (P) {
                    F* row = P + ((static_cast<size_t>(b) * NH + h) * T + t) * T;
                    for (int j = 0; j < T; ++j) row[j] = j <= t ? p[j] : F(0);
                }
                if (lse) lse[(static_cast<size_t>(b) * NH + h) * T + t] = mx + std::log(sum);
            }
}

// One row's probabilities for the backward: from the stored P, or recomputed exactly from q, k and the row's
// log-sum-exp (P_j = exp(s_j - lse)), or from a caller-supplied approximation.
template <typename F>
struct AttentionRowSource {
    const F* P = nullptr;   // [B][NH][T][T]
    const F* lse = nullptr; // [B][NH][T], with q and k
    // else: fill(b, h, t, row) writes the t + 1 entries
    void (*fill)(const void* ctx, int b, int h, int t, F* row) = nullptr;
    const void* ctx = nullptr;
};

// dS_j = P_j (dP_j - sum_k P_k dP_k): the O(T) softmax-backward row rule (never a T x T Jacobian).
template <typename F>
void attention_backward(F* dq, F* dk, F* dv, const F* dout, const AttentionRowSource<F>& src, const F* q, const F* k, const F* v, int B, int T, int NH,
                        int NKV, int hd) {
    const int group = NH / NKV;
    const F scale = F(1) / std::sqrt(static_cast<F>(hd));
    // parallel over (b, kv head): each task owns the dk, dv rows of its kv head, so no two threads write one row
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; ++b)
        for (int kh = 0; kh < NKV; ++kh) {
            std::vector<F> p(T), dp(T);
            for (int h = kh * group; h < (kh + 1) * group; ++h)
                for (int t = 0; t < T; ++t) {
                    const F* qt = q + ((static_cast<size_t>(b) * T + t) * NH + h) * hd;
                    const F* dot = dout + ((static_cast<size_t>(b) * T + t) * NH + h) * hd;
                    F* dqt = dq + ((static_cast<size_t>(b) * T + t) * NH + h) * hd;
                    if (src.P) {
                        const F* row = src.P + ((static_cast<size_t>(b) * NH + h) * T + t) * T;
                        for (int j = 0; j <= t; ++j) p[j] = row[j];
                    } else if (src.lse) {
                        const F l = src.lse[(static_cast<size_t>(b) * NH + h) * T + t];
                        for (int j = 0; j <= t; ++j) {
                            const F* kj = k + ((static_cast<size_t>(b) * T + j) * NKV + kh) * hd;
                            F s = 0;
                            for (int d = 0; d < hd; ++d) s += qt[d] * kj[d];
                            p[j] = std::exp(s * scale - l);
                        }
                    } else {
                        src.fill(src.ctx, b, h, t, p.data());
                    }
                    // dP_j = dout . v_j ; dv_j += P_j dout
                    F row_dot = 0;
                    for (int j = 0; j <= t; ++j) {
                        const F* vj = v + ((static_cast<size_t>(b) * T + j) * NKV + kh) * hd;
                        F* dvj = dv + ((static_cast<size_t>(b) * T + j) * NKV + kh) * hd;
                        F s = 0;
                        for (int d = 0; d < hd; ++d) {
                            s += dot[d] * vj[d];
                            dvj[d] += p[j] * dot[d];
                        }
                        dp[j] = s;
                        row_dot += p[j] * s;
                    }
                    for (int j = 0; j <= t; ++j) {
                        const F ds = p[j] * (dp[j] - row_dot) * scale;
                        const F* kj = k + ((static_cast<size_t>(b) * T + j) * NKV + kh) * hd;
                        F* dkj = dk + ((static_cast<size_t>(b) * T + j) * NKV + kh) * hd;
                        for (int d = 0; d < hd; ++d) {
                            dqt[d] += ds * kj[d];
                            dkj[d] += ds * qt[d];
                        }
                    }
                }
        }
}

// ---------------------------------------------------------------------------------------------- loss
// Cross-entropy of logits = x W^T over V classes, fused with its backward so the [N][V] logits are never kept
// whole (chunks of 32 rows): returns the summed loss over rows with target >= 0 and, when dx/dW are given,
// accumulates the gradient of (sum of losses) * grad_scale.
template <typename F>
double classifier_loss(F* dx, F* dW, const F* x, const F* W, const int* targets, int N, int C, int V, F grad_scale) {
    constexpr int kChunk = 32;
    double total = 0;
    std::vector<F> g(static_cast<size_t>(kChunk) * V);
    if constexpr (std::is_same_v<F, float>) { // logits, dx and dW of a chunk as three OpenBLAS products
        for (int n0 = 0; n0 < N; n0 += kChunk) {
            const int rows = std::min(kChunk, N - n0);
            sgemm(false, true, rows, V, C, 1.0f, x + static_cast<size_t>(n0) * C, C, W, C, 0.0f, g.data(), V);
#pragma omp parallel for schedule(static) reduction(+ : total)
            for (int r = 0; r < rows; ++r) {
                F* gl = g.data() + static_cast<size_t>(r) * V;
                const int target = targets[n0 + r];
                if (target < 0) {
                    std::fill(gl, gl + V, F(0));
                    continue;
                }
                F mx = -INFINITY;
                for (int o = 0; o < V; ++o) mx = std::max(mx, gl[o]);
                double sum = 0;
                for (int o = 0; o < V; ++o) sum += std::exp(gl[o] - mx);
                const F lse = mx + static_cast<F>(std::log(sum));
                total += lse - gl[target];
                for (int o = 0; o < V; ++o) gl[o] = (std::exp(gl[o] - lse) - (o == target ? F(1) : F(0))) * grad_scale;
            }
            if (dx) sgemm(false, false, rows, C, V, 1.0f, g.data(), V, W, C, 1.0f, dx + static_cast<size_t>(n0) * C, C);
            if (dW) sgemm(true, false, V, C, rows, 1.0f, g.data(), V, x + static_cast<size_t>(n0) * C, C, 1.0f, dW, C);
        }
        return total;
    }
    for (int n0 = 0; n0 < N; n0 += kChunk) {
        const int rows = std::min(kChunk, N - n0);
#pragma omp parallel for schedule(static) reduction(+ : total)
        for (int r = 0; r < rows; ++r) {
            const int n = n0 + r;
            F* gl = g.data() + static_cast<size_t>(r) * V;
            if (targets[n] < 0) {
                std::fill(gl, gl + V, F(0));
                continue;
            }
            const F* xn = x + static_cast<size_t>(n) * C;
            F mx = -INFINITY;
            for (int o = 0; o < V; ++o) {
                const F* wo = W + static_cast<size_t>(o) * C;
                F s = 0;
                for (int i = 0; i < C; ++i) s += xn[i] * wo[i];
                gl[o] = s;
                mx = std::max(mx, s);
            }
            F sum = 0;
            for (int o = 0; o < V; ++o) sum += std::exp(gl[o] - mx);
            const F lse = mx + std::log(sum);
            total += lse - gl[targets[n]];
            for (int o = 0; o < V; ++o) gl[o] = (std::exp(gl[o] - lse) - (o == targets[n] ? F(1) : F(0))) * grad_scale;
            if (!dx) continue;
            F* dxn = dx + static_cast<size_t>(n) * C;
            for (int o = 0; o < V; ++o) {
                const F* wo = W + static_cast<size_t>(o) * C;
                for (int i = 0; i < C; ++i) dxn[i] += gl[o] * wo[i];
            }
        }
        if (!dW) continue;
#pragma omp parallel for schedule(static)
        for (int o = 0; o < V; ++o) {
            F* dwo = dW + static_cast<size_t>(o) * C;
            for (int r = 0; r < rows; ++r) {
                if (targets[n0 + r] < 0) continue;
                const F go = g[static_cast<size_t>(r) * V + o];
                const F* xn = x + static_cast<size_t>(n0 + r) * C;
                for (int i = 0; i < C; ++i) dwo[i] += go * xn[i];
            }
        }
    }
    return total;
}

} // namespace winnow::train
