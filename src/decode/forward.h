#pragma once
// The transformer forward pass (gpt2 and llama) over a KV cache: prefill a batch of tokens, or decode one.
#include <cstdint>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "decode/kv_cache.h"
#include "model/model.h"

namespace winnow {

class Forward {
public:
    // n_ctx <= 0: the model's training context.
    Forward(const Model& model, Backend& backend, int n_ctx = 0);

    // Appends `tokens` at positions n_past().. and returns next-token logits: one row of n_vocab per token when
    // all_logits, else only the last token's row. Throws winnow::Error for out-of-range ids or a full context.
    const std::vector<float>& eval(std::span<const int32_t> tokens, bool all_logits = false);
    // Like eval, but stops at the final norm: returns the last token's hidden state, for a separate output head.
    const std::vector<float>& eval_hidden(std::span<const int32_t> tokens);
    // The final-norm hidden state of the last token of the latest eval (the output head's input).
    const std::vector<float>& final_hidden() const { return hidden_; }
    int n_past() const { return n_past_; }
    int n_ctx() const { return cache_.n_ctx(); }
    void reset() { n_past_ = 0; }

private:
    void ensure_scratch(int n_tokens);
    void run_layers(std::span<const int32_t> tokens, int head_rows);
    void attention_block(const LayerWeights& l, int layer, int n);
    void ffn_block(const LayerWeights& l, int n);
    void norm(const Vector& w, const Vector& b, const float* x, float* y, int n);

    const Model& model_;
    const ModelConfig& c_;
    Backend& be_;
    KvCache cache_;
    int n_past_ = 0;
    int scratch_tokens_ = 0;
    // scratch activations, [n_tokens][dim]
    std::vector<float> x_, xn_, q_, k_, v_, att_, proj_, gate_, up_, logits_, hidden_;
};

} // namespace winnow
