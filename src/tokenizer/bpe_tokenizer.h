#pragma once
// Byte-level BPE (GPT-2, SmolLM2, Llama 3, Qwen2, ...), vocabulary and merges from GGUF metadata or HF files.
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace winnow::tok {

struct BpeVocab {
    std::vector<std::string> tokens;   // id -> token text (byte-level: bytes mapped to printable characters)
    std::vector<TokenType> types;
    std::vector<std::string> merges;   // "left right", rank = position
    std::string pre = "gpt-2";
    int32_t bos = -1, eos = -1, eot = -1, unk = -1;
    // unset: the pre-tokenizer's conventions (PreTokenizerSpec: what llama.cpp ties to a GGUF pre-tokenizer name); an
    // HF tokenizer.json sets them from the file
    std::optional<bool> add_bos;
    std::optional<bool> ignore_merges; // model.ignore_merges
    std::optional<bool> nfc;           // normalizer NFC
};

class BpeTokenizer final : public Tokenizer {
public:
    explicit BpeTokenizer(BpeVocab vocab); // throws winnow::Error on an inconsistent vocabulary
    std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const override;
    std::string token_to_piece(int32_t id, bool render_special) const override;
    int32_t n_vocab() const override { return static_cast<int32_t>(v_.tokens.size()); }
    int32_t bos() const override { return v_.bos; }
    int32_t eos() const override { return v_.eos; }
    bool add_bos_default() const override { return add_bos_; }
    bool is_eog(int32_t id) const override;
    std::string name() const override { return "gpt2 byte-level BPE (pre-tokenizer " + v_.pre + ")"; }

private:
    void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
    void encode_text(std::string_view text, std::vector<int32_t>& out) const;

    BpeVocab v_;
    PreTokenizer pre_;
    std::unordered_map<std::string, int32_t> token_ids_;
    std::unordered_map<std::string, int32_t> merge_rank_;
    std::vector<int32_t> specials_; // control / user-defined tokens matched literally in text, longest first
    std::vector<bool> eog_;
    bool add_bos_ = false;
    bool ignore_merges_ = false;
    bool nfc_ = false;
};

} // namespace winnow::tok
