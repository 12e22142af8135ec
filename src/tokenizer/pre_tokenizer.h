#pragma once
// Pre-tokenization: split text into the pieces BPE runs on, with the regex set a model declares
// (GGUF tokenizer.ggml.pre). Unicode classes (\p{L}, \p{N}, \s) come from PCRE2 in UTF + UCP mode.
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

} // namespace winnow::tok
