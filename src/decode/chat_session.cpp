#include "decode/chat_session.h"

#include <algorithm>
#include <chrono>

#include "tokenizer/pre_tokenizer.h"

namespace winnow {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The answer as the next turn's template input: a model can emit bytes that are not UTF-8 (half a character at an
// interruption, or noise from a tiny test model), which the tokenizer refuses; each bad byte becomes U+FFFD.
std::string as_valid_utf8(std::string_view s) {
    std::string out;
    for (size_t bad; (bad = tok::find_invalid_utf8(s)) != std::string_view::npos; s.remove_prefix(bad + 1)) out.append(s.substr(0, bad)).append("\xEF\xBF\xBD");
    return out.append(s);
}
} // namespace

ChatSession::ChatSession(const LoadedModel& model, const Tokenizer& tokenizer, Backend& backend, ChatTemplate chat_template,
                         GenerateOptions opt, int n_ctx, GgmlType kv_type)
    : tok_(tokenizer), template_(std::move(chat_template)), opt_(std::move(opt)), forward_(model, backend, n_ctx, kv_type),
      picker_(forward_), sampler_(std::make_unique<Sampler>(opt_.sampling)) {
    if (tokenizer.n_vocab() != model.config().n_vocab)
        throw Error(ErrorKind::format, "tokenizer has " + std::to_string(tokenizer.n_vocab()) + " tokens but the model's vocabulary is " +
                                           std::to_string(model.config().n_vocab));
}

std::vector<ChatMessage> ChatSession::messages() const {
    std::vector<ChatMessage> m;
    if (!system_.empty()) m.push_back({"system", system_});
    m.insert(m.end(), turns_.begin(), turns_.end());
    return m;
}

void ChatSession::set_system(std::string text) { system_ = std::move(text); }

void ChatSession::reset() {
    turns_.clear();
    sampler_ = std::make_unique<Sampler>(opt_.sampling);
    // the cache keeps its tokens: the next turn reuses whatever prefix (the system part) still matches
}

std::vector<int32_t> ChatSession::render_tokens(const std::vector<ChatMessage>& messages) const {
    return encode_chat_prompt(tok_, render_chat(template_, messages, true));
}

int32_t ChatSession::step(std::span<const int32_t> tokens, bool pick) {
    if (pick) return picker_.next(tokens, *sampler_, cached_);
    picker_.append(tokens, cached_);
    return -1;
}

int32_t ChatSession::prefill_from_common_prefix(const std::vector<int32_t>& ids, ChatTurnStats& st, bool pick) {
    size_t common = std::mismatch(cached_.begin(), cached_.end(), ids.begin(), ids.end()).first - cached_.begin();
    // at least one token is evaluated: its logits pick the first answer token
    if (common == ids.size()) --common;
    forward_.rewind(static_cast<int>(common));
    cached_.resize(common);
    const std::span<const int32_t> rest(ids.data() + common, ids.size() - common);
    cached_.insert(cached_.end(), rest.begin(), rest.end()); // the picker's history: every token in the cache, these too
    picker_.begin(opt_.sampling, cached_);
    const auto t0 = Clock::now();
    const int32_t first = step(rest, pick);
    st.prefill_seconds = seconds_since(t0);
    st.reused = static_cast<int>(common);
    st.prefilled = static_cast<int>(rest.size());
    return first;
}

ChatTurnStats ChatSession::ask(const std::string& user, const StreamCallback& on_piece, const std::atomic<bool>* cancel) {
    std::vector<ChatMessage> msgs = messages();
    msgs.push_back({"user", user});
    const std::vector<int32_t> ids = render_tokens(msgs);
    // the prompt and at least one answer token must fit
    if (static_cast<int>(ids.size()) >= forward_.n_ctx()) throw ContextFull(static_cast<int>(ids.size()) + 1, forward_.n_ctx());
    turns_.push_back({"user", user});

    ChatTurnStats st;
    st.stop_reason = "max_tokens";
    // Whether answer token i is wanted, asked once before the step that would pick it: a step picks (and draws its u)
    // only for a token the loop below looks at, so the sampler's engine advances as if each token were sampled there.
    auto wanted = [&](int i) {
        if (opt_.max_tokens >= 0 && i >= opt_.max_tokens) return false;
        if (cancel && cancel->load()) {
            st.stop_reason = "interrupted";
            return false;
        }
        return true;
    };
    bool pick = wanted(0);
    int32_t next = prefill_from_common_prefix(ids, st, pick);

    StreamBuffer stream(opt_.stop);
    const auto t0 = Clock::now();
    for (int i = 0; pick; ++i) {
        if (!opt_.ignore_eos && tok_.is_eog(next)) {
            st.stop_reason = "eos";
            break;
        }
        ++st.generated;
        const std::string piece = stream.push(tok_.token_to_piece(next));
        if (!piece.empty() && on_piece && !on_piece(piece)) {
            st.stop_reason = "interrupted";
            break;
        }
        if (stream.stopped()) {
            st.stop_reason = "stop_string";
            break;
        }
        if (forward_.n_past() >= forward_.n_ctx()) {
            st.stop_reason = "context";
            break;
        }
        cached_.push_back(next); // the answer token joins the cache (the next turn reuses it) whether or not one follows
        pick = wanted(i + 1);
        next = step(std::span<const int32_t>(&next, 1), pick);
    }
    if (const std::string rest = stream.flush(); !rest.empty() && on_piece) on_piece(rest);
    st.generation_seconds = seconds_since(t0);
    turns_.push_back({"assistant", as_valid_utf8(stream.text())});
    last_ = st;
    return st;
}

} // namespace winnow
