#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "io/json_file.h"

#include "io/quant.h"
#include "io/safetensors.h"
#include "model/loaders.h"
#include "winnow/error.h"

namespace winnow {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

GgmlType ggml_type_of(io::StDtype d, const std::string& where) {
    switch (d) {
    case io::StDtype::F32: return GgmlType::F32;
    case io::StDtype::F16: return GgmlType::F16;
    case io::StDtype::BF16: return GgmlType::BF16;
    default: throw Error(ErrorKind::unsupported, where + ": dtype " + io::to_string(d) + " is not supported (F32, F16, BF16)");
    }
}

std::string shape_str(const std::vector<uint64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}


struct HfConfig {
    const json& j;
    std::string path;
    template <typename T>
    T get(const char* key) const {
        if (!has(key)) throw Error(ErrorKind::format, "'" + path + "': required key '" + key + "' is missing");
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>)
            if (!io::json_int_fits<T>(j[key])) throw Error(ErrorKind::format, "'" + path + "': key '" + key + "' is out of range");
        try {
            return j[key].get<T>();
        } catch (const json::exception&) {
            throw Error(ErrorKind::format, "'" + path + "': key '" + key + "' has the wrong type");
        }
    }
    template <typename T>
    T get_or(const char* key, T def) const { return has(key) ? get<T>(key) : def; }
    // present and not null (a null value counts as absent, as transformers writes unset options)
    bool has(const char* key) const { return j.contains(key) && !j[key].is_null(); }
};

class Mapper {
public:
    Mapper(LoadedModel& m, const io::SafetensorsModel& st, std::vector<std::vector<uint8_t>>& owned) : m_(m), st_(st), owned_(owned) {}

    const io::StTensor& require(const std::string& name) const {
        const auto* t = st_.find(name);
        if (!t) throw Error(ErrorKind::format, "safetensors '" + st_.path() + "': required tensor '" + name + "' not found");
        return *t;
    }
    const io::StTensor* find(const std::string& name) const { return st_.find(name); }

    // An HF Linear weight stored [out, in]: used in place.
    Matrix linear(const std::string& name, int64_t rows, int64_t cols) const {
        const auto& t = require(name);
        check_shape(t, {static_cast<uint64_t>(rows), static_cast<uint64_t>(cols)});
        Matrix mat;
        mat.type = ggml_type_of(t.dtype, where(t));
        mat.rows = rows;
        mat.cols = cols;
        mat.row_bytes = ggml_row_bytes(mat.type, cols);
        mat.data = t.data;
        mat.name = name;
        return mat;
    }

    // An HF GPT-2 Conv1D weight stored [in, out]: transposed once into an owned fp32 [out, in] buffer.
    Matrix conv1d(const std::string& name, int64_t in, int64_t out) {
        const auto& t = require(name);
        check_shape(t, {static_cast<uint64_t>(in), static_cast<uint64_t>(out)});
        const GgmlType src_type = ggml_type_of(t.dtype, where(t));
        std::vector<float> src(static_cast<size_t>(in) * out);
        dequantize_row(src_type, t.data, src.data(), src.size());
        auto& buf = owned_.emplace_back(src.size() * sizeof(float));
        float* dst = reinterpret_cast<float*>(buf.data());
        for (int64_t i = 0; i < in; ++i)
            for (int64_t o = 0; o < out; ++o) dst[o * in + i] = src[i * out + o];
        Matrix mat;
        mat.type = GgmlType::F32;
        mat.rows = out;
        mat.cols = in;
        mat.row_bytes = in * sizeof(float);
        mat.data = buf.data();
        mat.name = name;
        return mat;
    }

    Vector vector(const std::string& name, int64_t n) const {
        const auto& t = require(name);
        check_shape(t, {static_cast<uint64_t>(n)});
        Vector v(n);
        dequantize_row(ggml_type_of(t.dtype, where(t)), t.data, v.data(), n);
        return v;
    }

private:
    std::string where(const io::StTensor& t) const { return "safetensors file '" + *t.file + "': tensor '" + t.name + "'"; }
    void check_shape(const io::StTensor& t, const std::vector<uint64_t>& expected) const {
        if (t.shape != expected)
            throw Error(ErrorKind::format, where(t) + " has shape " + shape_str(t.shape) + ", expected " + shape_str(expected));
    }
    LoadedModel& m_;
    const io::SafetensorsModel& st_;
    std::vector<std::vector<uint8_t>>& owned_;
};

