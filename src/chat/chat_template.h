#pragma once
// Chat prompts in the model's own template: the Jinja text a model carries (GGUF tokenizer.chat_template, HF
// tokenizer_config.json chat_template) rendered as HF transformers' apply_chat_template(..., tokenize=False) does.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "winnow/params.h" // ChatMessage (public: the API takes conversations too)

namespace winnow {

class LoadedModel;
class Tokenizer;

struct ChatTemplate {
    std::string source;               // the Jinja text the model carries ("" when it has none)
    std::string bos_token, eos_token; // token strings the template may print
    // More variables for the template, as a JSON object (HF apply_chat_template's keyword arguments, llama.cpp's
    // --chat-template-kwargs), e.g. {"enable_thinking": false}: Qwen3's template then opens the answer with an empty
    // think block. "" or "{}": none.
    std::string kwargs_json;
};

// Checks a kwargs_json text: a JSON object whose keys are not the variables render_chat sets itself (messages, tools,
// documents, add_generation_prompt). Throws winnow::Error (one line) naming what is wrong.
void check_chat_template_kwargs(const std::string& kwargs_json);

// Renders messages with the model's template, as HF transformers' apply_chat_template(..., tokenize=False) does.
// Throws winnow::Error (one line) when the template is absent, malformed, or raises.
std::string render_chat(const ChatTemplate& t, const std::vector<ChatMessage>& messages, bool add_generation_prompt);

// What a caller puts in the model's template's place: another template's file (--chat-template-file; empty: the
// model's own) and more variables (ChatTemplate::kwargs_json).
struct ChatTemplateChoice {
    std::string file;
    std::string kwargs_json;
};

// The model's template and its BOS/EOS strings (GGUF tokenizer.chat_template or HF tokenizer_config.json), with the
// caller's choice applied.
ChatTemplate load_chat_template_for(const LoadedModel& model, const Tokenizer& tok, const ChatTemplateChoice& choice = {});

// Token ids of a rendered chat prompt: BOS is added as the model asks, unless the text already begins with the BOS
// token's text (templates like Llama's print bos_token themselves; llama.cpp does not add a second one either).
std::vector<int32_t> encode_chat_prompt(const Tokenizer& tok, std::string_view rendered);

} // namespace winnow
