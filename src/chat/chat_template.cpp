#include "chat/chat_template.h"

#include "chat/jinja_template.h"
#include "model/model.h"
#include "tokenizer/model_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "winnow/error.h"

namespace winnow {

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
    return tmpl.render(context);
}

ChatTemplate load_chat_template_for(const LoadedModel& model, const Tokenizer& tok) {
    ChatTemplate t;
    t.source = load_chat_template(model);
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
