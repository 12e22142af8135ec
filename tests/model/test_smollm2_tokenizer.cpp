// SmolLM2's tokenizer (byte-level BPE, smollm pre-tokenizer, from the GGUF) against Hugging Face `tokenizers`
// on a generated 20 KB text of mixed scripts, digits, whitespace runs and emoji (tests/fixtures/hf_tokenizer_oracle.py).
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "io/gguf.h"
#include "model/require_input.h"
#include "tokenizer/tokenizer.h"

namespace {

const std::string kText = WINNOW_FIXTURE_DIR "/smollm2-text.txt", kIds = WINNOW_FIXTURE_DIR "/smollm2-text-ids.txt";

// The oracle's text and HF's ids for it (fixture.hf_tokenizer_smollm2).
std::pair<std::string, std::vector<int32_t>> read_oracle() {
    std::ifstream tf(kText, std::ios::binary), idf(kIds);
    EXPECT_TRUE(tf.good() && idf.good()) << "oracle output missing (fixture.hf_tokenizer_smollm2)";
    std::stringstream ss;
    ss << tf.rdbuf();
    std::vector<int32_t> ids;
    for (int32_t id; idf >> id;) ids.push_back(id);
    EXPECT_TRUE(idf.eof()) << "non-numeric content in " << kIds;
    return {ss.str(), ids};
}

TEST(SmolLM2Tokenizer, MatchesHuggingFaceTokenizersOn20KB) {
    WINNOW_REQUIRE_FILE(WINNOW_DEFAULT_MODEL);
    WINNOW_REQUIRE_FILE(kText);
    WINNOW_REQUIRE_FILE(kIds);
    const auto [text, ref] = read_oracle();
    ASSERT_GE(text.size(), 20000u);
    ASSERT_GT(ref.size(), 1000u);

    auto gguf = winnow::io::GgufFile::open(WINNOW_DEFAULT_MODEL);
    auto tok = winnow::Tokenizer::from_gguf(*gguf);
    const auto ids = tok->encode(text, false, false);
    ASSERT_EQ(ids.size(), ref.size());
    size_t first_diff = ids.size();
    for (size_t i = 0; i < ids.size(); ++i)
        if (ids[i] != ref[i]) { first_diff = i; break; }
    EXPECT_EQ(first_diff, ids.size()) << "first mismatch at token " << first_diff;
    EXPECT_EQ(tok->decode(ids), text);
    std::printf("SmolLM2 tokenizer: %zu bytes -> %zu tokens, identical to HF tokenizers\n", text.size(), ids.size());
}

// The same tokenizer read from an HF tokenizer.json (saved by the `tokenizers` library) instead of the GGUF.
TEST(SmolLM2Tokenizer, TokenizerJsonMatchesToo) {
    WINNOW_REQUIRE_FILE(WINNOW_DEFAULT_MODEL);
    WINNOW_REQUIRE_FILE(kText);
    WINNOW_REQUIRE_FILE(kIds);
    WINNOW_REQUIRE_FILE(WINNOW_FIXTURE_DIR "/smollm2-hf-tokenizer/tokenizer.json");
    const auto [text, ref] = read_oracle();
    ASSERT_GE(text.size(), 20000u);
    ASSERT_GT(ref.size(), 1000u);
    auto tok = winnow::Tokenizer::from_hf_dir(WINNOW_FIXTURE_DIR "/smollm2-hf-tokenizer");
    EXPECT_EQ(tok->encode(text, false, false), ref);
    EXPECT_NE(tok->name().find("smollm"), std::string::npos);
}

TEST(SmolLM2Tokenizer, ChatMarkersAreSpecialOnlyWhenAsked) {
    WINNOW_REQUIRE_FILE(WINNOW_DEFAULT_MODEL);
    auto gguf = winnow::io::GgufFile::open(WINNOW_DEFAULT_MODEL);
    auto tok = winnow::Tokenizer::from_gguf(*gguf);
    const auto special = tok->encode("<|im_start|>user\nhi<|im_end|>", false, true);
    ASSERT_GE(special.size(), 3u);
    EXPECT_EQ(tok->token_to_piece(special.front(), true), "<|im_start|>");
    EXPECT_TRUE(tok->is_eog(special.back()));
    const auto plain = tok->encode("<|im_start|>", false, false);
    EXPECT_GT(plain.size(), 1u); // spelled out as ordinary text
}

} // namespace
