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

    // The names accepted by the constructor.
    static std::vector<std::string> known();

private:
    struct Regex;
    std::string name_;
    std::vector<std::unique_ptr<Regex>> regexes_;
};

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
