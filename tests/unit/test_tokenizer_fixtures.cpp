// Tokenizer parity with Hugging Face tokenizers through llama.cpp's vocabulary fixtures: every input encodes (without
// BOS) to the ids the reference tokenizer produced, and decodes back to itself. GPT-2 and LLaMA's SentencePiece are
// vendored (tests/fixtures/vocab); the larger vocabularies (Llama 3, Qwen2, ...) come from llama-cpp-python's source
// distribution on PyPI through scripts/fetch-vocab.sh.
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "io/gguf.h"
#include "model/require_input.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "winnow/error.h"

namespace {

const std::string kVocabDir = std::string(WINNOW_SOURCE_DIR) + "/tests/fixtures/vocab/"; // vendored from llama.cpp (MIT)
const std::string kFetchedVocabDir = std::string(WINNOW_VOCAB_DIR) + "/";                    // scripts/fetch-vocab.sh

std::string read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    EXPECT_TRUE(in.good()) << "missing fixture " << path;
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct Case {
    std::string text;
    std::vector<int32_t> ids;
};

std::vector<Case> read_cases(const std::string& dir, const std::string& vocab) {
    const std::string inp = read_all(dir + vocab + ".inp"), out = read_all(dir + vocab + ".out");
    const std::string marker = "\n__ggml_vocab_test__\n";
    std::vector<std::string> texts;
    size_t pos = 0;
    for (size_t next; (next = inp.find(marker, pos)) != std::string::npos; pos = next + marker.size()) texts.push_back(inp.substr(pos, next - pos));
    std::vector<Case> cases;
    std::istringstream lines(out);
    std::string line;
    for (const auto& t : texts) {
        if (!std::getline(lines, line)) {
            ADD_FAILURE() << vocab << ".out has fewer lines than " << vocab << ".inp has inputs (" << texts.size() << ")";
            break;
        }
        Case c{t, {}};
        std::istringstream ids(line);
        for (int32_t id; ids >> id;) c.ids.push_back(id);
        cases.push_back(std::move(c));
    }
    return cases;
}

std::string show(const std::vector<int32_t>& ids) {
    std::string s;
    for (auto id : ids) s += " " + std::to_string(id);
    return s;
}

void expect_fixture_parity(const std::string& vocab, const std::string& dir = kVocabDir) {
    auto gguf = winnow::io::GgufFile::open(dir + vocab);
    auto tok = winnow::Tokenizer::from_gguf(*gguf);
    auto cases = read_cases(dir, vocab);
    ASSERT_EQ(cases.size(), 46u);
    // every input but the empty one has reference ids: an unread or blank .out file must not pass
    size_t with_ids = 0;
    for (const auto& c : cases) with_ids += !c.ids.empty();
    ASSERT_EQ(with_ids, 45u) << vocab << ".out";
    int failures = 0;
    for (const auto& c : cases) {
        auto ids = tok->encode(c.text, false, false);
        if (ids != c.ids) ++failures;
        EXPECT_EQ(ids, c.ids) << "input '" << c.text << "'\n  ours:" << show(ids) << "\n  ref: " << show(c.ids);
        EXPECT_EQ(tok->decode(ids), c.text);
    }
    std::printf("%s: %zu cases, %d mismatches (%s)\n", vocab.c_str(), cases.size(), failures, tok->name().c_str());
}

TEST(TokenizerFixtures, Gpt2BpeMatchesHuggingFace) { expect_fixture_parity("ggml-vocab-gpt-2.gguf"); }
TEST(TokenizerFixtures, LlamaSentencePieceMatchesHuggingFace) { expect_fixture_parity("ggml-vocab-llama-spm.gguf"); }

// One case per fetched vocabulary; the pre-tokenizer family each one checks is in its name.
class FetchedVocab : public ::testing::TestWithParam<const char*> {};

TEST_P(FetchedVocab, MatchesHuggingFace) {
    const std::string vocab = std::string("ggml-vocab-") + GetParam() + ".gguf";
    for (const char* ext : {"", ".inp", ".out"}) WINNOW_REQUIRE_FILE(kFetchedVocabDir + vocab + ext);
    expect_fixture_parity(vocab, kFetchedVocabDir);
}

// llama-bpe: Llama 3's regex and ignore_merges; qwen2: Qwen2's; phi-3: SentencePiece; mpt: GPT-2's pattern;
// starcoder / refact / command-r: single digits first; falcon and the two DeepSeek vocabularies: their own regex sets
INSTANTIATE_TEST_SUITE_P(TokenizerFixtures, FetchedVocab,
                         ::testing::Values("llama-bpe", "qwen2", "phi-3", "mpt", "starcoder", "refact", "command-r", "falcon",
                                           "deepseek-coder", "deepseek-llm"),
                         [](const auto& info) {
                             std::string name = info.param;
                             for (char& c : name)
                                 if (c == '-') c = '_';
                             return name;
                         });

TEST(TokenizerFixtures, Llama3ConventionsComeWithItsPreTokenizer) {
    // A Llama 3 GGUF that does not say whether to add BOS adds it (llama.cpp's default for the llama-bpe family)
    const std::string path = kFetchedVocabDir + "ggml-vocab-llama-bpe.gguf";
    WINNOW_REQUIRE_FILE(path);
    auto gguf = winnow::io::GgufFile::open(path);
    ASSERT_FALSE(gguf->get_bool("tokenizer.ggml.add_bos_token").has_value());
    auto tok = winnow::Tokenizer::from_gguf(*gguf);
    EXPECT_TRUE(tok->add_bos_default());
    EXPECT_TRUE(winnow::tok::PreTokenizer("llama-bpe").spec().ignore_merges);
    EXPECT_FALSE(winnow::tok::PreTokenizer("qwen2").spec().ignore_merges);
}

// Sessions on several threads share one model's tokenizer: concurrent encodes must each give the serial ids (a match
// block shared by all calls once let two threads' regex matches overwrite each other's offsets).
TEST(TokenizerFixtures, ConcurrentEncodesGiveTheSerialIds) {
    auto gguf = winnow::io::GgufFile::open(kVocabDir + "ggml-vocab-gpt-2.gguf");
    auto tok = winnow::Tokenizer::from_gguf(*gguf);
    const auto cases = read_cases(kVocabDir, "ggml-vocab-gpt-2.gguf");
    std::string text;
    for (const auto& c : cases) text += c.text + " ";
    const auto want = tok->encode(text, false, false);
    std::vector<int> bad(4, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 200; ++i) bad[t] += tok->encode(text, false, false) != want;
        });
    for (auto& th : threads) th.join();
    EXPECT_EQ(bad, std::vector<int>(4, 0)) << "encodes that differed from the serial one, per thread";
}

TEST(TokenizerFixtures, UnknownPreTokenizerIsAnError) {
    // A vocabulary whose pre-tokenizer winnow does not know must not silently fall back to a default.
    EXPECT_THROW(winnow::tok::PreTokenizer("llama-bpe-someday"), winnow::Error);
}

TEST(TokenizerFixtures, InvalidUtf8IsAnError) {
    auto gguf = winnow::io::GgufFile::open(kVocabDir + "ggml-vocab-gpt-2.gguf");
    auto tok = winnow::Tokenizer::from_gguf(*gguf);
    try {
        tok->encode("ok \xc3\x28 bad", false, false);
        FAIL() << "expected an error";
    } catch (const winnow::Error& e) {
        EXPECT_NE(std::string(e.what()).find("offset 3"), std::string::npos) << e.what();
    }
}

} // namespace
