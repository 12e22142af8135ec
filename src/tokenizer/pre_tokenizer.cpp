#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pre_tokenizer.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <new>
#include <pcre2.h>
#include <utf8proc.h>

#include "winnow/error.h"

namespace winnow::tok {

namespace {

// GPT-2's pattern, as HF tokenizers' ByteLevel pre-tokenizer writes it.
const char* kGpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
// Llama 3's and Qwen2's patterns (tokenizer.json's Split regex). Their "(?i:'s|'t|...)" is spelled out as character
// classes, as llama.cpp does: PCRE2's caseless matching would also fold e.g. U+017F (long s) into 's'.
const char* kLlama3 = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
                      "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* kQwen2 = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
                     "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
// Han, CJK and Hangul runs, as the DeepSeek tokenizers isolate them.
const char* kCjkRuns = "[\\x{4e00}-\\x{9fa5}\\x{800}-\\x{4e00}\\x{ac00}-\\x{d7ff}]+";
// DeepSeek LLM's letter class (its tokenizer.json lists the cased letters of Latin, Greek, Cyrillic, Armenian,
// Georgian, Cherokee, Glagolitic, Coptic, Deseret, Osage, Old Hungarian, Warang Citi and Adlam by range).
const char* kDeepseekLetters =
    "A-Za-z\\x{b5}\\x{c0}-\\x{d6}\\x{d8}-\\x{f6}\\x{f8}-\\x{1ba}\\x{1bc}-\\x{1bf}\\x{1c4}-\\x{293}\\x{295}-\\x{2af}\\x{370}-\\x{373}"
    "\\x{376}\\x{377}\\x{37b}-\\x{37d}\\x{37f}\\x{386}\\x{388}-\\x{38a}\\x{38c}\\x{38e}-\\x{3a1}\\x{3a3}-\\x{3f5}\\x{3f7}-\\x{481}"
    "\\x{48a}-\\x{52f}\\x{531}-\\x{556}\\x{10a0}-\\x{10c5}\\x{13a0}-\\x{13f5}\\x{13f8}-\\x{13fd}\\x{1c90}-\\x{1cba}\\x{1cbd}-\\x{1cbf}"
    "\\x{1d00}-\\x{1d2b}\\x{1d6b}-\\x{1d77}\\x{1d79}-\\x{1d9a}\\x{1e00}-\\x{1f15}\\x{1f18}-\\x{1f1d}\\x{1f20}-\\x{1f45}\\x{1f48}-\\x{1f4d}"
    "\\x{1f50}-\\x{1f57}\\x{1f59}\\x{1f5b}\\x{1f5d}\\x{1f5f}-\\x{1f7d}\\x{1f80}-\\x{1fb4}\\x{1fb6}-\\x{1fbc}\\x{1fbe}\\x{1fc2}-\\x{1fc4}"
    "\\x{1fc6}-\\x{1fcc}\\x{1fd0}-\\x{1fd3}\\x{1fd6}-\\x{1fdb}\\x{1fe0}-\\x{1fec}\\x{1ff2}-\\x{1ff4}\\x{1ff6}-\\x{1ffc}\\x{2102}\\x{2107}"
    "\\x{210a}-\\x{2113}\\x{2115}\\x{2119}-\\x{211d}\\x{2124}\\x{2126}\\x{2128}\\x{212a}-\\x{212d}\\x{212f}-\\x{2134}\\x{2139}"
    "\\x{213c}-\\x{213f}\\x{2145}-\\x{2149}\\x{214e}\\x{2183}\\x{2184}\\x{2c00}-\\x{2c7b}\\x{2c7e}-\\x{2ce4}\\x{2ceb}-\\x{2cee}\\x{2cf2}"
    "\\x{2cf3}\\x{a640}-\\x{a66d}\\x{a680}-\\x{a69b}\\x{a722}-\\x{a76f}\\x{a771}-\\x{a787}\\x{a78b}-\\x{a78e}\\x{ab70}-\\x{abbf}"
    "\\x{fb00}-\\x{fb06}\\x{fb13}-\\x{fb17}\\x{ff21}-\\x{ff3a}\\x{ff41}-\\x{ff5a}\\x{10400}-\\x{1044f}\\x{104b0}-\\x{104d3}"
    "\\x{104d8}-\\x{104fb}\\x{10c80}-\\x{10cb2}\\x{10cc0}-\\x{10cf2}\\x{118a0}-\\x{118df}\\x{1e900}-\\x{1e943}";

PreTokenizerSpec spec(std::vector<std::string> regexes) { return {std::move(regexes)}; }

// GGUF tokenizer.ggml.pre names (llama.cpp's) and the splitting each stands for; names that share a pattern share an
// entry. Each family is checked against the reference tokenizer's ids by tests/unit/test_tokenizer_fixtures.cpp.
const std::map<std::string, PreTokenizerSpec>& registry() {
    static const std::map<std::string, PreTokenizerSpec> r = [] {
        std::map<std::string, PreTokenizerSpec> m;
        for (const char* n : {"gpt-2", "phi-2", "mpt", "olmo", "jais", "gigachat", "a.x-4.0", "mellum", "exaone4", "trillion"}) m[n] = spec({kGpt2});
        // SmolLM2, StarCoder, Refact, Command-R, ... (HF: Sequence[Digits(individual_digits=True), ByteLevel]): every
        // digit is its own piece first
        for (const char* n : {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"}) m[n] = spec({"\\p{N}", kGpt2});
        // Llama 3 (and the models that reuse its tokenizer): whole pre-tokens found in the vocabulary skip the merges
        // (HF's BPE ignore_merges) and a BOS is added unless the file says otherwise; DBRX and Smaug split the same way
        // without those conventions
        for (const char* n : {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"})
            m[n] = {.regexes = {kLlama3}, .ignore_merges = true, .add_bos = true};
        for (const char* n : {"dbrx", "smaug-bpe"}) m[n] = spec({kLlama3});
        // Qwen2's tokenizer.json normalizes to NFC before splitting (llama.cpp skips that step; HF does not)
        for (const char* n : {"qwen2", "deepseek-r1-qwen", "megrez"}) m[n] = {.regexes = {kQwen2}, .nfc = true};
        m["stablelm2"] = spec({kQwen2});
        m["falcon"] = spec({"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2, "[0-9][0-9][0-9]"});
        m["deepseek-coder"] = spec({"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kCjkRuns, "\\p{N}"});
        m["deepseek-llm"] = spec({"[\\r\\n]", std::string("\\s?[") + kDeepseekLetters + "]+",
                                  "\\s?[!-/:-~\\x{ff01}-\\x{ff0f}\\x{ff1a}-\\x{ff5e}\\x{2018}-\\x{201f}\\x{3000}-\\x{3002}]+", "\\s+$",
                                  kCjkRuns, "\\p{N}+"});
        return m;
    }();
    return r;
}

} // namespace

std::string pre_tokenizer_for_hf_split(const std::string& regex) {
    // tokenizer.json's Split patterns as Llama 3 and Qwen2 ship them (their (?i:...) is kLlama3's / kQwen2's classes)
    static const std::map<std::string, std::string> known = {
        {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", "llama3"},
        {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", "qwen2"},
    };
    auto it = known.find(regex);
    return it == known.end() ? std::string() : it->second;
}

// A compiled pattern, shared by every thread that tokenizes with the model (pcre2_match only reads it).
struct PreTokenizer::Regex {
    pcre2_code* code = nullptr;
    ~Regex() {
        if (code) pcre2_code_free(code);
    }
};

namespace {

// A match's results: one per split() call, since sessions on several threads share one tokenizer (one shared block
// let two threads' matches overwrite each other's offsets).
struct MatchData {
    pcre2_match_data* p;
    explicit MatchData(const pcre2_code* code) : p(pcre2_match_data_create_from_pattern(code, nullptr)) {
        if (!p) throw std::bad_alloc();
    }
    ~MatchData() { pcre2_match_data_free(p); }
    MatchData(const MatchData&) = delete;
    MatchData& operator=(const MatchData&) = delete;
};

} // namespace

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
    spec_ = it->second;
    for (const std::string& pattern : spec_.regexes) {
        auto re = std::make_unique<Regex>();
        int err = 0;
        PCRE2_SIZE err_off = 0;
        re->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err,
                                 &err_off, nullptr);
        if (!re->code) throw Error(ErrorKind::unsupported, "pre-tokenizer '" + name + "': regex failed to compile at offset " + std::to_string(err_off));
        pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE); // optional speed-up; matching works without it
        regexes_.push_back(std::move(re));
    }
}

PreTokenizer::~PreTokenizer() = default;

std::vector<std::string_view> PreTokenizer::split(std::string_view text) const {
    std::vector<std::string_view> pieces{text};
    for (const auto& re : regexes_) {
        const MatchData match(re->code);
        std::vector<std::string_view> next;
        for (std::string_view piece : pieces) {
            const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
            size_t pos = 0;
            while (pos < piece.size()) {
                const int rc = pcre2_match(re->code, subject, piece.size(), pos, PCRE2_NO_UTF_CHECK, match.p, nullptr);
                if (rc < 0) break; // no further match: the rest is one gap piece
                const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match.p);
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

std::string nfc_normalize(std::string_view text) {
    utf8proc_uint8_t* out = nullptr;
    const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()), &out,
                                            static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (n < 0) throw Error(ErrorKind::invalid_argument, std::string("text cannot be NFC-normalized: ") + utf8proc_errmsg(n));
    std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
    std::free(out);
    return result;
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
