// SmolLM2-135M-Instruct Q4_1: next-token logits for 3 prompts x 64 positions against two independent oracles.
//  - llama.cpp (llama-cpp-python, tests/fixtures/llama_oracle.py). llama.cpp quantizes every activation vector to
//    8-bit blocks (Q8_1 for Q4_1 weights, Q8_0 for the Q8_0 head) before integer dot products. Our q8 mode does
//    the same and must agree closely; our fp32-activation reference mode differs from llama.cpp by exactly that
//    activation rounding, which the second oracle measures:
//  - a float64 numpy forward (tests/fixtures/numpy_oracle.py) on the same gguf-py-decoded weights, with no
//    activation quantization. Our f32 mode must match it to fp32 round-off.
#include <algorithm>
#include <cmath>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "decode/forward.h"
#include "model/model.h"
#include "model/oracle_file.h"
#include "model/require_input.h"

namespace {

// The logit gap between llama.cpp and exact arithmetic is ~0.5 (median row max); positions whose top-2 margin
// is smaller are near-ties that activation rounding may flip, larger ones must never flip.
constexpr float kDecisiveMargin = 0.5f;

float top2_margin(const float* row, int n) {
    float a = -INFINITY, b = -INFINITY;
    for (int i = 0; i < n; ++i) {
        if (row[i] > a) { b = a; a = row[i]; }
        else if (row[i] > b) b = row[i];
    }
    return a - b;
}

struct LogitAgreement {
    int rows = 0, same_argmax = 0;
    int decisive = 0, decisive_same = 0; // positions where the oracle's top-2 margin is at least kDecisiveMargin
    double max_abs = 0, median_row = 0;
    double argmax_rate() const { return rows ? static_cast<double>(same_argmax) / rows : 0; }
};

LogitAgreement agreement(const winnow::test::OracleFile& oracle, winnow::CpuDotMode mode, const char* label) {
    auto m = winnow::Model::load(WINNOW_DEFAULT_MODEL);
    const int nv = m->config().n_vocab;
    EXPECT_EQ(oracle.n_vocab, static_cast<uint32_t>(nv));
    auto be = winnow::make_cpu_backend(2, mode);
    LogitAgreement a;
    std::vector<double> row_max;
    for (auto& seq : oracle.seqs) {
        winnow::Forward f(*m, *be, static_cast<int>(seq.ids.size()));
        const auto& ours = f.eval(seq.ids, true);
        for (size_t t = 0; t < seq.ids.size(); ++t) {
            auto d = winnow::test::compare_row(ours.data() + t * nv, seq.logits.data() + t * nv, nv);
            ++a.rows;
            a.same_argmax += d.same_argmax;
            if (top2_margin(seq.logits.data() + t * nv, nv) >= kDecisiveMargin) {
                ++a.decisive;
                a.decisive_same += d.same_argmax;
            }
            a.max_abs = std::max(a.max_abs, d.max_abs);
            row_max.push_back(d.max_abs);
        }
    }
    std::sort(row_max.begin(), row_max.end());
    a.median_row = row_max.empty() ? 0 : row_max[row_max.size() / 2];
    std::printf("SmolLM2 %s dots vs %s: %d positions, argmax agreement %.2f%% (%d/%d where the top-2 margin >= %.1f), "
                "max |dlogit| %.5f, median row max %.5f\n",
                winnow::to_string(mode), label, a.rows, 100.0 * a.argmax_rate(), a.decisive_same, a.decisive, kDecisiveMargin, a.max_abs,
                a.median_row);
    return a;
}

class SmolLM2Parity : public ::testing::Test {
protected:
    void SetUp() override {
        WINNOW_REQUIRE_FILE(WINNOW_DEFAULT_MODEL);
        WINNOW_REQUIRE_FILE(WINNOW_FIXTURE_DIR "/smollm2-llamacpp.bin"); // every test compares with (or against the ids of) it
    }
    // Both oracle files hold the 3 prompts of tests/fixtures/parity_prompts.txt cut to 64 positions, with the same ids.
    static winnow::test::OracleFile oracle(const char* name) {
        auto f = winnow::test::read_oracle(std::string(WINNOW_FIXTURE_DIR) + "/" + name);
        EXPECT_EQ(f.seqs.size(), 3u) << name;
        for (const auto& s : f.seqs) EXPECT_EQ(s.ids.size(), 64u) << name;
        return f;
    }
};

// llama.cpp rounds activations to 8 bits in every quantized dot product. Against exact arithmetic (the float64
// oracle) that moves its logits by up to ~1.9 (median row max ~0.6) and flips the argmax at near-ties (top-2
// margins < 0.25): 5 of 192 positions. An exact engine therefore cannot reach 99% argmax agreement with llama.cpp;
// what it must reach is agreement at every decisive position and a gap no larger than llama.cpp's own.
TEST_F(SmolLM2Parity, F32ModeAgainstLlamaCpp) {
    auto a = agreement(oracle("smollm2-llamacpp.bin"), winnow::CpuDotMode::f32, "llama.cpp");
    EXPECT_EQ(a.rows, 192);
    EXPECT_GE(a.argmax_rate(), 0.95);
    EXPECT_GE(a.decisive, 120); // 140 of 192 positions are decisive in these prompts
    EXPECT_EQ(a.decisive_same, a.decisive);
    EXPECT_LE(a.max_abs, 2.5);
}

// Exact arithmetic: our fp32 reference mode against the float64 numpy forward on the same decoded weights.
TEST_F(SmolLM2Parity, F32ModeMatchesFloat64Reference) {
    WINNOW_REQUIRE_FILE(WINNOW_FIXTURE_DIR "/smollm2-numpy.bin");
    const auto ref = oracle("smollm2-numpy.bin"), llama = oracle("smollm2-llamacpp.bin");
    ASSERT_EQ(ref.seqs.size(), llama.seqs.size());
    for (size_t s = 0; s < ref.seqs.size(); ++s) EXPECT_EQ(ref.seqs[s].ids, llama.seqs[s].ids) << "numpy oracle ran other ids, sequence " << s;
    auto a = agreement(ref, winnow::CpuDotMode::f32, "numpy float64");
    EXPECT_EQ(a.rows, 192);
    EXPECT_EQ(a.same_argmax, a.rows);
    EXPECT_LE(a.max_abs, 1e-3);
}

// Our q8 mode quantizes activations exactly as llama.cpp does (the tiny Q8_0 model's logits are bit-identical, the
// Q4_1 model's within 1%: test_tiny_parity.cpp; attention adds in another order than ggml's). Over 30
// layers, last-ulp differences in the fp32 ops around the dot products (exp, rsqrt, rope angles) occasionally flip
// an 8-bit rounding and the flips cascade, so the 30-layer gap is of the same size as the f32 mode's; the decisive
// positions must still agree.
TEST_F(SmolLM2Parity, Q8ModeAgainstLlamaCpp) {
    auto a = agreement(oracle("smollm2-llamacpp.bin"), winnow::CpuDotMode::q8, "llama.cpp");
    EXPECT_EQ(a.rows, 192);
    EXPECT_GE(a.argmax_rate(), 0.95);
    EXPECT_EQ(a.decisive_same, a.decisive);
    EXPECT_LE(a.max_abs, 2.5);
}

} // namespace
