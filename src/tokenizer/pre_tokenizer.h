#pragma once
// Pre-tokenization: split text into the pieces BPE runs on, with the regex set a model declares
// (GGUF tokenizer.ggml.pre). Unicode classes (\p{L}, \p{N}, \s) come from PCRE2 in UTF + UCP mode.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace winnow::tok {

// How a byte-level BPE vocabulary splits text before the merges, and the conventions llama.cpp ties to that name.
struct PreTokenizerSpec {
    std::vector<std::string> regexes; // applied in turn (see PreTokenizer::split)
    bool ignore_merges = false;       // a pre-token that is itself in the vocabulary is emitted whole (Llama 3)
    bool add_bos = false;             // the default when the file does not say (tokenizer.ggml.add_bos_token)
    bool nfc = false;                 // text is put in Unicode NFC first (Qwen2's tokenizer.json normalizer)
};

class PreTokenizer {
public:
    // Throws winnow::Error for an unknown pre-tokenizer name (no silent fallback to a default).
    explicit PreTokenizer(const std::string& name);
    ~PreTokenizer();
    PreTokenizer(const PreTokenizer&) = delete;
    PreTokenizer& operator=(const PreTokenizer&) = delete;

    // Each regex in turn splits every current piece into its matches and the gaps between them (both kept),
    // as llama.cpp does. `text` must be valid UTF-8.
    std::vector<std::string_view> split(std::string_view text) const;
    const std::string& name() const { return name_; }
    const PreTokenizerSpec& spec() const { return spec_; }

    // The names accepted by the constructor.
    static std::vector<std::string> known();

private:
    struct Regex;
    std::string name_;
    PreTokenizerSpec spec_;
    std::vector<std::unique_ptr<Regex>> regexes_;
};

// The pre-tokenizer name for an HF tokenizer.json Split regex (followed by ByteLevel without its own regex), or ""
// when winnow does not know the pattern.
std::string pre_tokenizer_for_hf_split(const std::string& regex);

// `text` (valid UTF-8) in Unicode Normalization Form C (utf8proc), as HF tokenizers' NFC normalizer gives it.
std::string nfc_normalize(std::string_view text);

// Returns the byte offset of the first invalid UTF-8 sequence in s, or npos when s is valid.
size_t find_invalid_utf8(std::string_view s);
// Throws winnow::Error(invalid_argument) naming the first bad byte and its offset when text is not valid UTF-8.
void require_utf8(std::string_view text);

// A token matched literally in text before ordinary tokenization (control / user-defined tokens).
struct SpecialToken {
    int32_t id;
    std::string_view text;
};
// Splits text at the earliest occurrence of any of `specials` (tried in order: pass them longest first), calling
// on_text for every non-empty plain span and on_special for every special token found.
void split_on_specials(std::string_view text, const std::vector<SpecialToken>& specials,
                       const std::function<void(std::string_view)>& on_text, const std::function<void(int32_t)>& on_special);

} // namespace winnow::tok
