#include "model/model_config.h"

#include <cmath>

#include "winnow/error.h"

namespace winnow {

const char* to_string(Arch a) { return a == Arch::gpt2 ? "gpt2" : "llama"; }

const char* to_string(RopeStyle r) {
    switch (r) {
    case RopeStyle::none: return "none";
    case RopeStyle::adjacent_pairs: return "adjacent pairs (GGUF)";
    case RopeStyle::rotate_half: return "rotate half (HF)";
    }
    return "?";
}

const char* to_string(GateActivation a) { return a == GateActivation::silu ? "silu" : "gelu_tanh"; }

void ModelConfig::validate(const std::string& source) const {
    auto bad = [&](const std::string& what) { throw Error(ErrorKind::format, source + ": " + what); };
    auto in_range = [&](const char* field, int v, int lo, int hi) {
        if (v < lo || v > hi) bad(std::string(field) + " = " + std::to_string(v) + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    };
    in_range("vocabulary size", n_vocab, 1, 1 << 24);
    in_range("embedding length", n_embd, 1, 1 << 16);
    in_range("block count", n_layer, 1, 1024);
    in_range("head count", n_head, 1, 1024);
    in_range("kv head count", n_head_kv, 1, n_head);
    in_range("feed-forward length", n_ff, 1, 1 << 20);
    in_range("context length", n_ctx_train, 1, 1 << 24);
    if (n_head % n_head_kv != 0) bad("head count " + std::to_string(n_head) + " is not a multiple of kv head count " + std::to_string(n_head_kv));
    // gpt2's heads split the embedding; a llama-computation model's may be wider or narrower (Qwen3-0.6B: 16 heads of
    // 128 on a 1,024-wide embedding), its q projection then n_head x head_dim rows and its output projection as many columns
    in_range("head dim", head_dim, 1, 1024);
    if (arch == Arch::gpt2 && head_dim * n_head != n_embd) bad("embedding length " + std::to_string(n_embd) + " is not head count x head dim");
    if (rope != RopeStyle::none) {
        if (rope_dim <= 0 || rope_dim > head_dim || rope_dim % 2 != 0) bad("rope dimension " + std::to_string(rope_dim) + " must be even and at most the head dim");
        if (!(rope_base > 0.0f)) bad("rope freq base must be positive");
    }
    if (!(norm_eps > 0.0f && norm_eps < 1.0f)) bad("norm epsilon " + std::to_string(norm_eps) + " out of range (0, 1)");
    if (embd_scale < 0 || !std::isfinite(embd_scale)) bad("embedding scale must be a finite number >= 0");
    if (attn_scale < 0 || !std::isfinite(attn_scale)) bad("attention scale must be a finite number >= 0");
    if (sliding_window < 0) bad("sliding window must be >= 0");
    if (!sliding_layers.empty() && static_cast<int>(sliding_layers.size()) != n_layer)
        bad(std::to_string(sliding_layers.size()) + " sliding-window layer flags for " + std::to_string(n_layer) + " layers");
    if (rope_base_sliding < 0 || !std::isfinite(rope_base_sliding)) bad("the sliding layers' rope base must be a finite number >= 0");
    if (attn_softcap < 0 || !std::isfinite(attn_softcap)) bad("the attention soft cap must be a finite number >= 0");
    if (final_softcap < 0 || !std::isfinite(final_softcap)) bad("the logits' soft cap must be a finite number >= 0");
}

} // namespace winnow
