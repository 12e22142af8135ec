#include "decode/forward.h"

#include <algorithm>
#include <cstring>

#include "winnow/error.h"

namespace winnow {

Forward::Forward(const Model& model, Backend& backend, int n_ctx)
    : model_(model), c_(model.config()), be_(backend),
      cache_(c_.n_layer, n_ctx > 0 ? n_ctx : c_.n_ctx_train, c_.n_head_kv * c_.head_dim) {
    if (c_.arch == Arch::gpt2 && cache_.n_ctx() > c_.n_ctx_train)
        throw Error(ErrorKind::invalid_argument, "context " + std::to_string(cache_.n_ctx()) + " exceeds gpt2's " +
                                                     std::to_string(c_.n_ctx_train) + " learned positions");
}

void Forward::ensure_scratch(int n) {
    if (n <= scratch_tokens_) return;
    const size_t d = c_.n_embd, qd = static_cast<size_t>(c_.n_head) * c_.head_dim, kvd = static_cast<size_t>(c_.n_head_kv) * c_.head_dim;
    x_.resize(n * d); xn_.resize(n * d); q_.resize(n * qd); k_.resize(n * kvd); v_.resize(n * kvd);
    att_.resize(n * qd); proj_.resize(n * d); gate_.resize(n * static_cast<size_t>(c_.n_ff)); up_.resize(n * static_cast<size_t>(c_.n_ff));
    scratch_tokens_ = n;
}

void Forward::norm(const Vector& w, const Vector& b, const float* x, float* y, int n) {
    if (c_.arch == Arch::gpt2) be_.layer_norm(x, w, b, c_.norm_eps, y, n, c_.n_embd);
    else be_.rms_norm(x, w, c_.norm_eps, y, n, c_.n_embd);
}

void Forward::attention_block(const LayerWeights& l, int layer, int n) {
    const int qd = c_.n_head * c_.head_dim, kvd = c_.n_head_kv * c_.head_dim;
    norm(l.attn_norm, l.attn_norm_b, x_.data(), xn_.data(), n);
    be_.linear(l.wq, &l.bq, xn_.data(), q_.data(), n);
    be_.linear(l.wk, &l.bk, xn_.data(), k_.data(), n);
    be_.linear(l.wv, &l.bv, xn_.data(), v_.data(), n);
    be_.rope(q_.data(), n, c_.n_head, c_.head_dim, c_.rope_dim, n_past_, c_.rope_base, c_.rope);
    be_.rope(k_.data(), n, c_.n_head_kv, c_.head_dim, c_.rope_dim, n_past_, c_.rope_base, c_.rope);
    std::memcpy(cache_.k(layer, n_past_), k_.data(), sizeof(float) * n * kvd);
    std::memcpy(cache_.v(layer, n_past_), v_.data(), sizeof(float) * n * kvd);
    be_.attention(q_.data(), cache_.k(layer, 0), cache_.v(layer, 0), n_past_, n, c_.n_head, c_.n_head_kv, c_.head_dim, att_.data());
    be_.linear(l.wo, &l.bo, att_.data(), proj_.data(), n);
    be_.add(x_.data(), proj_.data(), static_cast<size_t>(n) * c_.n_embd);
    (void)qd;
}

void Forward::ffn_block(const LayerWeights& l, int n) {
    const size_t ff = static_cast<size_t>(n) * c_.n_ff;
    norm(l.ffn_norm, l.ffn_norm_b, x_.data(), xn_.data(), n);
    be_.linear(l.w_up, &l.b_up, xn_.data(), up_.data(), n);
    if (c_.arch == Arch::llama) {
        be_.linear(l.w_gate, nullptr, xn_.data(), gate_.data(), n);
        be_.swiglu(gate_.data(), up_.data(), up_.data(), ff);
    } else {
        be_.gelu_tanh(up_.data(), ff);
    }
    be_.linear(l.w_down, &l.b_down, up_.data(), proj_.data(), n);
    be_.add(x_.data(), proj_.data(), static_cast<size_t>(n) * c_.n_embd);
}

void Forward::run_layers(std::span<const int32_t> tokens, int head_rows) {
    const int n = static_cast<int>(tokens.size());
    if (n == 0) throw Error(ErrorKind::invalid_argument, "eval: no tokens");
    if (n_past_ + n > cache_.n_ctx())
        throw Error(ErrorKind::invalid_argument, std::to_string(n_past_ + n) + " tokens exceed the context of " + std::to_string(cache_.n_ctx()));
    for (int32_t id : tokens)
        if (id < 0 || id >= c_.n_vocab)
            throw Error(ErrorKind::invalid_argument, "token id " + std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(c_.n_vocab) + ")");
    ensure_scratch(n);
    const Weights& w = model_.weights();
    const size_t d = c_.n_embd;

    be_.get_rows(w.tok_embd, tokens.data(), n, x_.data());
    if (!w.pos_embd.empty())
        for (int t = 0; t < n; ++t) be_.add(x_.data() + t * d, w.pos_embd.data() + (n_past_ + t) * d, d);

    for (int i = 0; i < c_.n_layer; ++i) {
        attention_block(w.layers[i], i, n);
        ffn_block(w.layers[i], n);
    }

    // final norm of the last head_rows tokens only (the rows a head will read)
    const int first = n - head_rows;
    norm(w.out_norm, w.out_norm_b, x_.data() + first * d, xn_.data(), head_rows);
    hidden_.assign(xn_.begin() + static_cast<std::ptrdiff_t>((head_rows - 1) * d), xn_.begin() + static_cast<std::ptrdiff_t>(head_rows * d));
    n_past_ += n;
}

const std::vector<float>& Forward::eval(std::span<const int32_t> tokens, bool all_logits) {
    const int rows = all_logits ? static_cast<int>(tokens.size()) : 1;
    run_layers(tokens, rows);
    logits_.resize(static_cast<size_t>(rows) * c_.n_vocab);
    be_.linear(model_.weights().output, nullptr, xn_.data(), logits_.data(), rows);
    return logits_;
}

const std::vector<float>& Forward::eval_hidden(std::span<const int32_t> tokens) {
    run_layers(tokens, 1);
    return hidden_;
}

} // namespace winnow