void load_gpt2(const HfConfig& h, ModelConfig& c) {
    c.arch = Arch::gpt2;
    c.n_embd = h.get<int>("n_embd");
    c.n_layer = h.get<int>("n_layer");
    c.n_head = h.get<int>("n_head");
    c.n_head_kv = c.n_head;
    c.n_ff = h.get_or<int>("n_inner", 4 * c.n_embd);
    c.n_ctx_train = h.get<int>("n_positions");
    c.n_vocab = h.get<int>("vocab_size");
    c.norm_eps = h.get_or<float>("layer_norm_epsilon", 1e-5f);
    c.rope = RopeStyle::none;
    c.tied_head = true;
    const auto act = h.get_or<std::string>("activation_function", "gelu_new");
    if (act != "gelu_new" && act != "gelu_pytorch_tanh")
        throw Error(ErrorKind::unsupported, "'" + h.path + "': activation_function '" + act + "' is not supported (gelu_new)");
}

// The rotary base. transformers 5 writes the rotary settings as "rope_parameters": {"rope_type": ..., "rope_theta": ...}
// (a saved config then has no top-level "rope_theta"); earlier versions a top-level "rope_theta", with "rope_scaling"
// for the scaled variants. Either form is read; of the scaled variants only "llama3" is taken (llama3_rope_scaling
// reads its parameters), and a base that is not a positive finite number or two bases that disagree are refused.
float rope_theta(const HfConfig& h) {
    float base = h.get_or<float>("rope_theta", 10000.0f);
    if (h.has("rope_parameters")) {
        const json& rp = h.j["rope_parameters"];
        if (!rp.is_object()) throw Error(ErrorKind::format, "'" + h.path + "': rope_parameters is not an object");
        const HfConfig p{rp, h.path + " rope_parameters"}; // its messages: "'<path> rope_parameters': key ..."
        const auto type = p.get_or<std::string>("rope_type", "default");
        if (type != "default" && type != "llama3")
            throw Error(ErrorKind::unsupported, "'" + h.path + "': rope_parameters.rope_type '" + type + "' is not supported (default, llama3)");
        if (p.has("rope_theta")) {
            const float theta = p.get<float>("rope_theta");
            if (h.has("rope_theta") && theta != base)
                throw Error(ErrorKind::format, "'" + h.path + "': rope_theta " + std::to_string(base) + " and rope_parameters.rope_theta " + std::to_string(theta) +
                                                   " differ");
            base = theta;
        }
    }
    if (!(base > 0 && std::isfinite(base))) throw Error(ErrorKind::format, "'" + h.path + "': rope_theta must be a positive finite number");
    return base;
}

// The "llama3" rotary scaling object (transformers 5's rope_parameters, earlier versions' rope_scaling) and where it
// is, or {null, ""} when the rotation is unscaled; any other scaling is refused.
std::pair<const json*, std::string> llama3_rope_scaling(const HfConfig& h) {
    for (const char* key : {"rope_scaling", "rope_parameters"}) {
        if (!h.has(key)) continue;
        const json& s = h.j[key];
        if (!s.is_object()) throw Error(ErrorKind::format, "'" + h.path + "': " + key + " is not an object");
        const HfConfig o{s, h.path + " " + key};
        const auto type = o.has("rope_type") ? o.get<std::string>("rope_type") : o.get_or<std::string>("type", "default");
        if (type == "llama3") return {&s, h.path + " " + key};
        if (type != "default") throw Error(ErrorKind::unsupported, "'" + h.path + "': " + key + " type '" + type + "' is not supported (llama3)");
    }
    return {nullptr, ""};
}

