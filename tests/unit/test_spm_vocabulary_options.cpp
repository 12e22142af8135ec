// A SentencePiece vocabulary's own conventions, as llama.cpp reads them from a GGUF: whether the text gets a dummy
// "▁" prefix (tokenizer.ggml.add_space_prefix; false in Gemma's vocabularies, whose "Hello" is "Hello", not "▁Hello"),
// and which control tokens end a chat turn though the file does not declare them EOS/EOT (Gemma's <end_of_turn>,
// Phi-3's <|end|>). LLaMA's vendored vocabulary (tests/fixtures/vocab) with those settings changed. And an HF checkpoint
// whose tokenizer.json is a converted SentencePiece model (BPE with byte fallback) beside its tokenizer.model: the
// tokenizer.model is read, with its own settings (Gemma's: no dummy prefix, <end_of_turn> user-defined).
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../fuzz/fuzz_util.h"
#include "io/gguf.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace {

using winnow::TokenType;
using winnow::tok::SpmTokenizer;
using winnow::tok::SpmVocab;

SpmVocab llama_spm_vocab() {
    auto f = winnow::io::GgufFile::open(std::string(WINNOW_SOURCE_DIR) + "/tests/fixtures/vocab/ggml-vocab-llama-spm.gguf");
    SpmVocab v;
    v.tokens = f->get_string_array("tokenizer.ggml.tokens");
    for (double s : f->get_float_array("tokenizer.ggml.scores")) v.scores.push_back(static_cast<float>(s));
    for (int64_t t : f->get_int_array("tokenizer.ggml.token_type")) v.types.push_back(static_cast<TokenType>(t));
    return v;
}

std::vector<std::string> pieces(const SpmTokenizer& t, const std::string& text) {
    std::vector<std::string> out;
    for (int32_t id : t.encode(text, false, false)) out.push_back(t.token_to_piece(id, true));
    return out;
}

TEST(SpmVocabularyOptions, DummyPrefixFollowsTheVocabulary) {
    SpmVocab v = llama_spm_vocab();
    const SpmTokenizer with(v);
    v.add_space_prefix = false;
    const SpmTokenizer without(v);
    // token_to_piece renders "▁" as a space
    ASSERT_FALSE(pieces(with, "Hello world").empty());
    EXPECT_EQ(pieces(with, "Hello world").front(), " Hello");
    EXPECT_NE(pieces(without, "Hello world").front().front(), ' ');
    EXPECT_EQ(pieces(without, " Hello world"), pieces(with, "Hello world")); // a space the text has is its own
    // decode drops the dummy space only where the vocabulary adds one
    EXPECT_EQ(with.decode(with.encode("Hello world", false, false)), "Hello world");
    EXPECT_EQ(without.decode(without.encode("Hello world", false, false)), "Hello world");
    EXPECT_EQ(without.decode(without.encode(" Hello", false, false)), " Hello");
}

TEST(SpmVocabularyOptions, TurnEndTokensEndGeneration) {
    SpmVocab v = llama_spm_vocab();
    const int32_t start = static_cast<int32_t>(v.tokens.size()), end = start + 1;
    v.tokens.insert(v.tokens.end(), {"<start_of_turn>", "<end_of_turn>"});
    v.scores.insert(v.scores.end(), {0.0f, 0.0f});
    v.types.insert(v.types.end(), {TokenType::control, TokenType::control});
    const SpmTokenizer t(v);
    EXPECT_TRUE(t.is_eog(end));
    EXPECT_FALSE(t.is_eog(start));
    EXPECT_TRUE(t.is_eog(t.eos()));
    EXPECT_FALSE(t.is_eog(t.bos()));
    EXPECT_FALSE(t.is_eog(-1));
    EXPECT_FALSE(t.is_eog(end + 1));
}

TEST(SpmVocabularyOptions, HfCheckpointReadsTheSentencePieceModelWithItsSettings) {
    SpmVocab v = llama_spm_vocab();
    v.add_space_prefix = false;
    const int32_t end = static_cast<int32_t>(v.tokens.size());
    v.tokens.push_back("<end_of_turn>");
    v.scores.push_back(0.0f);
    v.types.push_back(TokenType::user_defined); // as Gemma's tokenizer.model types it
    const auto dir = winnow::fuzz::fresh_dir("spm-hf-checkpoint");
    winnow::fuzz::write_file(dir / "tokenizer.model", winnow::tok::spm_model_proto(v));
    winnow::fuzz::write_file(dir / "tokenizer.json", R"({"model": {"type": "BPE", "byte_fallback": true, "vocab": {}, "merges": []}})");
    const auto t = winnow::Tokenizer::from_hf_dir(dir.string());
    EXPECT_EQ(t->name(), "SentencePiece (libsentencepiece)");
    const auto ids = t->encode("Hello world", false, false);
    ASSERT_FALSE(ids.empty());
    EXPECT_NE(t->token_to_piece(ids.front(), true).front(), ' ');
    EXPECT_EQ(t->decode(t->encode(" Hi", false, false)), " Hi");
    EXPECT_TRUE(t->is_eog(end));
}

} // namespace
