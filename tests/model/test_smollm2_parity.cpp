// SmolLM2-135M-Instruct Q4_1 against llama.cpp (llama-cpp-python, tests/fixtures/llama_oracle.py): next-token
// logits for 3 prompts x 64 positions. The logits cannot agree exactly: llama.cpp quantizes every activation
// vector to Q8_1 (Q8_0 for the Q8_0 head) before its integer dot products, winnow keeps activations in fp32.
#include <algorithm>
#include <filesystem>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "decode/forward.h"
#include "model/model.h"
#include "model/oracle_file.h"

namespace {

TEST(SmolLM2Parity, LogitsMatchLlamaCpp) {
    const std::string oracle_path = WINNOW_FIXTURE_DIR "/smollm2-llamacpp.bin";
    if (!std::filesystem::exists(WINNOW_DEFAULT_MODEL)) GTEST_SKIP() << "SmolLM2 not fetched (scripts/fetch-model.sh)";
    ASSERT_TRUE(std::filesystem::exists(oracle_path)) << "llama.cpp oracle output missing: " << oracle_path;
    auto m = winnow::Model::load(WINNOW_DEFAULT_MODEL);
    auto oracle = winnow::test::read_oracle(oracle_path);
    const int nv = m->config().n_vocab;
    ASSERT_EQ(oracle.n_vocab, static_cast<uint32_t>(nv));
    ASSERT_EQ(oracle.seqs.size(), 3u);
    auto be = winnow::make_cpu_backend(2);

    int rows = 0, same = 0;
    double worst = 0, sum = 0;
    std::vector<double> row_max;
    for (auto& seq : oracle.seqs) {
        ASSERT_EQ(seq.ids.size(), 64u);
        winnow::Forward f(*m, *be, 64);
        const auto& ours = f.eval(seq.ids, true);
        for (size_t t = 0; t < seq.ids.size(); ++t) {
            auto d = winnow::test::compare_row(ours.data() + t * nv, seq.logits.data() + t * nv, nv);
            ++rows;
            same += d.same_argmax;
            worst = std::max(worst, d.max_abs);
            sum += d.max_abs;
            row_max.push_back(d.max_abs);
        }
    }
    std::sort(row_max.begin(), row_max.end());
    std::printf("SmolLM2 vs llama.cpp: %d positions, argmax agreement %.2f%%, max |dlogit| %.4f (median row %.4f, mean %.4f)\n", rows,
                100.0 * same / rows, worst, row_max[row_max.size() / 2], sum / rows);
    EXPECT_EQ(rows, 192);
    EXPECT_GE(static_cast<double>(same) / rows, 0.99);
    EXPECT_LE(worst, 0.75);
}

} // namespace
