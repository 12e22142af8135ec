#pragma once
// llama.cpp's quantization presets (llama-quantize's Q4_K_M, Q5_K_M, Q6_K, Q8_0, ...): which type each tensor of a
// model gets. A preset is more than its base type: Q4_K_M, for one, gives Q6_K to the output matrix and to half of
// the layers' attn_v and ffn_down matrices, and a matrix whose rows do not split into its type's blocks falls back to
// a type whose do (Q4_K to Q5_0 for SmolLM2's 576-wide rows). The rules here are llama.cpp's (llama-quant.cpp,
// llama_tensor_get_type) for the presets winnow writes and the dense architectures it runs;
// tests/cli/quantize_vs_llama_cpp.py checks that every tensor gets the type llama.cpp gives it.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "io/ggml_type.h"

namespace winnow {

struct QuantPreset {
    const char* name;      // as llama-quantize spells it: "Q4_K_M"
    uint32_t file_type;    // llama.cpp's llama_ftype, stored as general.file_type
    GgmlType base;         // the type most matrices get
    const char* summary;   // one line for --help
};

// The presets, in the order --help lists them.
const std::vector<QuantPreset>& quant_presets();
// The preset named `name` (any case: q4_k_m, Q4_K_M), or nullptr.
const QuantPreset* find_quant_preset(const std::string& name);

// A tensor type winnow writes (the core and preset types), by its name in any case ("q8_0", "Q6_K"), or nullopt.
std::optional<GgmlType> find_written_type(const std::string& name);
// Their names, lower case, comma-separated (for messages).
std::string written_type_names();
// find_written_type, or winnow::Error (invalid_argument) "WHAT: 'NAME' is not one of <written_type_names()>".
GgmlType require_written_type(const std::string& name, const std::string& what);

// What the rules need to know of the whole model.
struct PresetModelShape {
    int n_layer = 0;        // {arch}.block_count
    int n_attention_v = 0;  // matrices named *attn_v.weight or *attn_qkv.weight
    bool has_output = true; // an output.weight of its own (else token_embd.weight is also the output matrix)
    int n_gqa = 1;          // query heads per KV head ({arch}.attention.head_count / head_count_kv; 1 where unknown)
    bool llama_70b = false; // what llama.cpp calls a 70B llama (80 layers with grouped KV heads): attn_v gets Q5_K
};

struct PresetTensor {
    std::string name;
    uint32_t n_dims = 0;
    uint64_t ne[4] = {1, 1, 1, 1}; // ne[0] is the row length
};

// Whether llama.cpp quantizes this tensor at all: a matrix (2 or 3 dimensions of more than one element) whose name
// ends in "weight", except the norms, the position embeddings and the token-type embeddings, which keep their type.
bool is_quantizable_tensor(const PresetTensor& t);

// The type `t` gets under `preset`; nullopt when it keeps its stored type (not quantizable). pure: every quantizable
// tensor gets the base type (llama-quantize --pure), still falling back where its rows do not fit the base's blocks.
std::optional<GgmlType> preset_tensor_type(const QuantPreset& preset, const PresetTensor& t, const PresetModelShape& m, bool pure);

} // namespace winnow