// Llama 3.1's rotary scaling as one angle divisor per rotated pair (GGUF's rope_freqs.weight): pairs whose wavelength
// is under original_max_position_embeddings / high_freq_factor keep theirs (1), those over
// original_max_position_embeddings / low_freq_factor are slowed by factor, and those between are interpolated.
Vector llama3_rope_factors(const json& scaling, const std::string& where, float base, int rope_dim) {
    const HfConfig s{scaling, where};
    const double factor = s.get<double>("factor"), low = s.get_or<double>("low_freq_factor", 1.0), high = s.get_or<double>("high_freq_factor", 4.0);
    const double old_ctx = s.get<double>("original_max_position_embeddings");
    if (!(factor > 0 && low > 0 && high > low && old_ctx > 0 && std::isfinite(factor) && std::isfinite(high) && std::isfinite(old_ctx)))
        throw Error(ErrorKind::format, "'" + where + "': llama3 rope scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0");
    const double low_wavelen = old_ctx / low, high_wavelen = old_ctx / high;
    Vector out(rope_dim / 2);
    for (int i = 0; i < rope_dim / 2; ++i) {
        const double wavelen = 2.0 * std::numbers::pi * std::pow(static_cast<double>(base), 2.0 * i / rope_dim);
        double divisor = 1.0;
        if (wavelen > low_wavelen) divisor = factor;
        else if (wavelen >= high_wavelen) {
            const double smooth = (old_ctx / wavelen - low) / (high - low);
            divisor = 1.0 / ((1.0 - smooth) / factor + smooth);
        }
        out[i] = static_cast<float>(divisor);
    }
    return out;
}

// The sizes every llama-computation config.json names the same way (llama, qwen2, qwen3, gemma3_text), and HF's
// rotate-half RoPE; tie_word_embeddings where absent: the model class's default.
void read_llama_sizes(const HfConfig& h, ModelConfig& c, bool tied_by_default) {
    c.arch = Arch::llama;
    c.n_embd = h.get<int>("hidden_size");
    c.n_layer = h.get<int>("num_hidden_layers");
    c.n_head = h.get<int>("num_attention_heads");
    c.n_head_kv = h.get_or<int>("num_key_value_heads", c.n_head);
    c.n_ff = h.get<int>("intermediate_size");
    c.n_ctx_train = h.get<int>("max_position_embeddings");
    c.n_vocab = h.get<int>("vocab_size");
    c.norm_eps = h.get_or<float>("rms_norm_eps", 1e-6f);
    c.rope = RopeStyle::rotate_half;
    c.tied_head = h.get_or<bool>("tie_word_embeddings", tied_by_default);
}

// llama, qwen2 and qwen3 (the same computation; qwen2 has q/k/v biases, llama and qwen3 q/k/v/o biases with
// attention_bias, qwen3 q/k head norms).
void load_llama(const HfConfig& h, ModelConfig& c) {
    read_llama_sizes(h, c, false);
    c.rope_base = rope_theta(h);
    const auto act = h.get_or<std::string>("hidden_act", "silu");
    if (act != "silu") throw Error(ErrorKind::unsupported, "'" + h.path + "': hidden_act '" + act + "' is not supported (silu)");
    if (h.get_or<bool>("mlp_bias", false)) throw Error(ErrorKind::unsupported, "'" + h.path + "': mlp_bias is not supported");
    if (h.get_or<bool>("use_sliding_window", false))
        throw Error(ErrorKind::unsupported, "'" + h.path + "': use_sliding_window is not supported (winnow attends to the whole context)");
    // transformers 5 names each layer's attention; only full attention is computed here
    if (h.has("layer_types")) {
        const json& types = h.j["layer_types"];
        if (!types.is_array()) throw Error(ErrorKind::format, "'" + h.path + "': layer_types is not an array");
        for (const json& t : types)
            if (!t.is_string() || t.get<std::string>() != "full_attention")
                throw Error(ErrorKind::unsupported, "'" + h.path + "': layer_types entry " + t.dump() + " is not supported (full_attention)");
    }
}

// A Gemma 2 soft cap: HF's class default when the key is absent, none (0) when it is null, else a positive number.
float gemma2_softcap(const HfConfig& h, const char* key, float class_default) {
    if (!h.j.contains(key)) return class_default;
    if (h.j[key].is_null()) return 0.0f;
    const float cap = h.get<float>(key);
    if (!(cap > 0 && std::isfinite(cap))) throw Error(ErrorKind::format, "'" + h.path + "': " + key + " must be a positive finite number or null");
    return cap;
}

