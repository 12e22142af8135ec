#pragma once
// winnow's public C++ API: load a model once, open sessions on it, generate.
//
//   #include <winnow/winnow.h>
//   winnow::Model model = winnow::Model::load("SmolLM2-135M-Instruct.Q4_1.gguf");
//   winnow::Session chat = model.session();
//   winnow::GenerateOptions opt;
//   opt.max_tokens = 32;
//   winnow::GenerateResult r = chat.generate(model.apply_chat_template("Hi!"), opt,
//                                            [](std::string_view piece) { std::cout << piece; return true; });
//
// Threading: a Model is immutable after load and may be shared by any number of sessions on any number of threads
// (copies of a Model share one loaded model). A Session owns its KV cache and scratch memory and must be used by one
// thread at a time. Every failure throws winnow::Error (winnow/error.h) with one line naming what is wrong.
// Nothing from winnow's src/ leaks through this header: the classes hold their state behind pointers.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "winnow/error.h"
#include "winnow/params.h"

namespace winnow {

enum class KvType { f32, f16, bf16 };

struct ModelParams {
    Device device = Device::cpu;       // cuda needs a build with CUDA and a GPU
    int cuda_device = 0;
    int threads = 0;                   // CPU threads; 0: every core
    CpuDotMode dot = CpuDotMode::automatic; // CPU products with block-quantized weights (params.h)
    // The adaptive output head (GenerateOptions::head = HeadMode::adaptive): "fast" (default) or "faithful".
    std::string adaptive_impl = "fast";
    // Its variance cuts (0 = off): each query's heaviest columns read exactly by every arm, and k-means clusters of the
    // head's rows whose centroid logits are exact (`generate --head-exact-prefix / --head-row-clusters`; at most 1024
    // clusters, built when a session first generates adaptively, about a second for 64 on SmolLM2). The API's adaptive
    // head runs on the CPU whatever the device. Calibrated factors are looked up for this choice.
    int adaptive_exact_prefix = 0;
    int adaptive_row_clusters = 0;
    // A basis file from `winnow calibrate-head --fit-head-basis` (`generate --head-basis`): the head samples in the
    // principal axes of the model's hidden states. Loaded and checked against the model at load; empty: none.
    std::string adaptive_basis;
    // Its calibrated fudge factors (from `winnow calibrate-head`); empty: MODEL.head.json beside the model if present.
    std::string head_calibration;
    // More variables for the model's chat template (apply_chat_template), a JSON object checked at load: e.g.
    // {"enable_thinking": false} turns Qwen3's thinking off. Empty: none.
    std::string chat_template_kwargs;
};

struct SessionParams {
    int n_ctx = 2048;            // context in tokens (capped at the model's trained context); 0: the trained context
    KvType kv_type = KvType::f32; // f16 / bf16 halve the cache (cpu and cuda)
    // Block-sparse (SPION) attention: a pattern file from `winnow calibrate-sparse`; empty: dense attention.
    std::string sparse_pattern = {};
    bool sparse_spion_denominator = false; // dropped keys count as logit 0 (for models trained with SPION's kernel)
    int sparse_dense_below = 1024;         // queries at positions below this attend densely (0: sparse everywhere)
    // Query-aware blocks: each sparse row also reads this many of the blocks its pattern drops, those whose keys can
    // score highest for its query (a bound from per-block key maxima and minima; cpu and cuda). 0: the pattern alone.
    // Ignored without a pattern.
    int sparse_select_blocks = 64;
    int sparse_select_block_size = 0;  // tokens per query-aware block, dividing the pattern's block; 0: 8 where it divides
};

struct ModelInfo {
    std::string path, name, architecture; // architecture: as the file declares it: "llama", "qwen2", "qwen3" or "gpt2"
    int n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ctx_train = 0;
    std::string tokenizer;  // e.g. "gpt2 BPE (pre: smollm)"
    bool has_chat_template = false;
};

// Receives each new piece of generated text (complete UTF-8, never part of a stop string); return false to stop.
using TokenCallback = std::function<bool(std::string_view piece)>;

class Session;

class Model {
public:
    // `path`: a .gguf file, a .safetensors file beside a config.json, or an HF checkpoint directory.
    static Model load(const std::string& path, const ModelParams& params = {});

