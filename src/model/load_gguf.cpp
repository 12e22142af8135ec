#include <cmath>
#include <cstring>

#include "io/gguf.h"
#include "io/quant.h"
#include "model/loaders.h"
#include "winnow/error.h"

namespace winnow {

namespace {

std::string shape_str(uint64_t a, uint64_t b) { return "[" + std::to_string(a) + ", " + std::to_string(b) + "]"; }

struct GgufTensors {
    const io::GgufFile& f;

    const io::GgufTensorInfo& require(const std::string& name) const {
        const auto* t = f.find_tensor(name);
        if (!t) throw Error(ErrorKind::format, "GGUF file '" + f.path() + "': required tensor '" + name + "' not found");
        return *t;
    }

    // A matrix with ne = {cols, rows}.
    Matrix matrix(const std::string& name, int64_t rows, int64_t cols) const {
        const auto& t = require(name);
        return to_matrix(t, rows, cols);
    }

    Matrix to_matrix(const io::GgufTensorInfo& t, int64_t rows, int64_t cols) const {
        if (t.n_dims > 2 || t.ne[0] != static_cast<uint64_t>(cols) || t.ne[1] != static_cast<uint64_t>(rows))
            throw Error(ErrorKind::format, "GGUF file '" + f.path() + "': tensor '" + t.name + "' has ne " + shape_str(t.ne[0], t.ne[1]) +
                                               ", expected " + shape_str(cols, rows));
        if (!ggml_type_supported(t.type))
            throw Error(ErrorKind::unsupported, "GGUF file '" + f.path() + "': tensor '" + t.name + "' has type " + ggml_type_name(t.type) +
                                                    ", which winnow does not support (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS)");
        Matrix m;
        m.type = t.type;
        m.rows = rows;
        m.cols = cols;
        m.row_bytes = ggml_row_bytes(t.type, cols);
        m.data = t.data;
        m.name = t.name;
        return m;
    }