// Gemma 2's and Gemma 3's text models (model_type gemma2, Gemma2ForCausalLM; gemma3_text, Gemma3ForCausalLM: Gemma 3
// 1B and 270M; the multimodal "gemma3" checkpoints are refused): llama's computation with GeGLU, norms of the
// attention's and the FFN's outputs, the embedding scaled by sqrt(hidden_size), query_pre_attn_scalar, and
// sliding-window layers (layer_types, or every sliding_window_pattern-th layer full: 2 for Gemma 2, 6 for Gemma 3).
// Gemma 2: one rope base, and soft caps of the scores and the logits (attn_logit_softcapping, final_logit_softcapping;
// HF's defaults 50 and 30 when absent). Gemma 3: q/k head norms; the sliding layers' rotation has rope_local_base_freq
// and is never scaled, the full layers' may be scaled linearly (Gemma 3 4B and up: factor 8); softcapping refused.
void load_gemma(const HfConfig& h, ModelConfig& c, bool gemma2) {
    read_llama_sizes(h, c, true);
    c.gate_act = GateActivation::gelu_tanh;
    const auto act = h.get_or<std::string>("hidden_activation", h.get_or<std::string>("hidden_act", "gelu_pytorch_tanh"));
    if (act != "gelu_pytorch_tanh") throw Error(ErrorKind::unsupported, "'" + h.path + "': hidden_activation '" + act + "' is not supported (gelu_pytorch_tanh)");
    if (gemma2) {
        c.attn_softcap = gemma2_softcap(h, "attn_logit_softcapping", 50.0f);
        c.final_softcap = gemma2_softcap(h, "final_logit_softcapping", 30.0f);
    } else {
        for (const char* cap : {"attn_logit_softcapping", "final_logit_softcapping"})
            if (h.has(cap)) throw Error(ErrorKind::unsupported, "'" + h.path + "': " + cap + " is not supported");
    }
    c.sliding_window = gemma2 ? h.get_or<int>("sliding_window", 4096) : h.get<int>("sliding_window"); // Gemma2Config's default
    if (c.sliding_window < 1) throw Error(ErrorKind::format, "'" + h.path + "': sliding_window must be positive");
    if (c.n_layer < 1 || c.n_layer > 1024) throw Error(ErrorKind::format, "'" + h.path + "': num_hidden_layers is out of range [1, 1024]");
    c.sliding_layers.assign(c.n_layer, 0);
    if (h.has("layer_types")) {
        const json& types = h.j["layer_types"];
        if (!types.is_array() || static_cast<int>(types.size()) != c.n_layer)
            throw Error(ErrorKind::format, "'" + h.path + "': layer_types is not an array of num_hidden_layers entries");
        for (int i = 0; i < c.n_layer; ++i) {
            const std::string t = types[i].is_string() ? types[i].get<std::string>() : "";
            if (t != "sliding_attention" && t != "full_attention")
                throw Error(ErrorKind::unsupported, "'" + h.path + "': layer_types entry " + types[i].dump() + " is not supported (sliding_attention, full_attention)");
            c.sliding_layers[i] = t == "sliding_attention";
        }
    } else {
        const int every = gemma2 ? 2 : h.get_or<int>("sliding_window_pattern", 6);
        if (every < 1) throw Error(ErrorKind::format, "'" + h.path + "': sliding_window_pattern must be positive");
        for (int i = 0; i < c.n_layer; ++i) c.sliding_layers[i] = (i + 1) % every != 0;
    }
    // the rotary bases: rope_theta / rope_local_base_freq, or transformers 5's rope_parameters per layer type
    c.rope_base = h.get_or<float>("rope_theta", gemma2 ? 10000.0f : 1000000.0f);
    c.rope_base_sliding = gemma2 ? c.rope_base : h.get_or<float>("rope_local_base_freq", 10000.0f);
    const float query_scalar = h.get_or<float>("query_pre_attn_scalar", 256.0f); // Gemma2Config's and Gemma3TextConfig's default
    if (!(query_scalar > 0) || !std::isfinite(query_scalar)) throw Error(ErrorKind::format, "'" + h.path + "': query_pre_attn_scalar must be positive");
    c.attn_scale = 1.0f / std::sqrt(query_scalar);
    for (float b : {c.rope_base, c.rope_base_sliding})
        if (!(b > 0 && std::isfinite(b))) throw Error(ErrorKind::format, "'" + h.path + "': the rope bases must be positive finite numbers");
}

