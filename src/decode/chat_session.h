#pragma once
// A multi-turn conversation kept in the KV cache. Each turn renders the whole conversation with the model's chat
// template and tokenizes it; the longest common prefix with the tokens already in the cache stays, the cache is
// rewound to it, and only the rest is prefilled. So a new turn costs its own new tokens (plus the end marker of the
// previous answer), not the whole history again, and a change early in the conversation (a new system message, a
// reset) re-prefills from there on its own.
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "decode/forward.h"
#include "decode/generator.h"
#include "decode/sampler.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "winnow/params.h"

namespace winnow {

struct ChatTurnStats {
    int reused = 0;     // tokens of the rendered conversation already in the cache
    int prefilled = 0;  // tokens evaluated before the first answer token (the turn's own new tokens)
    int generated = 0;  // answer tokens
    double prefill_seconds = 0, generation_seconds = 0;
    std::string stop_reason; // eos | stop_string | max_tokens | context | interrupted
};

class ChatSession {
public:
    // opt: sampling, max_tokens (< 0: until end-of-generation or the context is full), stop strings, ignore_eos.
    // The output head is always the exact one. n_ctx <= 0: the model's training context.
    ChatSession(const LoadedModel& model, const Tokenizer& tokenizer, Backend& backend, ChatTemplate chat_template,
                GenerateOptions opt, int n_ctx = 0, GgmlType kv_type = GgmlType::F32);

    // Sends a user message and streams the answer through on_piece (return false to stop). Generation also stops,
    // with stop_reason "interrupted", when *cancel becomes true. The answer (complete or not) joins the history.
    // Throws ContextFull, leaving the conversation as it was, when the conversation with this message does not fit.
    ChatTurnStats ask(const std::string& user, const StreamCallback& on_piece = {}, const std::atomic<bool>* cancel = nullptr);

    // The system message (empty: the template's own default, if it has one). Takes effect at the next turn.
    void set_system(std::string text);
    const std::string& system() const { return system_; }
    // Sampling on the backend (ExactTokenPicker, shared with Generator): on by default where the backend has the op;
    // a step then returns a 4-byte token, and on a backend that records it is one replay. Off: every logit comes to the
    // host's Sampler. The tokens are the same. Takes effect at the next turn.
    void set_device_sampling(bool on) { picker_.set_device_sampling(on); }
    // Forgets the turns (the system message stays) and restarts the sampler from its seed.
    void reset();
    // Replaces the turns (user and assistant messages, e.g. a saved conversation); the next turn reuses whatever
    // prefix of the cache still matches.
    void set_turns(std::vector<ChatMessage> turns) { turns_ = std::move(turns); }

    const std::vector<ChatMessage>& turns() const { return turns_; }
    int tokens_in_context() const { return static_cast<int>(cached_.size()); }
    // The tokens in the KV cache, in order.
    const std::vector<int32_t>& cached_tokens() const { return cached_; }
    int n_ctx() const { return forward_.n_ctx(); }
    const ChatTurnStats& last_turn() const { return last_; }

    // The conversation so far (system message first, if any) as the template receives it.
    std::vector<ChatMessage> messages() const;

private:
    std::vector<int32_t> render_tokens(const std::vector<ChatMessage>& messages) const;
    // Rewinds the cache to its longest common prefix with ids and evaluates the rest; returns the first answer token
    // when `pick` (else -1: nothing is drawn).
    int32_t prefill_from_common_prefix(const std::vector<int32_t>& ids, ChatTurnStats& st, bool pick);
    // Evaluates `tokens` (already at the end of cached_) and returns the next token when `pick` (else -1).
    int32_t step(std::span<const int32_t> tokens, bool pick);

    const Tokenizer& tok_;
    ChatTemplate template_;
    GenerateOptions opt_;
    Forward forward_;
    ExactTokenPicker picker_;
    std::unique_ptr<Sampler> sampler_;
    std::vector<int32_t> cached_; // the tokens in the KV cache, in order (size == forward_.n_past())
    std::string system_;
    std::vector<ChatMessage> turns_; // user and assistant messages
    ChatTurnStats last_;
};

// The conversation with the next message does not fit the context.
class ContextFull : public Error {
public:
    ContextFull(int needed, int n_ctx)
        : Error(ErrorKind::invalid_argument, "the conversation is full: with this message it needs " + std::to_string(needed) +
                                                 " tokens and the context holds " + std::to_string(n_ctx)),
          needed(needed), n_ctx(n_ctx) {}
    int needed, n_ctx;
};

} // namespace winnow
