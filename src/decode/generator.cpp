#include "decode/generator.h"

#include <algorithm>
#include <chrono>

#include "winnow/error.h"

namespace winnow {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Bytes at the end of s that begin a UTF-8 character not yet complete.
size_t incomplete_utf8_tail(std::string_view s) {
    for (size_t k = 1; k <= std::min<size_t>(3, s.size()); ++k) {
        const auto c = static_cast<uint8_t>(s[s.size() - k]);
        if ((c & 0xc0) == 0x80) continue; // continuation byte: look further back
        const size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        return need > k ? k : 0;
    }
    return 0;
}

} // namespace

std::string StreamBuffer::push(std::string_view bytes) {
    if (stopped_) return {};
    all_ += bytes;
    // a stop string anywhere in the not-yet-final region ends the text right before it
    size_t longest = 0;
    for (auto& s : stops_) longest = std::max(longest, s.size());
    const size_t search_from = shown_ >= longest ? shown_ - longest : 0;
    size_t cut = std::string::npos;
    for (auto& s : stops_) {
        if (s.empty()) continue;
        const size_t at = all_.find(s, search_from);
        if (at != std::string::npos) cut = std::min(cut, at);
    }
    if (cut != std::string::npos) {
        stopped_ = true;
        std::string out = cut > shown_ ? all_.substr(shown_, cut - shown_) : std::string();
        shown_ = std::max(shown_, cut);
        return out;
    }
    // hold back a tail that is a prefix of some stop string, and an unfinished character
    size_t safe = all_.size();
    for (auto& s : stops_)
        for (size_t k = std::min(s.size() - 1, all_.size()); k > 0; --k)
            if (all_.compare(all_.size() - k, k, s, 0, k) == 0) {
                safe = std::min(safe, all_.size() - k);
                break;
            }
    safe -= incomplete_utf8_tail(std::string_view(all_).substr(0, safe));
    if (safe <= shown_) return {};
    std::string out = all_.substr(shown_, safe - shown_);
    shown_ = safe;
    return out;
}

std::string StreamBuffer::flush() {
    if (stopped_ || shown_ >= all_.size()) return {};
    std::string out = all_.substr(shown_);
    shown_ = all_.size();
    return out;
}

namespace {
// The parameters a recorded sample op bakes in (all but the seed, which only the host's engine reads).
bool same_chain(const SamplingParams& a, const SamplingParams& b) {
    return a.temperature == b.temperature && a.top_k == b.top_k && a.top_p == b.top_p && a.min_p == b.min_p &&
           a.repeat_penalty == b.repeat_penalty && a.repeat_last_n == b.repeat_last_n && a.order == b.order;
}
} // namespace

ExactTokenPicker::ExactTokenPicker(Forward& forward) : forward_(forward), exact_(forward.backend(), forward.weights().output, forward.config().final_softcap) {
    tail_.issue = [this](const Tensor& hidden, const Forward::StepInputs& in) { issue_tail(hidden, in); };
}

void ExactTokenPicker::begin(const SamplingParams& sp, std::span<const int32_t> history) {
    Backend& be = forward_.backend();
    top1_only_ = sp.temperature <= 0.0f && sp.repeat_penalty == 1.0f;
    on_device_ = device_sampling_ && be.supports(Op::sample, GgmlType::F32);
    if (!on_device_) return;
    bool changed = !same_chain(sp, chain_); // a recorded step holds the old chain
    chain_ = sp;
    if (token_.empty()) token_ = be.alloc(GgmlType::I32, 1, 1);
    if (history_.rows() < forward_.n_ctx() + 1) {
        history_ = be.alloc(GgmlType::I32, forward_.n_ctx() + 1, 1);
        changed = true; // ... and the old history's address
    }
    if (changed) ++tail_.id;
    if (static_cast<int64_t>(history.size()) > history_.rows())
        throw Error(ErrorKind::invalid_argument, std::to_string(history.size()) + " tokens of history exceed the context");
    if (!history.empty()) be.upload(history.data(), history_.rows_view(0, static_cast<int64_t>(history.size())));
}

void ExactTokenPicker::issue_tail(const Tensor& hidden, const Forward::StepInputs& in) {
    SampleParams p;
    p.chain = chain_;
    p.history = &history_;
    p.n_history_at = &in.n_history; // read when the op runs: a replay serves every step
    p.u = chain_.temperature > 0.0f ? &in.u : nullptr;
    p.append = true; // the device's copy of the sequence gains the token without an upload
    // the exact head's logits stay where they are: the sample op reads them in place
    const auto t0 = Clock::now();
    forward_.backend().sample(exact_.device_logits(hidden), p, token_);
    head_seconds_ += since(t0); // the ops' time where they run as issued (the CPU), else the launches'
}

int32_t ExactTokenPicker::next(std::span<const int32_t> tokens, Sampler& sampler, std::span<const int32_t> history) {
    if (!on_device_) {
        const Tensor& hidden = forward_.eval_hidden(tokens);
        const auto t0 = Clock::now();
        const head::HeadOutput e = exact_.compute(hidden, {.k = 1, .full_logits = !top1_only_});
        const int32_t id = top1_only_ ? e.top[0] : sampler.sample(e.logits, history);
        head_seconds_ = since(t0);
        return id;
    }
    // one u per drawing step, as the host path consumes them; it goes up with the step's token and position
    const Forward::StepValues values{static_cast<int32_t>(history.size()), sampler.draws() ? sampler.next_uniform() : 0.0};
    head_seconds_ = 0;
    forward_.eval_with_tail(tokens, tail_, values);
    const auto t0 = Clock::now();
    int32_t id = 0;
    forward_.backend().download(token_, &id);
    head_seconds_ += since(t0);
    return id;
}

