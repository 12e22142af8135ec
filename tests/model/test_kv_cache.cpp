// Prefill-then-decode must equal a full recompute at every position, up to fp32 summation order: logits from one
// batched pass over the whole sequence against logits from a prefill of part of it followed by one-token decode steps.
#include <filesystem>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "decode/forward.h"
#include "model/model.h"
#include "model/oracle_file.h"
#include "model/require_input.h"
#include "winnow/error.h"

namespace {

using winnow::Forward;
using winnow::Model;

void expect_incremental_equals_batch(const std::string& path, int n_tokens, int prefill) {
    WINNOW_REQUIRE_FILE(path);
    auto m = Model::load(path);
    const int nv = m->config().n_vocab;
    std::vector<int32_t> ids;
    for (int i = 0; i < n_tokens; ++i) ids.push_back((i * 7919 + 3) % nv);
    auto be = winnow::make_cpu_backend(2);
    Forward full(*m, *be, n_tokens);
    const std::vector<float> batch = full.eval(ids, true);

    Forward inc(*m, *be, n_tokens);
    std::vector<float> rows(inc.eval(std::span(ids).first(prefill), true));
    for (int t = prefill; t < n_tokens; ++t) {
        const auto& l = inc.eval(std::span(ids).subspan(t, 1), false);
        rows.insert(rows.end(), l.begin(), l.end());
    }
    ASSERT_EQ(rows.size(), batch.size());
    ASSERT_EQ(batch.size(), static_cast<size_t>(n_tokens) * nv);
    double worst = 0;
    for (int t = 0; t < n_tokens; ++t) {
        auto d = winnow::test::compare_row(rows.data() + static_cast<size_t>(t) * nv, batch.data() + static_cast<size_t>(t) * nv, nv);
        worst = std::max(worst, d.rel);
        EXPECT_TRUE(d.same_argmax) << path << " position " << t;
    }
    // Only the summation order differs (prefill decodes rows to fp32, decode dots the stored blocks).
    EXPECT_LE(worst, 1e-4) << path;
    std::printf("%s: incremental vs batch max relative %.3g\n", path.c_str(), worst);
}

TEST(KvCache, TinyGpt2DecodeEqualsRecompute) { expect_incremental_equals_batch(WINNOW_FIXTURE_DIR "/tiny-gpt2.gguf", 40, 5); }
TEST(KvCache, TinyLlamaDecodeEqualsRecompute) { expect_incremental_equals_batch(WINNOW_FIXTURE_DIR "/tiny-llama-q4_1.gguf", 40, 1); }
TEST(KvCache, SmolLM2DecodeEqualsRecompute) {
    expect_incremental_equals_batch(WINNOW_DEFAULT_MODEL, 24, 8);
}

TEST(KvCache, ContextOverflowIsAnError) {
    auto m = Model::load(WINNOW_FIXTURE_DIR "/tiny-llama.gguf");
    auto be = winnow::make_cpu_backend(1);
    Forward f(*m, *be, 4);
    std::vector<int32_t> ids{1, 2, 3};
    f.eval(ids);
    EXPECT_THROW(f.eval(ids), winnow::Error);
    std::vector<int32_t> bad{m->config().n_vocab};
    Forward g(*m, *be, 4);
    EXPECT_THROW(g.eval(bad), winnow::Error);
}

} // namespace