    const ModelInfo& info() const;
    // add_bos: the model's own convention when unset. parse_special: "<|im_start|>" becomes its control token.
    std::vector<int32_t> tokenize(std::string_view text, bool parse_special = true) const;
    std::vector<int32_t> tokenize(std::string_view text, bool add_bos, bool parse_special) const;
    std::string detokenize(std::span<const int32_t> ids) const;
    std::string token_to_piece(int32_t id) const;
    bool is_end_of_generation(int32_t id) const;
    // The model's chat template (its own Jinja text, rendered as HF transformers does) applied to one user turn,
    // after a system message when `system` is not empty, ending with the assistant's generation prompt.
    std::string apply_chat_template(const std::string& user, const std::string& system = "") const;
    // The same for a whole conversation (ChatMessage: winnow/params.h); add_generation_prompt: end with the opening
    // of the assistant's turn. Throws winnow::Error when the model has no template or the template refuses the
    // conversation (e.g. roles that do not alternate).
    std::string apply_chat_template(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const;

    // A new session with its own KV cache. Sessions keep the model alive.
    Session session(const SessionParams& params = {}) const;

    struct Impl;

private:
    explicit Model(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<const Impl> impl_;
};

class Session {
public:
    Session(Session&&) noexcept;
    Session& operator=(Session&&) noexcept;
    ~Session();

    // Generates from scratch (the session's cache is reset first): prefill the prompt, then sample token by token.
    // BOS is added as the model asks, unless the prompt already begins with it (a chat template that prints it).
    GenerateResult generate(const std::string& prompt, const GenerateOptions& options = {}, const TokenCallback& on_piece = {});
    GenerateResult generate(std::span<const int32_t> prompt_ids, const GenerateOptions& options = {}, const TokenCallback& on_piece = {});

    // Low level, for custom loops: appends `ids` at n_past() and returns the next-token logits of the last one
    // (of every one, row after row, when all_logits).
    std::vector<float> eval(std::span<const int32_t> ids, bool all_logits = false);
    // The final-norm hidden state of the last token of the latest eval (the output head's input), n_embd values.
    std::vector<float> hidden() const;
    int n_past() const;
    int n_ctx() const;
    void reset(); // forget the cache: the next eval starts at position 0

    struct Impl;

private:
    friend class Model;
    explicit Session(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Writes the GGUF model at `in` to `out` with its matrices in one of llama.cpp's presets (`winnow quantize`: "Q4_K_M",
// "Q5_K_M", "Q6_K", "Q8_0", "Q4_0", "F16", ... in any case), as llama-quantize does: llama.cpp's per-tensor mix, the
// norms and vectors as stored, the metadata copied. One tensor is in memory at a time; `out` is written to a temporary
// file and renamed when complete, so a failure leaves an existing `out` as it was.
struct QuantizeParams {
    std::string preset = "Q4_K_M";
    bool allow_requantize = false;     // quantize tensors that are already quantized (their decoded values)
    bool pure = false;                 // every matrix in the preset's base type
    std::string output_tensor_type;    // "" = the preset's; else a type name ("q8_0") for the output matrix
    std::string token_embedding_type;  // "" = the preset's; else a type name for the token embedding
    int threads = 0;                   // 0: all cores
};
struct QuantizeResult {
    int tensors = 0;        // tensors written
    int quantized = 0;      // of them, encoded anew (the rest copied as stored)
    uint64_t bytes_in = 0;  // tensor data read
    uint64_t bytes_out = 0; // tensor data written
};
QuantizeResult quantize(const std::string& in, const std::string& out, const QuantizeParams& params = {});

} // namespace winnow
