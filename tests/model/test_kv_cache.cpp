// Prefill-then-decode must equal a full recompute at every position, up to fp32 summation order: logits from one
// batched pass over the whole sequence against logits from a prefill of part of it followed by one-token decode steps.
#include <cstdio>
#include <filesystem>
#include <utility>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "decode/forward.h"
#include "model/model.h"
#include "model/oracle_file.h"
#include "model/require_input.h"
#include "winnow/error.h"

namespace {

using winnow::Forward;
using winnow::GgmlType;
using winnow::Model;

// Logits of a prompt prefilled in one batch and then decoded token by token (as generation runs), with a KV cache of
// `type`: [n_tokens][n_vocab].
std::vector<float> logits_with_cache(const winnow::LoadedModel& m, winnow::Backend& be, const std::vector<int32_t>& ids, int prefill, GgmlType type) {
    Forward f(m, be, static_cast<int>(ids.size()), type);
    std::vector<float> rows(f.eval(std::span(ids).first(prefill), true));
    for (size_t i = prefill; i < ids.size(); ++i) {
        const auto& l = f.eval(std::span(ids).subspan(i, 1), false);
        rows.insert(rows.end(), l.begin(), l.end());
    }
    return rows;
}

// n deterministic token ids spread over the vocabulary
std::vector<int32_t> test_ids(int n, int n_vocab) {
    std::vector<int32_t> ids;
    for (int i = 0; i < n; ++i) ids.push_back((i * 7919 + 3) % n_vocab);
    return ids;
}

void expect_incremental_equals_batch(const std::string& path, int n_tokens, int prefill) {
    WINNOW_REQUIRE_FILE(path);
    auto m = Model::load(path);
    const int nv = m->config().n_vocab;
    const std::vector<int32_t> ids = test_ids(n_tokens, nv);
    auto be = winnow::make_cpu_backend(2);
    Forward full(*m, *be, n_tokens);
    const std::vector<float> batch = full.eval(ids, true);
    const std::vector<float> rows = logits_with_cache(*m, *be, ids, prefill, GgmlType::F32);
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

// An F16 cache (--kv-type f16) rounds each cached K and V element by at most u = 2^-11 relative; the attention output
// then moves by about u (tests/ops: NMSE ~u^2 / 3), and the logits by a small multiple of u once the layers add it
// up: measured 4.8e-4 (tiny llama) to 1.3e-3 (SmolLM2, 30 layers) of the row's largest |logit|. The bound, 5e-3
// (~10u), leaves ~4x on SmolLM2 and is far below what a wrong read of the cache gives. BF16 (u = 2^-8, 8x coarser):
// measured 4.7e-3 to 9.6e-3, bound 4e-2. The gap must also be nonzero (the cache really holds rounded values), and an
// f16 cache must not move a greedy choice on these sequences (bf16 may: it flips one near-tie of the random tiny llama).
void expect_half_cache_close(const std::string& path, int n_tokens, int prefill) {
    WINNOW_REQUIRE_FILE(path);
    auto m = Model::load(path);
    const int nv = m->config().n_vocab;
    const std::vector<int32_t> ids = test_ids(n_tokens, nv);
    auto be = winnow::make_cpu_backend(2);
    const std::vector<float> ref = logits_with_cache(*m, *be, ids, prefill, GgmlType::F32);
    for (auto [type, bound] : {std::pair{GgmlType::F16, 5e-3}, {GgmlType::BF16, 4e-2}}) {
        const std::vector<float> half = logits_with_cache(*m, *be, ids, prefill, type);
        ASSERT_EQ(half.size(), ref.size());
        double worst = 0;
        int flips = 0;
        for (int t = 0; t < n_tokens; ++t) {
            const auto d = winnow::test::compare_row(half.data() + static_cast<size_t>(t) * nv, ref.data() + static_cast<size_t>(t) * nv, nv);
            worst = std::max(worst, d.rel);
            flips += !d.same_argmax;
        }
        const char* name = winnow::ggml_type_name(type);
        std::printf("%s: %s cache vs f32 over %d positions: max relative %.3g, argmax flips %d\n", path.c_str(), name, n_tokens, worst, flips);
        EXPECT_LE(worst, bound) << path << " " << name;
        EXPECT_GT(worst, 0.0) << path << " " << name << ": the logits did not move, is the cache really rounded?";
        if (type == GgmlType::F16) {
            EXPECT_EQ(flips, 0) << path;
        }
    }
}

TEST(KvCache, TinyLlamaHalfCacheStaysCloseToF32) { expect_half_cache_close(WINNOW_FIXTURE_DIR "/tiny-llama-q4_1.gguf", 64, 9); }
TEST(KvCache, TinyGpt2HalfCacheStaysCloseToF32) { expect_half_cache_close(WINNOW_FIXTURE_DIR "/tiny-gpt2.gguf", 64, 9); }
TEST(KvCache, SmolLM2HalfCacheStaysCloseToF32) { expect_half_cache_close(WINNOW_DEFAULT_MODEL, 48, 16); }

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
