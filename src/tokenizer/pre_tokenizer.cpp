#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pre_tokenizer.h"

#include <cstdio>
#include <map>
#include <pcre2.h>

#include "winnow/error.h"

namespace winnow::tok {

namespace {

// GPT-2's pattern, as HF tokenizers' ByteLevel pre-tokenizer writes it.
const char* kGpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

const std::map<std::string, std::vector<std::string>>& registry() {
    static const std::map<std::string, std::vector<std::string>> r = {
        {"gpt-2", {kGpt2}},
        // SmolLM2 (HF: Sequence[Digits(individual_digits=True), ByteLevel]): every digit is its own piece first
        {"smollm", {"\\p{N}", kGpt2}},
    };
    return r;
}

} // namespace

struct PreTokenizer::Regex {
    pcre2_code* code = nullptr;
    pcre2_match_data* match = nullptr;
    ~Regex() {
        if (match) pcre2_match_data_free(match);
        if (code) pcre2_code_free(code);
    }
};

std::vector<std::string> PreTokenizer::known() {
    std::vector<std::string> names;
    for (auto& [k, v] : registry()) names.push_back(k);
    return names;
}

PreTokenizer::PreTokenizer(const std::string& name) : name_(name) {
    auto it = registry().find(name);
    if (it == registry().end()) {
        std::string known_names;
        for (auto& k : known()) known_names += (known_names.empty() ? "" : ", ") + k;
        throw Error(ErrorKind::unsupported, "unknown BPE pre-tokenizer '" + name + "' (winnow knows: " + known_names + ")");
    }
    for (const std::string& pattern : it->second) {
        auto re = std::make_unique<Regex>();
        int err = 0;
        PCRE2_SIZE err_off = 0;
        re->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err,
                                 &err_off, nullptr);
        if (!re->code) throw Error(ErrorKind::unsupported, "pre-tokenizer '" + name + "': regex failed to compile at offset " + std::to_string(err_off));
        pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE); // optional speed-up; matching works without it
        re->match = pcre2_match_data_create_from_pattern(re->code, nullptr);
        regexes_.push_back(std::move(re));
    }
}

PreTokenizer::~PreTokenizer() = default;

std::vector<std::string_view> PreTokenizer::split(std::string_view text) const {
    std::vector<std::string_view> pieces{text};
    for (const auto& re : regexes_) {
        std::vector<std::string_view> next;
        for (std::string_view piece : pieces) {
            const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
            size_t pos = 0;
            while (pos < piece.size()) {
                const int rc = pcre2_match(re->code, subject, piece.size(), pos, PCRE2_NO_UTF_CHECK, re->match, nullptr);
                if (rc < 0) break; // no further match: the rest is one gap piece
                const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(re->match);
                if (ov[1] == ov[0]) { // an empty match cannot advance; skip one character
                    if (ov[0] >= piece.size()) break;
                    size_t step = 1;
                    while (ov[0] + step < piece.size() && (static_cast<uint8_t>(piece[ov[0] + step]) & 0xc0) == 0x80) ++step;
                    if (ov[0] > pos) next.push_back(piece.substr(pos, ov[0] - pos));
                    next.push_back(piece.substr(ov[0], step));
                    pos = ov[0] + step;
                    continue;
                }
                if (ov[0] > pos) next.push_back(piece.substr(pos, ov[0] - pos));
                next.push_back(piece.substr(ov[0], ov[1] - ov[0]));
                pos = ov[1];
            }
            if (pos < piece.size()) next.push_back(piece.substr(pos));
        }
        pieces = std::move(next);
    }
    return pieces;
}

size_t find_invalid_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<uint8_t>(s[i]);
        int len = c < 0x80 ? 1 : (c >= 0xc2 && c <= 0xdf) ? 2 : (c >= 0xe0 && c <= 0xef) ? 3 : (c >= 0xf0 && c <= 0xf4) ? 4 : 0;
        if (len == 0 || i + len > s.size()) return i;
        for (int k = 1; k < len; ++k)
            if ((static_cast<uint8_t>(s[i + k]) & 0xc0) != 0x80) return i;
        if (len == 3) {
            const auto c1 = static_cast<uint8_t>(s[i + 1]);
            if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0)) return i; // overlong / surrogate
        } else if (len == 4) {
            const auto c1 = static_cast<uint8_t>(s[i + 1]);
            if ((c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 >= 0x90)) return i; // overlong / > U+10FFFF
        }
        i += len;
    }
    return std::string_view::npos;
}

void require_utf8(std::string_view text) {
    const size_t bad = find_invalid_utf8(text);
    if (bad == std::string_view::npos) return;
    char byte[8];
    std::snprintf(byte, sizeof byte, "%02x", static_cast<uint8_t>(text[bad]));
    throw Error(ErrorKind::invalid_argument, std::string("text is not valid UTF-8 (bad byte 0x") + byte + " at offset " + std::to_string(bad) + ")");
}

void split_on_specials(std::string_view text, const std::vector<SpecialToken>& specials,
                       const std::function<void(std::string_view)>& on_text, const std::function<void(int32_t)>& on_special) {
    size_t pos = 0, plain_start = 0;
    while (pos < text.size()) {
        const SpecialToken* found = nullptr;
        for (const auto& sp : specials)
            if (text.compare(pos, sp.text.size(), sp.text) == 0) {
                found = &sp;
                break;
            }
        if (!found) {
            ++pos;
            continue;
        }
        if (pos > plain_start) on_text(text.substr(plain_start, pos - plain_start));
        on_special(found->id);
        pos += found->text.size();
        plain_start = pos;
    }
    if (plain_start < text.size()) on_text(text.substr(plain_start));
}

} // namespace winnow::tok
