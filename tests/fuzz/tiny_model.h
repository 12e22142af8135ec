#pragma once
// The tiny llama checkpoint the config.json and safetensors harnesses put next to their fuzzed file (and
// tests/hostile/fuzz_regressions.cpp replays with): vocab 32, d 16, 1 layer, 2 heads, ff 32, untied, F32 zeros.
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace winnow::fuzz {

inline constexpr std::string_view kTinyLlamaConfig = R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 32,
 "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2, "intermediate_size": 32,
 "max_position_embeddings": 64, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": false})";

// model.safetensors with every tensor the llama mapping asks for.
inline std::string tiny_llama_safetensors() {
    const std::vector<std::pair<std::string, std::vector<uint64_t>>> shapes = {
        {"model.embed_tokens.weight", {32, 16}}, {"lm_head.weight", {32, 16}}, {"model.norm.weight", {16}},
        {"model.layers.0.input_layernorm.weight", {16}}, {"model.layers.0.post_attention_layernorm.weight", {16}},
        {"model.layers.0.self_attn.q_proj.weight", {16, 16}}, {"model.layers.0.self_attn.k_proj.weight", {16, 16}},
        {"model.layers.0.self_attn.v_proj.weight", {16, 16}}, {"model.layers.0.self_attn.o_proj.weight", {16, 16}},
        {"model.layers.0.mlp.gate_proj.weight", {32, 16}}, {"model.layers.0.mlp.up_proj.weight", {32, 16}},
        {"model.layers.0.mlp.down_proj.weight", {16, 32}}};
    nlohmann::ordered_json h;
    uint64_t off = 0;
    for (const auto& [name, shape] : shapes) {
        uint64_t n = 4;
        for (auto d : shape) n *= d;
        h[name] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {off, off + n}}};
        off += n;
    }
    std::string header = h.dump();
    while (header.size() % 8) header += ' ';
    std::string out(8, '\0');
    const uint64_t hn = header.size();
    std::memcpy(out.data(), &hn, 8);
    return out + header + std::string(off, '\0');
}

} // namespace winnow::fuzz
