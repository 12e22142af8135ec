#pragma once
// Text <-> token ids. One interface over the tokenizer families winnow reads (byte-level BPE today).
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace winnow {

namespace io { class GgufFile; }

// Token attributes as GGUF declares them (tokenizer.ggml.token_type).
enum class TokenType : int32_t { undefined = 0, normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

// A control token that ends a chat turn though the converters do not always declare it as EOS/EOT (ChatML's
// <|im_end|>, Llama 3's <|eot_id|>, Phi-3's <|end|>, Gemma's <end_of_turn>, <|endoftext|>): generation stops at it,
// as llama.cpp's vocabulary stops at the same names.
bool is_turn_end_name(const std::string& text);
// Whether a token of this type and text ends generation by its name: a control or user-defined token (Gemma's
// tokenizer.model types <end_of_turn> user-defined; llama.cpp makes such a token a control token and stops at it).
inline bool ends_turn_by_name(TokenType type, const std::string& text) {
    return (type == TokenType::control || type == TokenType::user_defined) && is_turn_end_name(text);
}

class Tokenizer {
public:
    virtual ~Tokenizer() = default;

    // Reads tokenizer.ggml.* metadata; throws winnow::Error for a missing, inconsistent or unknown tokenizer.
    static std::unique_ptr<Tokenizer> from_gguf(const io::GgufFile& file);
    // From an HF checkpoint directory: tokenizer.json, tokenizer.model, or vocab.json + merges.txt.
    static std::unique_ptr<Tokenizer> from_hf_dir(const std::string& dir);

    // add_bos: prepend BOS when the model asks for it. parse_special: text like "<|im_start|>" becomes its
    // control token instead of being tokenized as characters.
    virtual std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const = 0;
    // The raw bytes a token stands for (possibly a partial UTF-8 sequence). Control tokens give their text only
    // when render_special.
    virtual std::string token_to_piece(int32_t id, bool render_special = false) const = 0;
    // The text of a whole sequence (a tokenizer may drop what it added itself, like SentencePiece's dummy prefix).
    virtual std::string decode(const std::vector<int32_t>& ids, bool render_special = false) const;

    virtual int32_t n_vocab() const = 0;
    virtual int32_t bos() const = 0; // -1 when none
    virtual int32_t eos() const = 0;
    virtual bool add_bos_default() const = 0;
    // End of generation: EOS, EOT and similar control tokens.
    virtual bool is_eog(int32_t id) const = 0;
    virtual std::string name() const = 0; // e.g. "gpt2 BPE (pre: smollm)"
};

} // namespace winnow