// Gemma 3's linear rope scaling factor of the full layers (1: unscaled): rope_scaling {"rope_type": "linear",
// "factor": F}, or transformers 5's rope_parameters {"full_attention": {...}, "sliding_attention": {...}}, whose
// rope_theta values then give the two bases (one flat rope_parameters object is the full layers'). The sliding layers'
// rotation must be unscaled.
float gemma3_rope(const HfConfig& h, ModelConfig& c) {
    auto linear_factor = [&](const json& s, const std::string& where) {
        if (!s.is_object()) throw Error(ErrorKind::format, "'" + h.path + "': " + where + " is not an object");
        const HfConfig o{s, h.path + " " + where};
        const auto type = o.has("rope_type") ? o.get<std::string>("rope_type") : o.get_or<std::string>("type", "default");
        if (type == "default") return 1.0f;
        if (type != "linear") throw Error(ErrorKind::unsupported, "'" + h.path + "': " + where + " type '" + type + "' is not supported (default, linear)");
        const float f = o.get<float>("factor");
        if (!(f > 0 && std::isfinite(f))) throw Error(ErrorKind::format, "'" + h.path + "': " + where + ".factor must be a positive finite number");
        return f;
    };
    float factor = h.has("rope_scaling") ? linear_factor(h.j["rope_scaling"], "rope_scaling") : 1.0f;
    if (h.has("rope_parameters")) {
        const json& rp = h.j["rope_parameters"];
        if (!rp.is_object()) throw Error(ErrorKind::format, "'" + h.path + "': rope_parameters is not an object");
        if (!rp.contains("full_attention") && !rp.contains("sliding_attention")) { // one flat object: the full layers'
            factor = linear_factor(rp, "rope_parameters");
            const HfConfig o{rp, h.path + " rope_parameters"};
            if (o.has("rope_theta")) c.rope_base = o.get<float>("rope_theta");
        }
        for (const char* kind : {"full_attention", "sliding_attention"}) {
            if (!rp.contains(kind)) continue;
            const std::string where = std::string("rope_parameters.") + kind;
            const float f = linear_factor(rp[kind], where);
            const HfConfig o{rp[kind], h.path + " " + where};
            const bool full = std::string(kind) == "full_attention";
            if (!full && f != 1.0f) throw Error(ErrorKind::unsupported, "'" + h.path + "': scaled rotation of the sliding layers is not supported");
            if (full) factor = f;
            if (o.has("rope_theta")) (full ? c.rope_base : c.rope_base_sliding) = o.get<float>("rope_theta");
        }
    }
    for (float b : {c.rope_base, c.rope_base_sliding})
        if (!(b > 0 && std::isfinite(b))) throw Error(ErrorKind::format, "'" + h.path + "': the rope bases must be positive finite numbers");
    return factor;
}

// sqrt(hidden_size) as HF's Gemma3TextScaledWordEmbedding multiplies with it: rounded to the embedding's dtype.
float gemma_embedding_scale(int n_embd, GgmlType embd_type) {
    const float s = std::sqrt(static_cast<float>(n_embd));
    if (embd_type == GgmlType::BF16) return bf16_to_fp32(fp32_to_bf16(s));
    if (embd_type == GgmlType::F16) return fp16_to_fp32(fp32_to_fp16(s));
    return s;
}

} // namespace