    // A 1-D parameter of n elements, decoded to fp32.
    Vector vector(const std::string& name, int64_t n, bool required = true) const {
        const auto* t = f.find_tensor(name);
        if (!t) {
            if (required) require(name);
            return {};
        }
        if (t->n_elements() != static_cast<uint64_t>(n) || t->ne[0] != static_cast<uint64_t>(n))
            throw Error(ErrorKind::format, "GGUF file '" + f.path() + "': tensor '" + name + "' has " + std::to_string(t->n_elements()) +
                                               " elements, expected " + std::to_string(n));
        if (!ggml_type_supported(t->type))
            throw Error(ErrorKind::unsupported, "GGUF file '" + f.path() + "': tensor '" + name + "' has unsupported type " + ggml_type_name(t->type));
        Vector v(n);
        dequantize_row(t->type, t->data, v.data(), n);
        return v;
    }
};

int as_int(uint64_t v, const std::string& key, const std::string& path) {
    if (v > (1u << 30)) throw Error(ErrorKind::format, "GGUF file '" + path + "': metadata key '" + key + "': value " + std::to_string(v) + " is absurdly large");
    return static_cast<int>(v);
}

// The angle divisor of "linear" rope scaling (<arch>.rope.scaling.factor), 1 when the rotation is unscaled; any other
// scaling is refused.
float rope_linear_factor(const io::GgufFile& f, const std::string& arch) {
    const auto type = f.get_string(arch + ".rope.scaling.type");
    if (!type || *type == "none") return 1.0f;
    if (*type != "linear") throw Error(ErrorKind::unsupported, "GGUF file '" + f.path() + "': rope scaling '" + *type + "' is not supported (linear)");
    const double factor = f.get_float(arch + ".rope.scaling.factor").value_or(1.0);
    if (!(factor > 0 && std::isfinite(factor)))
        throw Error(ErrorKind::format, "GGUF file '" + f.path() + "': rope scaling factor " + std::to_string(factor) + " is not a positive finite number");
    return static_cast<float>(factor);
}

// A soft cap read from a gemma2 file (llama.cpp's defaults when the key is absent): a positive finite number.
float softcap_key(const io::GgufFile& f, const std::string& key, double fallback) {
    const double cap = f.get_float(key).value_or(fallback);
    if (!(cap > 0 && std::isfinite(cap))) throw Error(ErrorKind::format, "GGUF file '" + f.path() + "': " + key + " must be a positive finite number");
    return static_cast<float>(cap);
}

// Gemma 2's and 3's settings as llama.cpp reads their files: the embedding scaled by sqrt(n_embd); GeGLU; scores
// scaled by 1/sqrt(head_dim), except the 27B models (Gemma 2: 46 layers, Gemma 3: 62), whose query_pre_attn_scalar
// is n_embd / n_head; sliding-window layers of attention.sliding_window keys:
//   gemma2: every second layer (1, 3, ...) attends to the whole context, the others through the window (4,096 when
//           the key is absent); one rope base; scores and logits soft-capped (attn_logit_softcapping, 50 when absent;
//           final_logit_softcapping, 30);
//   gemma3: every sixth layer (5, 11, ...) is full; the sliding layers' rope base is 10,000 and never scaled; no caps.
// The files have no keys for the pattern, the sliding base or the scale: llama.cpp fixes them per architecture, and
// so does winnow.
void gemma_config(const io::GgufFile& f, const std::string& arch, ModelConfig& c) {
    const bool gemma2 = arch == "gemma2";
    const int full_every = gemma2 ? 2 : 6;
    if (gemma2) {
        c.attn_softcap = softcap_key(f, "gemma2.attn_logit_softcapping", 50.0);
        c.final_softcap = softcap_key(f, "gemma2.final_logit_softcapping", 30.0);
    } else {
        for (const char* cap : {"gemma3.final_logit_softcapping", "gemma3.attn_logit_softcapping"})
            if (f.get_float(cap).value_or(0.0) != 0.0) throw Error(ErrorKind::unsupported, "GGUF file '" + f.path() + "': " + cap + " is not supported");
    }
    if (c.n_layer < 1 || c.n_layer > 1024) throw Error(ErrorKind::format, "GGUF file '" + f.path() + "': block count " + std::to_string(c.n_layer) + " is out of range [1, 1024]");
    const std::string key = arch + ".attention.sliding_window";
    c.sliding_window = gemma2 && !f.get_uint(key) ? 4096 : as_int(f.require_uint(key), key, f.path());
    if (c.sliding_window < 1) throw Error(ErrorKind::format, "GGUF file '" + f.path() + "': " + key + " must be positive");
    c.sliding_layers.assign(c.n_layer, 0);
    for (int i = 0; i < c.n_layer; ++i) c.sliding_layers[i] = (i + 1) % full_every != 0;
    c.rope_base_sliding = gemma2 ? 0.0f : 10000.0f;
    c.embd_scale = std::sqrt(static_cast<float>(c.n_embd));
    const bool is_27b = c.n_layer == (gemma2 ? 46 : 62);
    c.attn_scale = 1.0f / std::sqrt(static_cast<float>(is_27b ? c.n_embd / c.n_head : c.head_dim));
    c.gate_act = GateActivation::gelu_tanh;
}

} // namespace

void GgufLoader::load() {
    m.gguf_ = io::GgufFile::open(m.path_);
    const io::GgufFile& f = *m.gguf_;
    const std::string& path = f.path();
    const std::string arch = f.require_string("general.architecture");
    ModelConfig& c = m.config_;
    // qwen2 is llama's computation (RMSNorm, RoPE, SwiGLU, GQA) with q/k/v biases and rotate-half RoPE pairs; qwen3 has
    // no biases but an RMSNorm on each q and k head before RoPE, and its heads need not split the embedding; gemma3
    // has qwen3's head norms, GeGLU, norms of the attention's and the FFN's outputs, scaled embeddings and
    // sliding-window layers; gemma2 is gemma3 without the head norms and with soft caps (gemma_config)
    if (arch == "llama" || arch == "qwen2" || arch == "qwen3" || arch == "gemma2" || arch == "gemma3") c.arch = Arch::llama;
    else if (arch == "gpt2") c.arch = Arch::gpt2;
    else throw Error(ErrorKind::unsupported, "GGUF file '" + path + "': unknown model architecture '" + arch +
                                                 "' (winnow supports llama, qwen2, qwen3, gemma2, gemma3 and gpt2)");
    c.arch_name = arch;
    const bool qwen2 = arch == "qwen2", gemma3 = arch == "gemma3", gemma = gemma3 || arch == "gemma2", head_norms = arch == "qwen3" || gemma3;

    auto key_int = [&](const std::string& k) { return as_int(f.require_uint(arch + "." + k), arch + "." + k, path); };
    c.name = f.get_string("general.name").value_or("");
    c.n_embd = key_int("embedding_length");
    c.n_layer = key_int("block_count");
    c.n_ff = key_int("feed_forward_length");
    c.n_ctx_train = key_int("context_length");
    c.n_head = key_int("attention.head_count");
    c.n_head_kv = f.get_uint(arch + ".attention.head_count_kv") ? key_int("attention.head_count_kv") : c.n_head;
    if (c.n_head <= 0) throw Error(ErrorKind::format, "GGUF file '" + path + "': metadata key '" + arch + ".attention.head_count' must be positive");
    c.head_dim = c.n_embd / c.n_head;
    if (c.arch == Arch::llama) {
        // attention.key_length / value_length: the heads' widths when they are not n_embd / n_head (Qwen3-0.6B,
        // Mistral-Nemo; llama.cpp's default for either); winnow's attention takes one width for keys and values
        const bool has_k = f.get_uint(arch + ".attention.key_length").has_value(), has_v = f.get_uint(arch + ".attention.value_length").has_value();
        if (!(has_k && has_v) && c.n_embd % c.n_head != 0)
            throw Error(ErrorKind::format, "GGUF file '" + path + "': embedding length " + std::to_string(c.n_embd) + " is not a multiple of the head count " +
                                               std::to_string(c.n_head) + " and attention.key_length / value_length do not both say the head width");
        const int k_width = has_k ? key_int("attention.key_length") : c.head_dim, v_width = has_v ? key_int("attention.value_length") : c.head_dim;
        if (k_width != v_width)
            throw Error(ErrorKind::unsupported, "GGUF file '" + path + "': key heads of " + std::to_string(k_width) + " and value heads of " +
                                                    std::to_string(v_width) + ": winnow needs one width for both");
        c.head_dim = k_width;
        c.norm_eps = static_cast<float>(f.require_float(arch + ".attention.layer_norm_rms_epsilon"));
        // llama.cpp's converter permutes llama's q/k rows into adjacent pairs; qwen2's, qwen3's and gemma3's it leaves as
        // HF has them
        c.rope = arch == "llama" ? RopeStyle::adjacent_pairs : RopeStyle::rotate_half;
        c.rope_dim = f.get_uint(arch + ".rope.dimension_count") ? key_int("rope.dimension_count") : c.head_dim;
        c.rope_base = static_cast<float>(f.get_float(arch + ".rope.freq_base").value_or(10000.0));
        if (gemma) gemma_config(f, arch, c);
    } else {
        c.norm_eps = static_cast<float>(f.require_float("gpt2.attention.layer_norm_epsilon"));
        c.rope = RopeStyle::none;
    }

    GgufTensors t{f};
    const auto& embd = t.require("token_embd.weight");
    if (embd.n_dims != 2) throw Error(ErrorKind::format, "GGUF file '" + path + "': tensor 'token_embd.weight' must be 2-D");
    c.n_vocab = as_int(embd.ne[1], "token_embd.weight ne[1]", path);
    const io::GgufTensorInfo* out = f.find_tensor("output.weight");
    c.tied_head = out == nullptr;
    c.validate("GGUF file '" + path + "'");

    const int d = c.n_embd, qd = c.n_head * c.head_dim, kv = c.n_head_kv * c.head_dim;
    Weights& w = m.weights_;
    w.tok_embd = t.matrix("token_embd.weight", c.n_vocab, d);
    w.output = out ? t.to_matrix(*out, c.n_vocab, d) : w.tok_embd;
    w.out_norm = t.vector("output_norm.weight", d);
    // Llama 3.1 / 3.2 files carry their "llama3" rope scaling as one angle divisor per rotated pair; linear scaling
    // (Gemma 3 4B and up) divides every pair's angle by its factor
    if (c.arch == Arch::llama) {
        w.rope_freqs = t.vector("rope_freqs.weight", c.rope_dim / 2, false);
        for (float x : w.rope_freqs)
            if (!(x > 0.0f && std::isfinite(x)))
                throw Error(ErrorKind::format, "GGUF file '" + path + "': tensor 'rope_freqs.weight' holds " + std::to_string(x) + ", not a positive finite factor");
        if (const float linear = rope_linear_factor(f, arch); linear != 1.0f) {
            // (winnow scales the full layers only, as Gemma 3 does; Gemma 2 has no scaled rotation)
            if (arch == "gemma2") throw Error(ErrorKind::unsupported, "GGUF file '" + path + "': a scaled rotation is not supported for gemma2");
            if (!w.rope_freqs.empty())
                throw Error(ErrorKind::unsupported, "GGUF file '" + path + "': linear rope scaling and rope_freqs.weight together");
            w.rope_freqs.assign(c.rope_dim / 2, linear);
        }
    }
    if (c.arch == Arch::gpt2) {
        w.out_norm_b = t.vector("output_norm.bias", d);
        const auto& pos = t.require("position_embd.weight");
        Matrix pm = t.to_matrix(pos, c.n_ctx_train, d);
        w.pos_embd.resize(static_cast<size_t>(c.n_ctx_train) * d);
        for (int r = 0; r < c.n_ctx_train; ++r) dequantize_row(pm.type, pm.row(r), w.pos_embd.data() + static_cast<size_t>(r) * d, d);
    }
    for (int i = 0; i < c.n_layer; ++i) {
        const std::string b = "blk." + std::to_string(i) + ".";
        LayerWeights l;
        l.attn_norm = t.vector(b + "attn_norm.weight", d);
        l.ffn_norm = t.vector(b + "ffn_norm.weight", d);
        l.w_up = t.matrix(b + "ffn_up.weight", c.n_ff, d);
        l.w_down = t.matrix(b + "ffn_down.weight", d, c.n_ff);
        if (c.arch == Arch::llama) {
            l.wq = t.matrix(b + "attn_q.weight", qd, d);
            l.wk = t.matrix(b + "attn_k.weight", kv, d);
            l.wv = t.matrix(b + "attn_v.weight", kv, d);
            l.wo = t.matrix(b + "attn_output.weight", d, qd);
            l.w_gate = t.matrix(b + "ffn_gate.weight", c.n_ff, d);
            if (head_norms) {
                l.q_norm = t.vector(b + "attn_q_norm.weight", c.head_dim);
                l.k_norm = t.vector(b + "attn_k_norm.weight", c.head_dim);
            }
            if (gemma) { // (llama.cpp's converter stores Gemma's norm weights with its +1 added: used as they are)
                l.post_attn_norm = t.vector(b + "post_attention_norm.weight", d);
                l.post_ffn_norm = t.vector(b + "post_ffw_norm.weight", d);
            }
            // qwen2 always has q/k/v biases; a llama file may (attention_bias checkpoints), and then its o bias too
            l.bq = t.vector(b + "attn_q.bias", qd, qwen2);
            l.bk = t.vector(b + "attn_k.bias", kv, qwen2);
            l.bv = t.vector(b + "attn_v.bias", kv, qwen2);
            l.bo = t.vector(b + "attn_output.bias", d, false);
            if (l.bq.empty() != l.bk.empty() || l.bq.empty() != l.bv.empty())
                throw Error(ErrorKind::format, "GGUF file '" + path + "': layer " + std::to_string(i) + " has biases on some of q, k, v but not all");
        } else {
            // fused q|k|v rows; split into row views
            Matrix qkv = t.matrix(b + "attn_qkv.weight", 3 * d, d);
            l.wq = qkv.row_slice(0, d);
            l.wk = qkv.row_slice(d, d);
            l.wv = qkv.row_slice(2 * d, d);
            Vector bqkv = t.vector(b + "attn_qkv.bias", 3 * d);
            l.bq.assign(bqkv.begin(), bqkv.begin() + d);
            l.bk.assign(bqkv.begin() + d, bqkv.begin() + 2 * d);
            l.bv.assign(bqkv.begin() + 2 * d, bqkv.end());
            l.wo = t.matrix(b + "attn_output.weight", d, d);
            l.bo = t.vector(b + "attn_output.bias", d);
            l.attn_norm_b = t.vector(b + "attn_norm.bias", d);
            l.ffn_norm_b = t.vector(b + "ffn_norm.bias", d);
            l.b_up = t.vector(b + "ffn_up.bias", c.n_ff);
            l.b_down = t.vector(b + "ffn_down.bias", d);
        }
        w.layers.push_back(std::move(l));
    }
}

} // namespace winnow
