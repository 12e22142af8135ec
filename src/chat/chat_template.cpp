#include "chat/chat_template.h"

#include <nlohmann/json.hpp>

#include "chat/jinja_template.h"
#include "io/text_file.h"
#include "model/model.h"
#include "tokenizer/model_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "winnow/error.h"

namespace winnow {

namespace {

// Objects keep their keys' order, as Python's json.loads and the template's dicts do (nlohmann::json sorts them).
using ordered_json = nlohmann::ordered_json;

// A JSON value as the template sees it (json.loads' Python value: object -> dict, array -> list, null -> None).
jinja::Value from_json(const ordered_json& j) {
    switch (j.type()) {
    case ordered_json::value_t::null: return jinja::Value::none();
    case ordered_json::value_t::boolean: return jinja::Value::boolean(j.get<bool>());
    case ordered_json::value_t::number_integer: return jinja::Value::integer(j.get<int64_t>());
    case ordered_json::value_t::number_unsigned:
        if (j.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) throw Error(ErrorKind::invalid_argument, "chat template kwargs: " + j.dump() + " is beyond the template's integers");
        return jinja::Value::integer(static_cast<int64_t>(j.get<uint64_t>()));
    case ordered_json::value_t::number_float: return jinja::Value::floating(j.get<double>());
    case ordered_json::value_t::string: return jinja::Value::string(j.get<std::string>());
    case ordered_json::value_t::array: {
        jinja::List items;
        for (const auto& x : j) items.push_back(from_json(x));
        return jinja::Value::list(std::move(items));
    }
    case ordered_json::value_t::object: {
        jinja::Dict d;
        for (const auto& [k, x] : j.items()) d.set(jinja::Value::string(k), from_json(x));
        return jinja::Value::dict(std::move(d));
    }
    default: throw Error(ErrorKind::invalid_argument, "chat template kwargs: a binary value is not a template value");
    }
}

ordered_json parse_kwargs(const std::string& text) {
    if (text.empty()) return ordered_json::object();
    ordered_json j = ordered_json::parse(text, nullptr, false);
    if (j.is_discarded()) throw Error(ErrorKind::invalid_argument, "chat template kwargs: not valid JSON (give an object, e.g. {\"enable_thinking\": false})");
    if (!j.is_object()) throw Error(ErrorKind::invalid_argument, "chat template kwargs: must be a JSON object, e.g. {\"enable_thinking\": false}");
    for (const char* reserved : {"messages", "tools", "documents", "add_generation_prompt"})
        if (j.contains(reserved)) throw Error(ErrorKind::invalid_argument, std::string("chat template kwargs: '") + reserved + "' is set by the renderer itself");
    return j;
}

} // namespace

void check_chat_template_kwargs(const std::string& kwargs_json) { parse_kwargs(kwargs_json); }

std::string render_chat(const ChatTemplate& t, const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
    if (t.source.empty()) throw Error(ErrorKind::unsupported, "chat template: the model carries none (no tokenizer.chat_template)");
    const jinja::Template tmpl(t.source);
    jinja::List list;
    for (const ChatMessage& m : messages) {
        jinja::Dict d;
        d.set(jinja::Value::string("role"), jinja::Value::string(m.role));
        d.set(jinja::Value::string("content"), jinja::Value::string(m.content));
        list.push_back(jinja::Value::dict(std::move(d)));
    }
    // what transformers passes: messages, tools and documents (None without them), add_generation_prompt, and the
    // special tokens the tokenizer has (an unset one is left undefined, as it is absent from special_tokens_map)
    jinja::Dict context;
    context.set(jinja::Value::string("messages"), jinja::Value::list(std::move(list)));
    context.set(jinja::Value::string("tools"), jinja::Value::none());
    context.set(jinja::Value::string("documents"), jinja::Value::none());
    context.set(jinja::Value::string("add_generation_prompt"), jinja::Value::boolean(add_generation_prompt));
    if (!t.bos_token.empty()) context.set(jinja::Value::string("bos_token"), jinja::Value::string(t.bos_token));
    if (!t.eos_token.empty()) context.set(jinja::Value::string("eos_token"), jinja::Value::string(t.eos_token));
    // the caller's variables last: as in transformers, they may replace the special tokens
    const ordered_json kwargs = parse_kwargs(t.kwargs_json); // a named object: items() only refers to it
    for (const auto& [key, value] : kwargs.items()) context.set(jinja::Value::string(key), from_json(value));
    return tmpl.render(context);
}

ChatTemplate load_chat_template_for(const LoadedModel& model, const Tokenizer& tok, const ChatTemplateChoice& choice) {
    ChatTemplate t;
    t.source = load_chat_template(model);
    if (!choice.file.empty()) t.source = io::read_text_file(choice.file, "chat template file");
    t.kwargs_json = choice.kwargs_json;
    if (tok.bos() >= 0 && tok.bos() < tok.n_vocab()) t.bos_token = tok.token_to_piece(tok.bos(), true);
    if (tok.eos() >= 0 && tok.eos() < tok.n_vocab()) t.eos_token = tok.token_to_piece(tok.eos(), true);
    return t;
}

std::vector<int32_t> encode_chat_prompt(const Tokenizer& tok, std::string_view rendered) {
    bool add_bos = tok.add_bos_default();
    if (add_bos && tok.bos() >= 0 && tok.bos() < tok.n_vocab()) {
        const std::string bos = tok.token_to_piece(tok.bos(), true);
        if (!bos.empty() && rendered.substr(0, bos.size()) == bos) add_bos = false;
    }
    return tok.encode(rendered, add_bos, true);
}

} // namespace winnow
