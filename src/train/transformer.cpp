#include "train/transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

#include "io/quant.h"
#include "train/ops.h"
#include "winnow/error.h"

namespace winnow::train {



TrainShape TrainShape::from(const ModelConfig& c) {
    TrainShape s;
    s.arch = c.arch;
    s.n_vocab = c.n_vocab;
    s.n_embd = c.n_embd;
    s.n_layer = c.n_layer;
    s.n_head = c.n_head;
    s.n_head_kv = c.n_head_kv;
    s.head_dim = c.head_dim;
    s.n_ff = c.n_ff;
    s.n_ctx = c.n_ctx_train;
    s.norm_eps = c.norm_eps;
    s.rope = c.rope;
    s.rope_dim = c.rope_dim;
    s.rope_base = c.rope_base;
    s.tied_head = c.tied_head;
    return s;
}

template <typename F>
size_t Transformer<F>::add(const std::string& name, int rows, int cols, bool decay) {
    ParamTensor t;
    t.name = name;
    t.offset = tensors_.empty() ? 0 : tensors_.back().offset + tensors_.back().size;
    t.size = static_cast<size_t>(rows) * cols;
    t.rows = rows;
    t.cols = cols;
    t.decay = decay;
    tensors_.push_back(t);
    return t.offset;
}

template <typename F>
Transformer<F>::Transformer(const TrainShape& s, const MemoryPolicy& policy) : s_(s), policy_(policy) {
    if (s.n_vocab <= 0 || s.n_embd <= 0 || s.n_layer <= 0 || s.n_head <= 0 || s.n_head_kv <= 0 || s.n_head % s.n_head_kv || s.head_dim <= 0 || s.n_ff <= 0)
        throw Error(ErrorKind::invalid_argument, "trainer: inconsistent model shape");
    const bool gpt2 = s.arch == Arch::gpt2;
    const int C = s.n_embd, qd = s.n_head * s.head_dim, kvd = s.n_head_kv * s.head_dim, FF = s.n_ff;
    tok_embd_ = add("token_embd.weight", s.n_vocab, C, true);
    if (gpt2) pos_embd_ = add("position_embd.weight", s.n_ctx, C, false);
    for (int l = 0; l < s.n_layer; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        Layer L;
        L.attn_norm = add(b + "attn_norm.weight", 1, C, false);
        if (gpt2) L.attn_norm_b = add(b + "attn_norm.bias", 1, C, false);
        L.wq = add(b + "attn_q.weight", qd, C, true);
        L.wk = add(b + "attn_k.weight", kvd, C, true);
        L.wv = add(b + "attn_v.weight", kvd, C, true);
        if (gpt2) {
            L.bq = add(b + "attn_q.bias", 1, qd, false);
            L.bk = add(b + "attn_k.bias", 1, kvd, false);
            L.bv = add(b + "attn_v.bias", 1, kvd, false);
        }
        L.wo = add(b + "attn_output.weight", C, qd, true);
        if (gpt2) L.bo = add(b + "attn_output.bias", 1, C, false);
        L.ffn_norm = add(b + "ffn_norm.weight", 1, C, false);
        if (gpt2) L.ffn_norm_b = add(b + "ffn_norm.bias", 1, C, false);
        if (!gpt2) L.w_gate = add(b + "ffn_gate.weight", FF, C, true);
        L.w_up = add(b + "ffn_up.weight", FF, C, true);
        if (gpt2) L.b_up = add(b + "ffn_up.bias", 1, FF, false);
        L.w_down = add(b + "ffn_down.weight", C, FF, true);
        if (gpt2) L.b_down = add(b + "ffn_down.bias", 1, C, false);
        layers_.push_back(L);
    }
    out_norm_ = add("output_norm.weight", 1, C, false);
    if (gpt2) out_norm_b_ = add("output_norm.bias", 1, C, false);
    output_ = s.tied_head ? tok_embd_ : add("output.weight", s.n_vocab, C, true);
    params_.assign(tensors_.back().offset + tensors_.back().size, F(0));
    grads_.assign(params_.size(), F(0));
}

template <typename F>
const ParamTensor& Transformer<F>::tensor(const std::string& name) const {
    for (const auto& t : tensors_)
        if (t.name == name) return t;
    throw Error(ErrorKind::invalid_argument, "trainer: no parameter '" + name + "'");
}

template <typename F>
void Transformer<F>::init_random(uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> nd(0.0, 0.02);
    const double resid_scale = 1.0 / std::sqrt(2.0 * s_.n_layer);
    for (const auto& t : tensors_) {
        const bool is_norm_weight = t.name.find("norm.weight") != std::string::npos;
        const bool residual_proj = t.name.find("attn_output.weight") != std::string::npos || t.name.find("ffn_down.weight") != std::string::npos;
        for (size_t i = 0; i < t.size; ++i) {
            F v = 0;
            if (is_norm_weight) v = 1;
            else if (t.decay || t.name == "position_embd.weight") v = static_cast<F>(nd(rng) * (residual_proj ? resid_scale : 1.0));
            params_[t.offset + i] = v;
        }
    }
}

namespace {

template <typename F>
void copy_matrix(const Matrix& m, F* dst, int rows, int cols, const std::string& what) {
    if (m.empty() || m.rows != rows || m.cols != cols)
        throw Error(ErrorKind::invalid_argument, "trainer: '" + what + "' has the wrong shape");
    std::vector<float> row(cols);
    for (int r = 0; r < rows; ++r) {
        dequantize_row(m.type, m.row(r), row.data(), cols);
        for (int c = 0; c < cols; ++c) dst[static_cast<size_t>(r) * cols + c] = row[c];
    }
}

template <typename F>
void copy_vector(const Vector& v, F* dst, size_t n, const std::string& what) {
    if (v.size() != n) throw Error(ErrorKind::invalid_argument, "trainer: '" + what + "' has the wrong size");
    for (size_t i = 0; i < n; ++i) dst[i] = v[i];
}

} // namespace

template <typename F>
void Transformer<F>::load(const LoadedModel& model) {
    const Weights& w = model.weights();
    const ModelConfig& mc = model.config();
    if (mc.gate_act != GateActivation::silu || mc.embd_scale != 0 || mc.sliding_window > 0 || mc.attn_scale != 0 || mc.attn_softcap != 0 ||
        mc.final_softcap != 0)
        throw Error(ErrorKind::unsupported, "trainer: " + mc.architecture() +
                                                "'s GeGLU, embedding scale, attention scale, sliding windows and soft caps are not supported");
    if (!w.rope_freqs.empty()) throw Error(ErrorKind::unsupported, "trainer: rope frequency factors (Llama 3.1's rope scaling) are not supported");
    for (const LayerWeights& lw : w.layers)
        if (!lw.q_norm.empty() || !lw.k_norm.empty()) throw Error(ErrorKind::unsupported, "trainer: q/k head norms (qwen3) are not supported");
    const int C = s_.n_embd, qd = s_.n_head * s_.head_dim, kvd = s_.n_head_kv * s_.head_dim, FF = s_.n_ff;
    copy_matrix(w.tok_embd, p(tok_embd_), s_.n_vocab, C, "token_embd");
    if (pos_embd_ != kNone) copy_vector(w.pos_embd, p(pos_embd_), static_cast<size_t>(s_.n_ctx) * C, "position_embd");
    for (int l = 0; l < s_.n_layer; ++l) {
        const LayerWeights& lw = w.layers[l];
        const Layer& L = layers_[l];
        copy_vector(lw.attn_norm, p(L.attn_norm), C, "attn_norm");
        if (L.attn_norm_b != kNone) copy_vector(lw.attn_norm_b, p(L.attn_norm_b), C, "attn_norm bias");
        copy_matrix(lw.wq, p(L.wq), qd, C, "attn_q");
        copy_matrix(lw.wk, p(L.wk), kvd, C, "attn_k");
        copy_matrix(lw.wv, p(L.wv), kvd, C, "attn_v");
        copy_matrix(lw.wo, p(L.wo), C, qd, "attn_output");
        if (L.bq != kNone) {
            copy_vector(lw.bq, p(L.bq), qd, "attn_q bias");
            copy_vector(lw.bk, p(L.bk), kvd, "attn_k bias");
            copy_vector(lw.bv, p(L.bv), kvd, "attn_v bias");
            copy_vector(lw.bo, p(L.bo), C, "attn_output bias");
        } else if (!lw.bq.empty() || !lw.bo.empty()) {
            throw Error(ErrorKind::unsupported, "trainer: llama models with attention biases are not supported");
        }
        copy_vector(lw.ffn_norm, p(L.ffn_norm), C, "ffn_norm");
        if (L.ffn_norm_b != kNone) copy_vector(lw.ffn_norm_b, p(L.ffn_norm_b), C, "ffn_norm bias");
        if (L.w_gate != kNone) copy_matrix(lw.w_gate, p(L.w_gate), FF, C, "ffn_gate");
        copy_matrix(lw.w_up, p(L.w_up), FF, C, "ffn_up");
        copy_matrix(lw.w_down, p(L.w_down), C, FF, "ffn_down");
        if (L.b_up != kNone) {
            copy_vector(lw.b_up, p(L.b_up), FF, "ffn_up bias");
            copy_vector(lw.b_down, p(L.b_down), C, "ffn_down bias");
        }
    }
    copy_vector(w.out_norm, p(out_norm_), C, "output_norm");
    if (out_norm_b_ != kNone) copy_vector(w.out_norm_b, p(out_norm_b_), C, "output_norm bias");
    if (!s_.tied_head) copy_matrix(w.output, p(output_), s_.n_vocab, C, "output");
}

template <typename F>
void Transformer<F>::zero_grad() {
    std::fill(grads_.begin(), grads_.end(), F(0));
}

namespace {

// Which linear inputs the policy keeps in full, recomputes, or replaces by their sign.
enum class Keep { full, recompute, sign };

struct Plan {
    Keep ln1, atty, ln2, ff_act;
    explicit Plan(const MemoryPolicy& p) {
        const int asa = static_cast<int>(p.linear); // 0 = full, 1..4 = asa1..asa4
        ff_act = asa >= 1 ? Keep::sign : p.recompute ? Keep::recompute : Keep::full;
        ln2 = asa >= 2 ? Keep::sign : p.recompute ? Keep::recompute : Keep::full;
        atty = asa >= 3 ? Keep::sign : Keep::full; // the attention output is not cheap to recompute
        ln1 = asa >= 4 ? Keep::sign : p.recompute ? Keep::recompute : Keep::full;
    }
};

size_t words(size_t bits) { return (bits + 63) / 64; }

// ASA: packs sign(x) > 0 into bits and writes the perturbed input x + eps * (x > 0 ? 1 : -1) to xt.
template <typename F>
void pack_signs(std::vector<uint64_t>& bits, F* xt, const F* x, size_t n, F eps) {
    std::fill(bits.begin(), bits.end(), 0);
    for (size_t i = 0; i < n; ++i) {
        const bool pos = x[i] > 0;
        bits[i / 64] |= static_cast<uint64_t>(pos) << (i % 64);
        xt[i] = x[i] + (pos ? eps : -eps);
    }
}

// The ASA weight-gradient input: scale * sign(x).
template <typename F>
void unpack_signs(F* out, const std::vector<uint64_t>& bits, size_t n, F scale) {
    for (size_t i = 0; i < n; ++i) out[i] = (bits[i / 64] >> (i % 64) & 1) ? scale : -scale;
}

// LayerNorm / RMSNorm output from the kept input and row statistics (the recompute policy).
template <typename F>
void norm_apply(F* y, const F* x, const F* mean, const F* rstd, const F* w, const F* b, int N, int C) {
    for (int n = 0; n < N; ++n)
        for (int i = 0; i < C; ++i) {
            const size_t at = static_cast<size_t>(n) * C + i;
            y[at] = b ? (x[at] - mean[n]) * rstd[n] * w[i] + b[i] : x[at] * rstd[n] * w[i];
        }
}

} // namespace

template <typename F>
size_t Transformer<F>::saved_bytes_per_layer() const {
    size_t total = 0;
    for (const auto& t : saved_layer_) total += t.bytes;
    return total;
}

template <typename F>
void Transformer<F>::ensure_acts(int B, int T) {
    if (B == B_ && T == T_) return;
    if (T > s_.n_ctx && pos_embd_ != kNone) throw Error(ErrorKind::invalid_argument, "trainer: sequence longer than gpt2's learned positions");
    if (policy_.attention == AttentionPolicy::approx && T > 65536) throw Error(ErrorKind::invalid_argument, "trainer: approx attention ranks need T <= 65536");
    B_ = B;
    T_ = T;
    const size_t N = static_cast<size_t>(B) * T, C = s_.n_embd, qd = static_cast<size_t>(s_.n_head) * s_.head_dim,
                 kvd = static_cast<size_t>(s_.n_head_kv) * s_.head_dim, FF = s_.n_ff, rows = static_cast<size_t>(B) * s_.n_head * T;
    const bool gpt2 = s_.arch == Arch::gpt2;
    const Plan plan(policy_);
    acts_.assign(policy_.checkpoint ? 1 : s_.n_layer, Acts{}); // checkpointing: one live layer, recomputed per layer
    layer_inputs_.assign(policy_.checkpoint ? s_.n_layer : 0, std::vector<F>(N * C));
    for (auto& a : acts_) {
        a.resid_in.resize(N * C);
        if (plan.ln1 == Keep::full) a.ln1.resize(N * C);
        if (plan.ln1 == Keep::sign) a.ln1_sign.resize(words(N * C));
        a.ln1_mean.resize(gpt2 ? N : 0);
        a.ln1_rstd.resize(N);
        a.q.resize(N * qd);
        a.k.resize(N * kvd);
        a.v.resize(N * kvd);
        if (policy_.attention == AttentionPolicy::dense) a.P.resize(rows * T);
        if (policy_.attention == AttentionPolicy::lse) a.lse.resize(rows);
        if (policy_.attention == AttentionPolicy::approx) a.approx.resize(static_cast<int>(rows), T, policy_.approx_m);
        if (plan.atty == Keep::full) a.atty.resize(N * qd);
        else a.atty_sign.resize(words(N * qd));
        a.resid_mid.resize(N * C);
        if (plan.ln2 == Keep::full) a.ln2.resize(N * C);
        if (plan.ln2 == Keep::sign) a.ln2_sign.resize(words(N * C));
        a.ln2_mean.resize(gpt2 ? N : 0);
        a.ln2_rstd.resize(N);
        a.ff_pre.resize(N * FF);
        a.ff_gate.resize(gpt2 ? 0 : N * FF);
        if (plan.ff_act == Keep::full) a.ff_act.resize(N * FF);
        if (plan.ff_act == Keep::sign) a.ff_act_sign.resize(words(N * FF));
    }
    const Acts& a = acts_[0];
    const size_t f = sizeof(F), w = sizeof(uint64_t);
    saved_layer_.clear();
    auto note = [&](const char* name, size_t bytes) { if (bytes) saved_layer_.push_back({name, bytes}); };
    note("resid_in", a.resid_in.size() * f);
    note("ln1", a.ln1.size() * f);
    note("ln1_sign", a.ln1_sign.size() * w);
    note("ln1_stats", (a.ln1_mean.size() + a.ln1_rstd.size()) * f);
    note("q", a.q.size() * f);
    note("k", a.k.size() * f);
    note("v", a.v.size() * f);
    note("att_P", a.P.size() * f);
    note("att_lse", a.lse.size() * f);
    note("att_approx_values", a.approx.slot_bytes());
    note("att_approx_ranks", a.approx.rank_bytes());
    note("atty", a.atty.size() * f);
    note("atty_sign", a.atty_sign.size() * w);
    note("resid_mid", a.resid_mid.size() * f);
    note("ln2", a.ln2.size() * f);
    note("ln2_sign", a.ln2_sign.size() * w);
    note("ln2_stats", (a.ln2_mean.size() + a.ln2_rstd.size()) * f);
    note(gpt2 ? "fc_pre" : "ffn_up", a.ff_pre.size() * f);
    note("ffn_gate", a.ff_gate.size() * f);
    note(gpt2 ? "fc_gelu" : "ffn_swiglu", a.ff_act.size() * f);
    note("ffn_act_sign", a.ff_act_sign.size() * w);
    if (policy_.checkpoint) { // what stays per layer is its input; the live layer's tensors count once
        live_layer_bytes_ = saved_bytes_per_layer();
        saved_layer_ = {{"layer_input", N * C * f}};
    } else {
        live_layer_bytes_ = 0;
    }
    resid_final_.resize(N * C);
    lnf_.resize(N * C);
    lnf_mean_.resize(gpt2 ? N : 0);
    lnf_rstd_.resize(N);
    saved_other_bytes_ = sizeof(F) * (resid_final_.size() + lnf_.size() + lnf_mean_.size() + lnf_rstd_.size());
}

template <typename F>
void Transformer<F>::layer_forward(int l, Acts& a, std::vector<F>& x, int B, int T) {
    const int N = B * T, C = s_.n_embd, qd = s_.n_head * s_.head_dim, kvd = s_.n_head_kv * s_.head_dim, FF = s_.n_ff;
    const bool gpt2 = s_.arch == Arch::gpt2;
    const F eps = static_cast<F>(s_.norm_eps), asa = static_cast<F>(policy_.asa_eps);
    const Plan plan(policy_);
    std::vector<F> tmp(static_cast<size_t>(N) * C);
    // scratch for what a policy does not keep (its size is not saved-for-backward memory)
    // (allocated only where the policy needs them; no T x T matrix unless the policy keeps P)
    const bool signs = policy_.linear != LinearPolicy::full;
    std::vector<F> ln(plan.ln1 != Keep::full || plan.ln2 != Keep::full ? static_cast<size_t>(N) * C : 0),
        lin_in(signs ? static_cast<size_t>(N) * std::max({C, qd, FF}) : 0), atty(plan.atty != Keep::full ? static_cast<size_t>(N) * qd : 0),
        act(plan.ff_act != Keep::full ? static_cast<size_t>(N) * FF : 0);
    {
        const Layer& L = layers_[l];
        a.resid_in = x; // (with per-layer checkpointing this duplicates the kept input for the live layer only)
        // the input of a linear layer: kept, recomputed later, or replaced by x + eps sign(x) with its sign kept
        auto linear_input = [&](Keep keep, std::vector<F>& kept, std::vector<uint64_t>& sign, const F* value, size_t n) -> const F* {
            if (keep == Keep::full) return kept.data();
            if (keep == Keep::recompute) return value;
            pack_signs(sign, lin_in.data(), value, n, asa);
            return lin_in.data();
        };
        F* ln1 = plan.ln1 == Keep::full ? a.ln1.data() : ln.data();
        if (gpt2) layernorm_forward(ln1, a.ln1_mean.data(), a.ln1_rstd.data(), x.data(), p(L.attn_norm), p(L.attn_norm_b), N, C, eps);
        else rmsnorm_forward(ln1, a.ln1_rstd.data(), x.data(), p(L.attn_norm), N, C, eps);
        const F* qkv_in = linear_input(plan.ln1, a.ln1, a.ln1_sign, ln1, static_cast<size_t>(N) * C);
        linear_forward(a.q.data(), qkv_in, p(L.wq), L.bq != kNone ? p(L.bq) : nullptr, N, C, qd);
        linear_forward(a.k.data(), qkv_in, p(L.wk), L.bk != kNone ? p(L.bk) : nullptr, N, C, kvd);
        linear_forward(a.v.data(), qkv_in, p(L.wv), L.bv != kNone ? p(L.bv) : nullptr, N, C, kvd);
        rope_apply(a.q.data(), B, T, s_.n_head, s_.head_dim, s_.rope_dim, s_.rope_base, s_.rope, false);
        rope_apply(a.k.data(), B, T, s_.n_head_kv, s_.head_dim, s_.rope_dim, s_.rope_base, s_.rope, false);
        F* at = plan.atty == Keep::full ? a.atty.data() : atty.data();
        // the approximation compresses each row as it is computed (its exact P never exists as a whole)
        struct Rows { SoftmaxApproxStore* store; int NH, T; } rows_ctx{&a.approx, s_.n_head, T};
        auto compress = [](void* ctx, int b, int h, int t, const F* row) {
            auto& r = *static_cast<Rows*>(ctx);
            r.store->compress((b * r.NH + h) * r.T + t, row, t + 1);
        };
        const bool approx = policy_.attention == AttentionPolicy::approx;
        attention_forward<F>(at, policy_.attention == AttentionPolicy::dense ? a.P.data() : nullptr,
                             policy_.attention == AttentionPolicy::lse ? a.lse.data() : nullptr, a.q.data(), a.k.data(), a.v.data(), B, T, s_.n_head,
                             s_.n_head_kv, s_.head_dim, approx ? +compress : nullptr, approx ? &rows_ctx : nullptr);
        const F* wo_in = linear_input(plan.atty, a.atty, a.atty_sign, at, static_cast<size_t>(N) * qd);
        linear_forward(tmp.data(), wo_in, p(L.wo), L.bo != kNone ? p(L.bo) : nullptr, N, qd, C);
        for (size_t i = 0; i < x.size(); ++i) x[i] += tmp[i];
        a.resid_mid = x;
        F* ln2 = plan.ln2 == Keep::full ? a.ln2.data() : ln.data();
        if (gpt2) layernorm_forward(ln2, a.ln2_mean.data(), a.ln2_rstd.data(), x.data(), p(L.ffn_norm), p(L.ffn_norm_b), N, C, eps);
        else rmsnorm_forward(ln2, a.ln2_rstd.data(), x.data(), p(L.ffn_norm), N, C, eps);
        const F* ffn_in = linear_input(plan.ln2, a.ln2, a.ln2_sign, ln2, static_cast<size_t>(N) * C);
        linear_forward(a.ff_pre.data(), ffn_in, p(L.w_up), L.b_up != kNone ? p(L.b_up) : nullptr, N, C, FF);
        F* ff_act = plan.ff_act == Keep::full ? a.ff_act.data() : act.data();
        if (gpt2) {
            gelu_forward(ff_act, a.ff_pre.data(), static_cast<size_t>(N) * FF);
        } else {
            linear_forward(a.ff_gate.data(), ffn_in, p(L.w_gate), static_cast<const F*>(nullptr), N, C, FF);
            swiglu_forward(ff_act, a.ff_gate.data(), a.ff_pre.data(), static_cast<size_t>(N) * FF);
        }
        const F* down_in = linear_input(plan.ff_act, a.ff_act, a.ff_act_sign, ff_act, static_cast<size_t>(N) * FF);
        linear_forward(tmp.data(), down_in, p(L.w_down), L.b_down != kNone ? p(L.b_down) : nullptr, N, FF, C);
        for (size_t i = 0; i < x.size(); ++i) x[i] += tmp[i];
    }
}

template <typename F>
void Transformer<F>::forward(const int32_t* tokens, int B, int T) {
    ensure_acts(B, T);
    const int N = B * T, C = s_.n_embd;
    const bool gpt2 = s_.arch == Arch::gpt2;
    const F eps = static_cast<F>(s_.norm_eps);
    std::vector<F> x(static_cast<size_t>(N) * C);
    for (int n = 0; n < N; ++n) {
        if (tokens[n] < 0 || tokens[n] >= s_.n_vocab) throw Error(ErrorKind::invalid_argument, "trainer: token id " + std::to_string(tokens[n]) + " outside the vocabulary");
        const F* e = p(tok_embd_) + static_cast<size_t>(tokens[n]) * C;
        for (int i = 0; i < C; ++i) x[static_cast<size_t>(n) * C + i] = e[i];
        if (pos_embd_ != kNone) {
            const F* pe = p(pos_embd_) + static_cast<size_t>(n % T) * C;
            for (int i = 0; i < C; ++i) x[static_cast<size_t>(n) * C + i] += pe[i];
        }
    }
    for (int l = 0; l < s_.n_layer; ++l) {
        if (policy_.checkpoint) layer_inputs_[static_cast<size_t>(l)] = x;
        layer_forward(l, live(l), x, B, T);
    }
    resid_final_ = x;
    if (gpt2) layernorm_forward(lnf_.data(), lnf_mean_.data(), lnf_rstd_.data(), x.data(), p(out_norm_), p(out_norm_b_), N, C, eps);
    else rmsnorm_forward(lnf_.data(), lnf_rstd_.data(), x.data(), p(out_norm_), N, C, eps);
}

template <typename F>
std::vector<F> Transformer<F>::logits(const int32_t* tokens, int T) {
    forward(tokens, 1, T);
    std::vector<F> out(static_cast<size_t>(T) * s_.n_vocab);
    linear_forward(out.data(), lnf_.data(), p(output_), static_cast<const F*>(nullptr), T, s_.n_embd, s_.n_vocab);
    return out;
}

template <typename F>
double Transformer<F>::step(const int32_t* tokens, const int32_t* targets, int B, int T, bool backward) {
    forward(tokens, B, T);
    const int N = B * T, C = s_.n_embd, qd = s_.n_head * s_.head_dim, kvd = s_.n_head_kv * s_.head_dim, FF = s_.n_ff;
    const bool gpt2 = s_.arch == Arch::gpt2;
    const Plan plan(policy_);
    const F asa_scale = static_cast<F>(policy_.asa_lr_expansion * policy_.asa_eps);
    int count = 0;
    for (int n = 0; n < N; ++n) {
        if (targets[n] >= s_.n_vocab) throw Error(ErrorKind::invalid_argument, "trainer: target id outside the vocabulary");
        count += targets[n] >= 0;
    }
    if (count == 0) throw Error(ErrorKind::invalid_argument, "trainer: no targets");
    std::vector<F> dres(backward ? static_cast<size_t>(N) * C : 0), dln(dres.size());
    const double total = classifier_loss<F>(backward ? dln.data() : nullptr, backward ? g(output_) : nullptr, lnf_.data(), p(output_), targets, N, C,
                                            s_.n_vocab, F(1) / count);
    if (!backward) return total / count;

    if (gpt2) layernorm_backward(dres.data(), g(out_norm_), g(out_norm_b_), dln.data(), resid_final_.data(), p(out_norm_), lnf_mean_.data(), lnf_rstd_.data(), N, C);
    else rmsnorm_backward(dres.data(), g(out_norm_), dln.data(), resid_final_.data(), p(out_norm_), lnf_rstd_.data(), N, C);
    std::vector<F> dff_act(static_cast<size_t>(N) * FF), dff_pre(dff_act.size()), dff_gate(gpt2 ? 0 : dff_act.size());
    std::vector<F> datty(static_cast<size_t>(N) * qd), dq(datty.size()), dk(static_cast<size_t>(N) * kvd), dv(dk.size());
    std::vector<F> xin(static_cast<size_t>(N) * std::max({C, qd, FF})); // a linear's input for its weight gradient
    for (int l = s_.n_layer - 1; l >= 0; --l) {
        const Layer& L = layers_[l];
        if (policy_.checkpoint && l != s_.n_layer - 1) { // recompute from the kept input (the last layer is still live)
            std::vector<F> x = layer_inputs_[static_cast<size_t>(l)];
            layer_forward(l, acts_[0], x, B, T);
        }
        const Acts& a = live(l);
        // what dW is computed against: the kept input, the recomputed input, or (ASA) lr_expansion * eps * sign
        auto weight_input = [&](Keep keep, const std::vector<F>& kept, const std::vector<uint64_t>& sign, size_t n, auto&& recompute) -> const F* {
            if (keep == Keep::full) return kept.data();
            if (keep == Keep::sign) unpack_signs(xin.data(), sign, n, asa_scale);
            else recompute(xin.data());
            return xin.data();
        };
        auto norm2_out = [&](F* y) { norm_apply(y, a.resid_mid.data(), gpt2 ? a.ln2_mean.data() : nullptr, a.ln2_rstd.data(), p(L.ffn_norm), gpt2 ? p(L.ffn_norm_b) : nullptr, N, C); };
        auto norm1_out = [&](F* y) { norm_apply(y, a.resid_in.data(), gpt2 ? a.ln1_mean.data() : nullptr, a.ln1_rstd.data(), p(L.attn_norm), gpt2 ? p(L.attn_norm_b) : nullptr, N, C); };
        // feed-forward: x_next = resid_mid + down(act(up(norm2(resid_mid))))
        std::fill(dff_act.begin(), dff_act.end(), F(0));
        const F* down_x = weight_input(plan.ff_act, a.ff_act, a.ff_act_sign, static_cast<size_t>(N) * FF, [&](F* y) {
            if (gpt2) gelu_forward(y, a.ff_pre.data(), static_cast<size_t>(N) * FF);
            else swiglu_forward(y, a.ff_gate.data(), a.ff_pre.data(), static_cast<size_t>(N) * FF);
        });
        linear_backward(dff_act.data(), g(L.w_down), L.b_down != kNone ? g(L.b_down) : nullptr, dres.data(), down_x, p(L.w_down), N, FF, C);
        std::fill(dff_pre.begin(), dff_pre.end(), F(0));
        std::fill(dln.begin(), dln.end(), F(0));
        if (gpt2) {
            gelu_backward(dff_pre.data(), a.ff_pre.data(), dff_act.data(), dff_act.size());
        } else {
            std::fill(dff_gate.begin(), dff_gate.end(), F(0));
            swiglu_backward(dff_gate.data(), dff_pre.data(), dff_act.data(), a.ff_gate.data(), a.ff_pre.data(), dff_act.size());
        }
        const F* up_x = weight_input(plan.ln2, a.ln2, a.ln2_sign, static_cast<size_t>(N) * C, norm2_out);
        if (!gpt2) linear_backward(dln.data(), g(L.w_gate), static_cast<F*>(nullptr), dff_gate.data(), up_x, p(L.w_gate), N, C, FF);
        linear_backward(dln.data(), g(L.w_up), L.b_up != kNone ? g(L.b_up) : nullptr, dff_pre.data(), up_x, p(L.w_up), N, C, FF);
        if (gpt2) layernorm_backward(dres.data(), g(L.ffn_norm), g(L.ffn_norm_b), dln.data(), a.resid_mid.data(), p(L.ffn_norm), a.ln2_mean.data(), a.ln2_rstd.data(), N, C);
        else rmsnorm_backward(dres.data(), g(L.ffn_norm), dln.data(), a.resid_mid.data(), p(L.ffn_norm), a.ln2_rstd.data(), N, C);
        // attention: resid_mid = resid_in + out(attention(rope(q), rope(k), v))
        std::fill(datty.begin(), datty.end(), F(0));
        const F* wo_x = weight_input(plan.atty, a.atty, a.atty_sign, static_cast<size_t>(N) * qd, [](F*) {});
        linear_backward(datty.data(), g(L.wo), L.bo != kNone ? g(L.bo) : nullptr, dres.data(), wo_x, p(L.wo), N, qd, C);
        std::fill(dq.begin(), dq.end(), F(0));
        std::fill(dk.begin(), dk.end(), F(0));
        std::fill(dv.begin(), dv.end(), F(0));
        AttentionRowSource<F> src;
        struct ApproxRows { const SoftmaxApproxStore* store; int NH, T; } approx_rows{&a.approx, s_.n_head, T};
        if (policy_.attention == AttentionPolicy::dense) {
            src.P = a.P.data();
        } else if (policy_.attention == AttentionPolicy::lse) {
            src.lse = a.lse.data();
        } else { // the rebuilt P^ serves both dS and dV
            src.ctx = &approx_rows;
            src.fill = [](const void* ctx, int b, int h, int t, F* row) {
                const auto& r = *static_cast<const ApproxRows*>(ctx);
                r.store->rebuild((b * r.NH + h) * r.T + t, t + 1, row);
            };
        }
        attention_backward(dq.data(), dk.data(), dv.data(), datty.data(), src, a.q.data(), a.k.data(), a.v.data(), B, T, s_.n_head, s_.n_head_kv, s_.head_dim);
        rope_apply(dq.data(), B, T, s_.n_head, s_.head_dim, s_.rope_dim, s_.rope_base, s_.rope, true);
        rope_apply(dk.data(), B, T, s_.n_head_kv, s_.head_dim, s_.rope_dim, s_.rope_base, s_.rope, true);
        std::fill(dln.begin(), dln.end(), F(0));
        const F* qkv_x = weight_input(plan.ln1, a.ln1, a.ln1_sign, static_cast<size_t>(N) * C, norm1_out);
        linear_backward(dln.data(), g(L.wq), L.bq != kNone ? g(L.bq) : nullptr, dq.data(), qkv_x, p(L.wq), N, C, qd);
        linear_backward(dln.data(), g(L.wk), L.bk != kNone ? g(L.bk) : nullptr, dk.data(), qkv_x, p(L.wk), N, C, kvd);
        linear_backward(dln.data(), g(L.wv), L.bv != kNone ? g(L.bv) : nullptr, dv.data(), qkv_x, p(L.wv), N, C, kvd);
        if (gpt2) layernorm_backward(dres.data(), g(L.attn_norm), g(L.attn_norm_b), dln.data(), a.resid_in.data(), p(L.attn_norm), a.ln1_mean.data(), a.ln1_rstd.data(), N, C);
        else rmsnorm_backward(dres.data(), g(L.attn_norm), dln.data(), a.resid_in.data(), p(L.attn_norm), a.ln1_rstd.data(), N, C);
    }
    for (int n = 0; n < N; ++n) {
        F* ge = g(tok_embd_) + static_cast<size_t>(tokens[n]) * C;
        const F* d = dres.data() + static_cast<size_t>(n) * C;
        for (int i = 0; i < C; ++i) ge[i] += d[i];
        if (pos_embd_ != kNone) {
            F* gp = g(pos_embd_) + static_cast<size_t>(n % T) * C;
            for (int i = 0; i < C; ++i) gp[i] += d[i];
        }
    }
    return total / count;
}

template class Transformer<float>;
template class Transformer<double>;

} // namespace winnow::train
