#pragma once
// SentencePiece tokenizers through libsentencepiece: a tokenizer.model file, or a GGUF "llama" vocabulary
// (tokens, scores, types) turned into the equivalent SentencePiece model (BPE with byte fallback, dummy prefix).
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace sentencepiece { class SentencePieceProcessor; }

namespace winnow::tok {

struct SpmVocab {
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<TokenType> types;
    int32_t bos = 1, eos = 2, unk = 0, eot = -1;
    bool add_bos = true;
    bool add_space_prefix = true; // SentencePiece's add_dummy_prefix: "▁" before the text (false in Gemma's vocabularies)
};

class SpmTokenizer final : public Tokenizer {
public:
    explicit SpmTokenizer(const SpmVocab& vocab);           // from GGUF metadata
    explicit SpmTokenizer(const std::string& model_path);   // from a tokenizer.model file
    ~SpmTokenizer() override;

    std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const override;
    std::string token_to_piece(int32_t id, bool render_special) const override;
    // Drops the leading space the dummy prefix added to the first piece, as SentencePiece's own decoder does.
    std::string decode(const std::vector<int32_t>& ids, bool render_special = false) const override;
    int32_t n_vocab() const override { return static_cast<int32_t>(types_.size()); }
    int32_t bos() const override { return bos_; }
    int32_t eos() const override { return eos_; }
    bool add_bos_default() const override { return add_bos_; }
    bool is_eog(int32_t id) const override { return id >= 0 && id < n_vocab() && eog_[id]; }
    std::string name() const override { return "SentencePiece (libsentencepiece)"; }

private:
    void encode_plain(std::string_view text, std::vector<int32_t>& out) const;
    std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
    std::vector<std::string> pieces_;
    std::vector<TokenType> types_;
    std::vector<int32_t> specials_; // control tokens matched literally when parse_special, longest first
    int32_t bos_ = -1, eos_ = -1, eot_ = -1;
    bool add_bos_ = true;
    bool space_prefix_ = true; // the model adds a dummy "▁" before the text, which decode drops again
    std::vector<bool> eog_;    // EOS, EOT and the control tokens that end a chat turn (is_turn_end_name)
    void mark_end_of_generation();
};

// Serializes a SentencePiece ModelProto (protobuf wire format) for a llama-style BPE vocabulary.
std::string spm_model_proto(const SpmVocab& v);

} // namespace winnow::tok