void SafetensorsLoader::load() {
    const fs::path p(m.path_);
    const fs::path dir = fs::is_directory(p) ? p : p.parent_path();
    const fs::path cfg_path = dir / "config.json";
    if (!fs::exists(cfg_path)) throw Error(ErrorKind::io, "safetensors model '" + m.path_ + "': no config.json beside it");
    const json j = io::read_json_file(cfg_path);
    const HfConfig h{j, cfg_path.string()};
    ModelConfig& c = m.config_;
    const auto type = h.get<std::string>("model_type");
    if (type == "gpt2") load_gpt2(h, c);
    else if (type == "llama" || type == "qwen2" || type == "qwen3") load_llama(h, c);
    else if (type == "gemma3_text" || type == "gemma2") load_gemma(h, c, type == "gemma2");
    else if (type == "gemma3")
        throw Error(ErrorKind::unsupported, "'" + cfg_path.string() + "': model_type gemma3 (Gemma 3's image-text checkpoints) is not supported; "
                                                                        "its text-only checkpoints (gemma3_text, Gemma3ForCausalLM) are");
    else
        throw Error(ErrorKind::unsupported, "'" + cfg_path.string() + "': unknown model_type '" + type +
                                                "' (winnow supports gpt2, llama, qwen2, qwen3, gemma2 and gemma3_text)");
    const bool gemma3 = type == "gemma3_text", gemma = gemma3 || type == "gemma2";
    c.arch_name = gemma3 ? "gemma3" : type;
    // qwen2's q/k/v projections always have biases (its o_proj none); llama's and qwen3's all four with attention_bias;
    // qwen3 normalizes each q and k head before RoPE
    const bool qkv_bias = type == "qwen2" || h.get_or<bool>("attention_bias", false), o_bias = type != "qwen2" && qkv_bias;
    const bool qk_norm = type == "qwen3" || gemma3;
    if (c.n_head > 0) c.head_dim = c.n_embd / c.n_head;
    if (c.arch == Arch::llama) {
        if (!h.has("head_dim") && c.n_head > 0 && c.n_embd % c.n_head != 0)
            throw Error(ErrorKind::format, "'" + cfg_path.string() + "': hidden_size " + std::to_string(c.n_embd) + " is not a multiple of num_attention_heads " +
                                               std::to_string(c.n_head) + " and no head_dim says the head width");
        c.head_dim = h.get_or<int>("head_dim", c.head_dim);
        c.rope_dim = c.head_dim;
    }
    c.validate("'" + cfg_path.string() + "'");

    if (gemma) {
        // Gemma 2's one base stands for both kinds of layer (its rope_parameters, if any, name one rotation)
        if (const float factor = gemma3_rope(h, c); factor != 1.0f) {
            if (!gemma3) throw Error(ErrorKind::unsupported, "'" + cfg_path.string() + "': a scaled rotation is not supported for gemma2");
            m.weights_.rope_freqs.assign(c.rope_dim / 2, factor);
        }
        if (!gemma3) c.rope_base_sliding = c.rope_base;
    } else if (c.arch == Arch::llama) {
        if (const auto [scaling, where] = llama3_rope_scaling(h); scaling) m.weights_.rope_freqs = llama3_rope_factors(*scaling, where, c.rope_base, c.rope_dim);
    }
    m.safetensors_ = io::SafetensorsModel::open(m.path_);
    Mapper t(m, *m.safetensors_, m.owned_);
    Weights& w = m.weights_;
    const int d = c.n_embd, kv = c.n_head_kv * c.head_dim;
    if (c.arch == Arch::gpt2) {
        // checkpoints saved from GPT2LMHeadModel carry a "transformer." prefix, from GPT2Model none
        const std::string pre = t.find("transformer.wte.weight") ? "transformer." : "";
        w.tok_embd = t.linear(pre + "wte.weight", c.n_vocab, d);
        w.output = w.tok_embd;
        Matrix wpe = t.linear(pre + "wpe.weight", c.n_ctx_train, d);
        w.pos_embd.resize(static_cast<size_t>(c.n_ctx_train) * d);
        dequantize_row(wpe.type, wpe.data, w.pos_embd.data(), w.pos_embd.size());
        w.out_norm = t.vector(pre + "ln_f.weight", d);
        w.out_norm_b = t.vector(pre + "ln_f.bias", d);
        for (int i = 0; i < c.n_layer; ++i) {
            const std::string b = pre + "h." + std::to_string(i) + ".";
            LayerWeights l;
            l.attn_norm = t.vector(b + "ln_1.weight", d);
            l.attn_norm_b = t.vector(b + "ln_1.bias", d);
            Matrix qkv = t.conv1d(b + "attn.c_attn.weight", d, 3 * d);
            l.wq = qkv.row_slice(0, d);
            l.wk = qkv.row_slice(d, d);
            l.wv = qkv.row_slice(2 * d, d);
            Vector bqkv = t.vector(b + "attn.c_attn.bias", 3 * d);
            l.bq.assign(bqkv.begin(), bqkv.begin() + d);
            l.bk.assign(bqkv.begin() + d, bqkv.begin() + 2 * d);
            l.bv.assign(bqkv.begin() + 2 * d, bqkv.end());
            l.wo = t.conv1d(b + "attn.c_proj.weight", d, d);
            l.bo = t.vector(b + "attn.c_proj.bias", d);
            l.ffn_norm = t.vector(b + "ln_2.weight", d);
            l.ffn_norm_b = t.vector(b + "ln_2.bias", d);
            l.w_up = t.conv1d(b + "mlp.c_fc.weight", d, c.n_ff);
            l.b_up = t.vector(b + "mlp.c_fc.bias", c.n_ff);
            l.w_down = t.conv1d(b + "mlp.c_proj.weight", c.n_ff, d);
            l.b_down = t.vector(b + "mlp.c_proj.bias", d);
            w.layers.push_back(std::move(l));
        }
    } else {
        w.tok_embd = t.linear("model.embed_tokens.weight", c.n_vocab, d);
        if (gemma) c.embd_scale = gemma_embedding_scale(d, w.tok_embd.type);
        // Gemma's RMSNorms multiply by 1 + weight (llama.cpp's converter adds the 1 to the stored weights; so does this)
        auto norm = [&](const std::string& name, int64_t n) {
            Vector v = t.vector(name, n);
            if (gemma)
                for (float& x : v) x += 1.0f;
            return v;
        };
        const bool has_head = t.find("lm_head.weight") != nullptr;
        if (!c.tied_head && !has_head)
            throw Error(ErrorKind::format, "safetensors '" + m.path_ + "': lm_head.weight is missing and tie_word_embeddings is false");
        c.tied_head = !has_head;
        w.output = has_head ? t.linear("lm_head.weight", c.n_vocab, d) : w.tok_embd;
        w.out_norm = norm("model.norm.weight", d);
        for (int i = 0; i < c.n_layer; ++i) {
            const std::string b = "model.layers." + std::to_string(i) + ".";
            LayerWeights l;
            l.attn_norm = norm(b + "input_layernorm.weight", d);
            l.wq = t.linear(b + "self_attn.q_proj.weight", c.n_head * c.head_dim, d);
            l.wk = t.linear(b + "self_attn.k_proj.weight", kv, d);
            l.wv = t.linear(b + "self_attn.v_proj.weight", kv, d);
            l.wo = t.linear(b + "self_attn.o_proj.weight", d, c.n_head * c.head_dim);
            if (qkv_bias) {
                l.bq = t.vector(b + "self_attn.q_proj.bias", c.n_head * c.head_dim);
                l.bk = t.vector(b + "self_attn.k_proj.bias", kv);
                l.bv = t.vector(b + "self_attn.v_proj.bias", kv);
            }
            if (o_bias) l.bo = t.vector(b + "self_attn.o_proj.bias", d);
            if (qk_norm) {
                l.q_norm = norm(b + "self_attn.q_norm.weight", c.head_dim);
                l.k_norm = norm(b + "self_attn.k_norm.weight", c.head_dim);
            }
            if (gemma) { // Gemma's post_attention_layernorm normalises the attention's output; pre_feedforward_layernorm the FFN's input
                l.post_attn_norm = norm(b + "post_attention_layernorm.weight", d);
                l.ffn_norm = norm(b + "pre_feedforward_layernorm.weight", d);
                l.post_ffn_norm = norm(b + "post_feedforward_layernorm.weight", d);
            } else {
                l.ffn_norm = t.vector(b + "post_attention_layernorm.weight", d);
            }
            l.w_gate = t.linear(b + "mlp.gate_proj.weight", c.n_ff, d);
            l.w_up = t.linear(b + "mlp.up_proj.weight", c.n_ff, d);
            l.w_down = t.linear(b + "mlp.down_proj.weight", d, c.n_ff);
            w.layers.push_back(std::move(l));
        }
    }
}

} // namespace winnow
