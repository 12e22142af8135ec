// Llama 3's and Qwen2's real vocabularies (llama.cpp's vocab fixtures, scripts/fetch-vocab.sh) against Hugging Face
// `tokenizers` on a 20 KB text of mixed scripts, digits, whitespace runs and emoji (fixture.hf_tokenizer_<vocab>):
// winnow reading the GGUF, and winnow reading the same vocabulary as tokenizer.json (Split regex + ByteLevel, Llama 3's
// ignore_merges), must give HF's ids.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "io/gguf.h"
#include "model/require_input.h"
#include "tokenizer/tokenizer.h"

namespace {

class HfTokenizerVocab : public ::testing::TestWithParam<const char*> {};

TEST_P(HfTokenizerVocab, GgufAndTokenizerJsonMatchHuggingFaceOn20KB) {
    const std::string vocab = GetParam(), gguf_path = std::string(WINNOW_VOCAB_DIR) + "/ggml-vocab-" + vocab + ".gguf";
    const std::string text_path = std::string(WINNOW_FIXTURE_DIR) + "/" + vocab + "-text.txt",
                      ids_path = std::string(WINNOW_FIXTURE_DIR) + "/" + vocab + "-text-ids.txt",
                      json_dir = std::string(WINNOW_FIXTURE_DIR) + "/" + vocab + "-hf-tokenizer";
    for (const std::string& p : {gguf_path, text_path, ids_path, json_dir + "/tokenizer.json"}) WINNOW_REQUIRE_FILE(p);
    std::ifstream tf(text_path, std::ios::binary), idf(ids_path);
    std::stringstream ss;
    ss << tf.rdbuf();
    const std::string text = ss.str();
    std::vector<int32_t> ref;
    for (int32_t id; idf >> id;) ref.push_back(id);
    ASSERT_GE(text.size(), 20000u);
    ASSERT_GT(ref.size(), 1000u);

    auto gguf = winnow::io::GgufFile::open(gguf_path);
    const auto from_gguf = winnow::Tokenizer::from_gguf(*gguf)->encode(text, false, false);
    size_t first_diff = 0;
    while (first_diff < std::min(from_gguf.size(), ref.size()) && from_gguf[first_diff] == ref[first_diff]) ++first_diff;
    EXPECT_EQ(from_gguf, ref) << vocab << ": GGUF tokenizer differs from HF at token " << first_diff;
    const auto json_tok = winnow::Tokenizer::from_hf_dir(json_dir);
    EXPECT_EQ(json_tok->encode(text, false, false), ref) << vocab << ": tokenizer.json";
    EXPECT_NE(json_tok->name().find(vocab == "qwen2" ? "qwen2" : "llama3"), std::string::npos) << json_tok->name();
    std::printf("%s: %zu bytes -> %zu tokens, GGUF and tokenizer.json equal to HF tokenizers\n", vocab.c_str(), text.size(), ref.size());
}

INSTANTIATE_TEST_SUITE_P(RealVocabularies, HfTokenizerVocab, ::testing::Values("llama-bpe", "qwen2"),
                         [](const auto& info) { return std::string(info.param) == "qwen2" ? std::string("qwen2") : std::string("llama3"); });

} // namespace
