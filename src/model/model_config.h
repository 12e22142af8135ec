#pragma once
// Architecture hyper-parameters, independent of the file format they were read from.
#include <cstdint>
#include <string>
#include <vector>

namespace winnow {

enum class Arch { gpt2, llama };
const char* to_string(Arch a);

// How RoPE pairs the dimensions of a head. GGUF llama files use adjacent pairs (2i, 2i+1) because
// llama.cpp's converter permutes the q/k rows; HF checkpoints pair i with i + rope_dim/2 ("rotate half").
enum class RopeStyle { none, adjacent_pairs, rotate_half };
const char* to_string(RopeStyle r);

// The activation of a llama-computation model's gated FFN, down(act(gate x) * up x): SiLU (SwiGLU: llama, qwen) or
// GELU's tanh approximation (GeGLU: gemma).
enum class GateActivation { silu, gelu_tanh };
const char* to_string(GateActivation a);

struct ModelConfig {
    Arch arch = Arch::llama;
    int n_vocab = 0;
    int n_embd = 0;
    int n_layer = 0;
    int n_head = 0;
    int n_head_kv = 0;
    int head_dim = 0; // gpt2: n_embd / n_head; llama-computation files may say otherwise (GGUF attention.key_length, HF head_dim)
    int n_ff = 0;
    int n_ctx_train = 0;
    float norm_eps = 1e-5f;
    RopeStyle rope = RopeStyle::none;
    int rope_dim = 0;
    float rope_base = 10000.0f;
    bool tied_head = false;
    GateActivation gate_act = GateActivation::silu;
    // Gemma 2 and 3 (all zero, empty or unset elsewhere):
    float embd_scale = 0;        // the token embedding rows are multiplied by it (sqrt(n_embd)); 0: as stored
    float attn_scale = 0;        // multiplies q.k (query_pre_attn_scalar^-1/2); 0: 1 / sqrt(head_dim)
    int sliding_window = 0;      // the keys a sliding layer's row attends to: positions p - window < j <= p
    std::vector<uint8_t> sliding_layers; // per layer, 1 where it attends through the sliding window; empty: none does
    float rope_base_sliding = 0; // the sliding layers' rope base (their rotation is never scaled); 0: rope_base
    // Gemma 2's soft caps, s -> cap * tanh(s / cap): of every attention score (after the scale) and of the logits; 0: none
    float attn_softcap = 0;
    float final_softcap = 0;
    bool layer_slides(int layer) const {
        return sliding_window > 0 && layer >= 0 && layer < static_cast<int>(sliding_layers.size()) && sliding_layers[layer] != 0;
    }
    std::string name;
    std::string arch_name; // as the file declares it (GGUF general.architecture, HF model_type): "qwen2" runs as Arch::llama
    std::string architecture() const { return arch_name.empty() ? to_string(arch) : arch_name; }
    void validate(const std::string& source) const; // throws winnow::Error on an inconsistent config
};

} // namespace winnow
