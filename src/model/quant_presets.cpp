#include "model/quant_presets.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "io/quant.h"
#include "winnow/error.h"

namespace winnow {

const std::vector<QuantPreset>& quant_presets() {
    static const std::vector<QuantPreset> presets = {
        {"F32", 0, GgmlType::F32, "32 bits a weight, no rounding"},
        {"F16", 1, GgmlType::F16, "16 bits a weight"},
        {"BF16", 32, GgmlType::BF16, "16 bits a weight, fp32's range"},
        {"Q8_0", 7, GgmlType::Q8_0, "8.5 bits a weight"},
        {"Q6_K", 18, GgmlType::Q6_K, "6.56 bits a weight"},
        {"Q5_K_M", 17, GgmlType::Q5_K, "Q5_K (5.5 bits), Q6_K for the output and half of attn_v and ffn_down"},
        {"Q5_K_S", 16, GgmlType::Q5_K, "Q5_K (5.5 bits), Q6_K for the output"},
        {"Q5_1", 9, GgmlType::Q5_1, "6 bits a weight"},
        {"Q5_0", 8, GgmlType::Q5_0, "5.5 bits a weight"},
        {"Q4_K_M", 15, GgmlType::Q4_K, "Q4_K (4.5 bits), Q6_K for the output and half of attn_v and ffn_down"},
        {"Q4_K_S", 14, GgmlType::Q4_K, "Q4_K (4.5 bits), Q5_K for the first attn_v and ffn_down, Q6_K for the output"},
        {"Q4_1", 3, GgmlType::Q4_1, "5 bits a weight"},
        {"Q4_0", 2, GgmlType::Q4_0, "4.5 bits a weight"},
        {"IQ4_XS", 30, GgmlType::IQ4_XS, "4.25 bits a weight on IQ4_NL's grid with 6-bit sub-block scales, Q5_K for the first eighth of ffn_down (and attn_v from 4 query heads per KV head), Q6_K for the output"},
        {"IQ4_NL", 25, GgmlType::IQ4_NL, "4.5 bits a weight on a non-uniform grid, Q5_K for the first eighth of ffn_down (and attn_v from 4 query heads per KV head), Q6_K for the output"},
        {"Q3_K_L", 13, GgmlType::Q3_K, "Q3_K (3.44 bits), Q5_K for attn_v, attn_output and ffn_down, Q6_K for the output"},
        {"Q3_K_M", 12, GgmlType::Q3_K, "Q3_K (3.44 bits), Q4_K for attn_output and ffn_down (Q5_K in the first sixteenth), Q5_K for the first two attn_v and Q4_K the rest, Q6_K for the output"},
        {"Q3_K_S", 11, GgmlType::Q3_K, "Q3_K (3.44 bits), Q6_K for the output"},
        {"Q2_K", 10, GgmlType::Q2_K, "Q2_K (2.63 bits), Q3_K for attn_output and ffn_down, Q3_K for attn_v (Q4_K from 4 query heads per KV head), Q6_K for the output"},
    };
    return presets;
}

const QuantPreset* find_quant_preset(const std::string& name) {
    std::string upper = name;
    std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    for (const QuantPreset& p : quant_presets())
        if (upper == p.name) return &p;
    return nullptr;
}

namespace {

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// Calls f(type, lower-case name) for each type winnow writes, in ggml's id order.
template <class F>
void for_each_written_type(F f) {
    for (uint32_t id = 0; id < 64; ++id) {
        const auto traits = ggml_type_traits(id);
        const auto type = static_cast<GgmlType>(id);
        if (traits && ggml_type_supported(type)) f(type, lower(traits->name));
    }
}

} // namespace

std::optional<GgmlType> find_written_type(const std::string& name) {
    std::optional<GgmlType> found;
    for_each_written_type([&](GgmlType type, const std::string& written) {
        if (written == lower(name)) found = type;
    });
    return found;
}

std::string written_type_names() {
    std::string names;
    for_each_written_type([&](GgmlType, const std::string& written) { names += (names.empty() ? "" : ", ") + written; });
    return names;
}

GgmlType require_written_type(const std::string& name, const std::string& what) {
    const auto type = find_written_type(name);
    if (!type) throw Error(ErrorKind::invalid_argument, what + ": '" + name + "' is not one of " + written_type_names());
    return *type;
}

namespace {

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The layer of "blk.N.<...>", or -1. llama.cpp counts these tensors in the order it visits them, which is by layer
// number (its loader's name order puts blk.2 before blk.10), so for one attn_v and one ffn_down per layer its count
// is the layer number.
int layer_of(const std::string& name) {
    int layer = -1;
    if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) return -1;
    return layer;
}

// llama.cpp's choice of the layers that get more bits in the _M presets: the first and last eighth, and every third
// layer between.
bool use_more_bits(int layer, int n_layers) {
    return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

uint32_t block_size(GgmlType t) { return ggml_type_traits(static_cast<uint32_t>(t))->block_size; }

bool is_k_quant(GgmlType t) { return block_size(t) == kQuantBlockK; }

// The per-tensor rules of the mixes (llama_tensor_get_type), for winnow's presets.
GgmlType mixed_type(const QuantPreset& preset, const PresetTensor& t, const PresetModelShape& m) {
    const std::string& name = t.name;
    const std::string p = preset.name;
    GgmlType type = preset.base;
    if (name == "output.weight" || (!m.has_output && name == "token_embd.weight")) {
        // the output matrix: Q6_K, or Q8_0 where the base type's blocks do not even fit its rows
        if (t.ne[0] % block_size(type) != 0) return GgmlType::Q8_0;
        return type == GgmlType::Q8_0 ? type : GgmlType::Q6_K;
    }
    if (name == "token_embd.weight") return type;
    const int layer = layer_of(name);
    if (contains(name, "attn_v.weight")) {
        if (p == "Q2_K") type = m.n_gqa >= 4 ? GgmlType::Q4_K : GgmlType::Q3_K;
        else if ((p == "IQ4_NL" || p == "IQ4_XS") && m.n_gqa >= 4) type = GgmlType::Q5_K;
        else if (p == "Q3_K_M") type = layer < 2 ? GgmlType::Q5_K : GgmlType::Q4_K;
        else if (p == "Q3_K_L") type = GgmlType::Q5_K;
        else if ((p == "Q4_K_M" || p == "Q5_K_M") && use_more_bits(layer, m.n_attention_v)) type = GgmlType::Q6_K;
        else if (p == "Q4_K_S" && layer < 4) type = GgmlType::Q5_K;
        // a 70B llama's attn_v is 8x smaller than attn_q (8 query heads per KV head): more bits cost little
        if (m.llama_70b && (type == GgmlType::Q3_K || type == GgmlType::Q4_K)) type = GgmlType::Q5_K;
        return type;
    }
    if (contains(name, "ffn_down")) {
        if (p == "Q2_K") return GgmlType::Q3_K;
        if (p == "Q3_K_M") return layer < m.n_layer / 16 ? GgmlType::Q5_K : GgmlType::Q4_K;
        if (p == "Q3_K_L") return GgmlType::Q5_K;
        if ((p == "IQ4_NL" || p == "IQ4_XS") && layer < m.n_layer / 8) return GgmlType::Q5_K; // without an importance matrix, as here
        if ((p == "Q4_K_M" || p == "Q5_K_M") && use_more_bits(layer, m.n_layer)) return GgmlType::Q6_K;
        if (p == "Q4_K_S" && layer < m.n_layer / 8) return GgmlType::Q5_K;
        return type;
    }
    if (contains(name, "attn_output.weight")) {
        if (p == "Q2_K") return GgmlType::Q3_K;
        if (p == "Q3_K_M") return GgmlType::Q4_K;
        if (p == "Q3_K_L") return GgmlType::Q5_K;
        return type;
    }
    if (contains(name, "attn_qkv.weight")) {
        if (p == "Q3_K_M" || p == "Q3_K_L") return GgmlType::Q4_K;
        if (p == "Q4_K_M") return GgmlType::Q5_K;
        if (p == "Q5_K_M") return GgmlType::Q6_K;
    }
    return type;
}

// A type of 256-weight blocks that do not fit the rows falls back as llama.cpp's does (Q2_K, Q3_K and IQ4_XS to IQ4_NL,
// Q4_K to Q5_0, Q5_K to Q5_1, Q6_K to Q8_0); then F16 if even that does not fit.
GgmlType fitting_type(GgmlType type, uint64_t row) {
    if (row % block_size(type) == 0) return type;
    if (is_k_quant(type)) {
        type = type == GgmlType::Q2_K || type == GgmlType::Q3_K || type == GgmlType::IQ4_XS ? GgmlType::IQ4_NL
               : type == GgmlType::Q4_K                          ? GgmlType::Q5_0
               : type == GgmlType::Q5_K                          ? GgmlType::Q5_1
                                                                 : GgmlType::Q8_0;
        if (row % block_size(type) == 0) return type;
    }
    return GgmlType::F16;
}

} // namespace

bool is_quantizable_tensor(const PresetTensor& t) {
    int dims = 0; // dimensions of more than one element, as ggml_n_dims counts them
    for (uint32_t i = 0; i < std::min<uint32_t>(t.n_dims, 4); ++i)
        if (t.ne[i] > 1) dims = static_cast<int>(i) + 1;
    if (dims < 2 || dims > 3) return false;
    if (!ends_with(t.name, "weight") || contains(t.name, "_norm.weight")) return false;
    return t.name != "position_embd.weight" && t.name != "token_types.weight";
}

std::optional<GgmlType> preset_tensor_type(const QuantPreset& preset, const PresetTensor& t, const PresetModelShape& m, bool pure) {
    if (!is_quantizable_tensor(t)) return std::nullopt;
    const GgmlType type = pure || !is_quantized_type(preset.base) ? preset.base : mixed_type(preset, t, m);
    return fitting_type(type, t.ne[0]);
}

} // namespace winnow
