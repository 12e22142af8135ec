#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <limits>

#include "io/gguf.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/spm_tokenizer.h"
#include "winnow/error.h"

namespace winnow {

bool is_turn_end_name(const std::string& s) {
    return s == "<|im_end|>" || s == "<|endoftext|>" || s == "<|eot_id|>" || s == "<|end|>" || s == "<end_of_turn>";
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
    std::string out;
    for (int32_t id : ids) out += token_to_piece(id, render_special);
    return out;
}

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const io::GgufFile& f) {
    const std::string model = f.get_string("tokenizer.ggml.model").value_or("");
    if (model.empty()) throw Error(ErrorKind::format, "GGUF file '" + f.path() + "' has no tokenizer (tokenizer.ggml.model missing)");
    // A token id read as int32 must not wrap (2^32 + 5 would become the valid-looking 5, 0xFFFFFFF0 a "none"); only
    // 0xFFFFFFFF, llama.cpp's LLAMA_TOKEN_NULL written as u32, means "no such token".
    auto id = [&](const char* key, int32_t def) -> int32_t {
        const auto x = f.get_uint(key);
        if (!x) return def;
        if (*x == 0xFFFFFFFFull) return -1;
        if (*x > static_cast<uint64_t>(std::numeric_limits<int32_t>::max()))
            throw Error(ErrorKind::format, "GGUF file '" + f.path() + "': metadata key '" + key + "': token id " + std::to_string(*x) + " is out of range");
        return static_cast<int32_t>(*x);
    };
    if (model == "llama") {
        tok::SpmVocab v;
        v.tokens = f.get_string_array("tokenizer.ggml.tokens");
        for (double s : f.get_float_array("tokenizer.ggml.scores")) v.scores.push_back(static_cast<float>(s));
        for (int64_t t : f.get_int_array("tokenizer.ggml.token_type")) v.types.push_back(static_cast<TokenType>(t));
        v.bos = id("tokenizer.ggml.bos_token_id", 1);
        v.eos = id("tokenizer.ggml.eos_token_id", 2);
        v.unk = id("tokenizer.ggml.unknown_token_id", 0);
        if (!f.get_uint("tokenizer.ggml.unknown_token_id")) { // not named: the one piece typed UNKNOWN, if there is one
            const auto first = std::find(v.types.begin(), v.types.end(), TokenType::unknown);
            if (first != v.types.end() && std::count(v.types.begin(), v.types.end(), TokenType::unknown) == 1)
                v.unk = static_cast<int32_t>(first - v.types.begin());
        }
        v.eot = id("tokenizer.ggml.eot_token_id", -1);
        v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token").value_or(true);
        // false for Gemma's vocabularies: "Hello" is "Hello", not "▁Hello" (llama.cpp reads the same key)
        v.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix").value_or(true);
        try {
            return std::make_unique<tok::SpmTokenizer>(v);
        } catch (const Error& e) {
            throw Error(e.kind(), "GGUF file '" + f.path() + "': " + e.what());
        }
    }
    if (model != "gpt2")
        throw Error(ErrorKind::unsupported, "GGUF file '" + f.path() + "': tokenizer '" + model + "' is not supported (gpt2 BPE and llama SentencePiece are)");
    tok::BpeVocab v;
    v.tokens = f.get_string_array("tokenizer.ggml.tokens");
    for (int64_t t : f.get_int_array("tokenizer.ggml.token_type")) v.types.push_back(static_cast<TokenType>(t));
    v.merges = f.get_string_array("tokenizer.ggml.merges");
    if (v.merges.empty()) throw Error(ErrorKind::format, "GGUF file '" + f.path() + "': gpt2 tokenizer without tokenizer.ggml.merges");
    v.pre = f.get_string("tokenizer.ggml.pre").value_or("");
    if (v.pre.empty() || v.pre == "default")
        throw Error(ErrorKind::unsupported, "GGUF file '" + f.path() + "': missing or 'default' tokenizer.ggml.pre; winnow will not guess a pre-tokenizer");
    v.bos = id("tokenizer.ggml.bos_token_id", -1);
    v.eos = id("tokenizer.ggml.eos_token_id", -1);
    v.eot = id("tokenizer.ggml.eot_token_id", -1);
    v.unk = id("tokenizer.ggml.unknown_token_id", -1);
    v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token"); // unset: the pre-tokenizer's convention (Llama 3 adds BOS)
    try {
        return std::make_unique<tok::BpeTokenizer>(std::move(v));
    } catch (const Error& e) {
        throw Error(e.kind(), "GGUF file '" + f.path() + "': " + e.what());
    }
}

} // namespace winnow