void ExactTokenPicker::append(std::span<const int32_t> tokens, std::span<const int32_t> history) {
    if (on_device_) forward_.eval_with_tail(tokens, tail_, {static_cast<int32_t>(history.size()), 0.0}); // its token is not read
    else forward_.eval_hidden(tokens);
}

Generator::Generator(const LoadedModel& model, const Tokenizer& tokenizer, Backend& backend, int n_ctx, head::AdaptiveHead* adaptive_head,
                     GgmlType kv_type)
    : tok_(tokenizer), forward_(model, backend, n_ctx, kv_type), picker_(forward_) {
    if (tokenizer.n_vocab() != model.config().n_vocab)
        throw Error(ErrorKind::format, "tokenizer has " + std::to_string(tokenizer.n_vocab()) + " tokens but the model's vocabulary is " +
                                           std::to_string(model.config().n_vocab));
    set_adaptive_head(adaptive_head);
}

void Generator::set_adaptive_head(head::AdaptiveHead* adaptive_head) {
    if (adaptive_head) adaptive_ = std::make_unique<head::AdaptiveOutputHead>(forward_.backend(), *adaptive_head);
    else adaptive_.reset();
}

GenerateResult Generator::generate(const std::vector<int32_t>& prompt, const GenerateOptions& opt, const StreamCallback& on_piece) {
    if (prompt.empty()) throw Error(ErrorKind::invalid_argument, "the prompt is empty (no tokens)");
    if (opt.max_tokens < 0) throw Error(ErrorKind::invalid_argument, "max tokens must be >= 0");
    if (static_cast<int>(prompt.size()) >= forward_.n_ctx())
        throw Error(ErrorKind::invalid_argument, "the prompt has " + std::to_string(prompt.size()) + " tokens; the context holds " +
                                                     std::to_string(forward_.n_ctx()) + " (leave room for at least one generated token)");
    if (opt.head == HeadMode::adaptive && !adaptive_) throw Error(ErrorKind::invalid_argument, "adaptive head requested but none was given to the generator");
    Sampler sampler(opt.sampling);
    GenerateResult r;
    r.prompt_ids = prompt;
    forward_.reset();
    std::vector<int32_t> history = prompt;
    StreamBuffer stream(opt.stop);

    const SamplingParams& sp = opt.sampling;
    const bool greedy = sp.temperature <= 0;
    const bool adaptive_serves = opt.head == HeadMode::adaptive && sp.repeat_penalty == 1.0f &&
                                 (greedy || (sp.top_k > 0 && sp.top_p >= 1.0f && sp.min_p <= 0.0f));
    SamplingParams topk_sampling = sp; // the sampler over the adaptive head's k candidates
    topk_sampling.top_k = 0;
    Sampler candidate_sampler(topk_sampling);

    if (adaptive_) adaptive_->set_params(opt.adaptive);
    if (!adaptive_serves) picker_.begin(sp, prompt);
    device_sampled_steps_ = 0;

    // Runs the model on `tokens` and picks the next token with the configured head.
    auto next_token = [&](std::span<const int32_t> tokens) -> int32_t {
        if (!adaptive_serves) {
            const int32_t id = picker_.next(tokens, sampler, history);
            ++r.head_exact_steps;
            r.head_fallbacks += opt.head == HeadMode::adaptive;
            device_sampled_steps_ += picker_.on_device();
            r.head_seconds += picker_.last_head_seconds();
            return id;
        }
        const Tensor& hidden = forward_.eval_hidden(tokens);
        const auto t0 = Clock::now();
        const head::HeadOutput a = adaptive_->compute(hidden, {.k = greedy ? 1 : sp.top_k});
        const int32_t id = greedy ? a.top[0] : a.top[candidate_sampler.sample(a.top_logits, {})];
        ++r.head_adaptive_steps;
        r.head_samples += a.cost.samples;
        r.head_fraction_sum += a.cost.fraction();
        r.head_seconds += since(t0);
        return id;
    };

    auto t0 = Clock::now();
    int32_t next = next_token(prompt);
    r.prompt_seconds = since(t0);
    t0 = Clock::now();
    r.stop_reason = "max_tokens";
    for (int i = 0; i < opt.max_tokens; ++i) {
        if (!opt.ignore_eos && tok_.is_eog(next)) {
            r.stop_reason = "eos";
            break;
        }
        r.output_ids.push_back(next);
        history.push_back(next);
        const std::string piece = stream.push(tok_.token_to_piece(next));
        if (!piece.empty() && on_piece && !on_piece(piece)) {
            r.stop_reason = "callback";
            break;
        }
        if (stream.stopped()) {
            r.stop_reason = "stop_string";
            break;
        }
        if (i + 1 == opt.max_tokens) break;
        if (forward_.n_past() >= forward_.n_ctx()) {
            r.stop_reason = "context";
            break;
        }
        next = next_token(std::span<const int32_t>(&next, 1));
    }
    const std::string rest = stream.flush();
    if (!rest.empty() && on_piece) on_piece(rest);
    r.gen_seconds = since(t0);
    r.text = stream.text();
    return r;
}

std::string apply_chat_template(const ChatTemplate& tmpl, const std::string& system, const std::string& user) {
    std::vector<ChatMessage> messages;
    if (!system.empty()) messages.push_back({"system", system});
    messages.push_back({"user", user});
    return render_chat(tmpl, messages, true);
}

std::string apply_chat_template(const std::string& jinja_template, const std::string& system, const std::string& user) {
    return apply_chat_template(ChatTemplate{jinja_template, "", "", ""}, system, user);
}

} // namespace winnow
