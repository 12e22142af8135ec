#pragma once
// Autoregressive generation: prefill the prompt, then sample token by token, streaming UTF-8-safe text pieces,
// stopping at EOS/EOG, a stop string, the token limit, the end of the context, or when the callback says so.
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backend/backend.h"
#include "chat/chat_template.h"
#include "decode/forward.h"
#include "decode/sampler.h"
#include "head/adaptive_head.h"
#include "head/output_head.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "winnow/params.h"

namespace winnow {

// HeadMode, GenerateOptions, GenerateResult: winnow/params.h (public).

// Receives each new piece of text (complete UTF-8, never part of a stop string); return false to stop.
using StreamCallback = std::function<bool(std::string_view piece)>;

// The next token from the exact output head, for Generator and ChatSession. Where the backend has the sample op (and
// device sampling is on), the head product and the sampler chain (greedy included) run right after the layers as the
// tail of the step (Forward::eval_with_tail): on a backend that records, a decode step is one upload of its inputs
// (token, position, history length, u), one replay of the whole step and a 4-byte token back. Otherwise the logits
// come to the host's Sampler (only the head's top-1 for greedy without a penalty). The ids are the same either way:
// the op is the host's chain given the host's u.
class ExactTokenPicker {
public:
    explicit ExactTokenPicker(Forward& forward);
    // On by default where the backend has the sample op; takes effect at the next begin().
    void set_device_sampling(bool on) { device_sampling_ = on; }
    // Starts a run of steps sampled by `sp` (the Sampler given to next() must have been made from it). `history`: every
    // token the cache will hold once the first next() has run (the penalty's window), uploaded once; the sample op then
    // appends each token it picks.
    void begin(const SamplingParams& sp, std::span<const int32_t> history);
    // Runs `tokens` through the forward pass (appended to its cache) and returns the next token. `history`: every
    // token in the cache now, `tokens` included (prompt + generated so far).
    int32_t next(std::span<const int32_t> tokens, Sampler& sampler, std::span<const int32_t> history);
    // The same without picking (a token the caller will not look at: no u is drawn, nothing comes back): the cache
    // takes `tokens`, through the same recorded step as next() where there is one.
    void append(std::span<const int32_t> tokens, std::span<const int32_t> history);
    // Whether the steps since begin() are sampled by the backend.
    bool on_device() const { return on_device_; }
    // Seconds of the last next() spent in the head stage: on the host path the head and the sampler; on the device
    // path issuing the tail (its ops' time on the CPU backend; nothing on a replay) and the wait for the token (which
    // on a device includes the step's layers, queued before it).
    double last_head_seconds() const { return head_seconds_; }

private:
    void issue_tail(const Tensor& hidden, const Forward::StepInputs& in); // the head product and the sample op

    Forward& forward_;
    head::ExactOutputHead exact_;
    bool device_sampling_ = true, on_device_ = false;
    SamplingParams chain_;
    bool top1_only_ = false;   // host path: greedy without a penalty needs only the head's argmax
    Tensor history_, token_;   // the device's copy of the sequence (I32 [n_ctx + 1][1]) and the picked token
    Forward::StepTail tail_;   // id: bumped when what the tail bakes in (chain, history tensor) changes
    double head_seconds_ = 0;
};

class Generator {
public:
    // n_ctx <= 0: the model's training context.
    // adaptive_head may be null when only the exact head is used.
    // kv_type: the KV cache's element type (F32, F16 or BF16 on the CPU and CUDA backends).
    Generator(const LoadedModel& model, const Tokenizer& tokenizer, Backend& backend, int n_ctx = 0, head::AdaptiveHead* adaptive_head = nullptr,
              GgmlType kv_type = GgmlType::F32);
    GenerateResult generate(const std::vector<int32_t>& prompt, const GenerateOptions& opt, const StreamCallback& on_piece = {});
    int n_ctx() const { return forward_.n_ctx(); }
    // The forward pass and its KV cache, for custom loops between generations.
    Forward& forward() { return forward_; }
    // Sets (or, with null, removes) the adaptive head used when GenerateOptions::head is adaptive.
    void set_adaptive_head(head::AdaptiveHead* adaptive_head);
    // Sampling where the logits are (Backend::sample; ExactTokenPicker): on by default when the backend has the op; a
    // step then brings back its 4-byte token instead of any logit, and on a backend that records the whole step (layers,
    // head product, sample op) is one replay. Off: the logits come to the host's Sampler. The tokens are the same.
    void set_device_sampling(bool on) { picker_.set_device_sampling(on); }
    // Steps of the last generate() whose token the backend's sample op chose (for tests and statistics).
    int device_sampled_steps() const { return device_sampled_steps_; }

private:
    const Tokenizer& tok_;
    Forward forward_;
    ExactTokenPicker picker_;
    std::unique_ptr<head::AdaptiveOutputHead> adaptive_; // when an adaptive head was given
    int device_sampled_steps_ = 0;
};

// Splits generated bytes into what may be shown now and what must wait: an incomplete UTF-8 character at the
// end, or a tail that could still become a stop string.
class StreamBuffer {
public:
    explicit StreamBuffer(std::vector<std::string> stops) : stops_(std::move(stops)) {}
    // Appends bytes; returns the newly showable text. Sets stopped() when a stop string appears.
    std::string push(std::string_view bytes);
    // Everything still held back (at the end of generation).
    std::string flush();
    bool stopped() const { return stopped_; }
    std::string text() const { return all_.substr(0, shown_); } // all shown text so far

private:
    std::vector<std::string> stops_;
    std::string all_;
    size_t shown_ = 0;
    bool stopped_ = false;
};

// One user turn (after a system message when `system` is not empty; else the template's own default applies, like
// SmolLM2's default system prompt) in the model's chat template, ending with the assistant's generation prompt: a thin
// wrapper over render_chat (chat/chat_template.h). Throws winnow::Error for a template it cannot render.
std::string apply_chat_template(const ChatTemplate& tmpl, const std::string& system, const std::string& user);
// The same with the template's Jinja text alone (bos_token and eos_token are then undefined in the template).
std::string apply_chat_template(const std::string& jinja_template, const std::string& system, const std::string& user);

} // namespace winnow
