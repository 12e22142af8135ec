// Greedy generation of SmolLM2-135M against llama.cpp (tests/fixtures/llama_greedy_oracle.py) for 10 prompts, plain
// and chat, 32 tokens each: the Q4_1 file, and the same weights as llama.cpp's quantizer writes them for its Q4_K_M
// preset (Q5_0, Q8_0, Q4_K and Q6_K tensors; the fixture fixture.smollm2_q4_k_m). The chat prompt is rendered by our Jinja engine and must equal the model's Jinja template
// rendered by jinja2; the prompt ids must equal llama.cpp's. Generated tokens must match until the end, or until a
// near-tie that activation rounding can flip: there the gap between the two candidates in our logits must be tiny.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "decode/forward.h"
#include "chat/chat_template.h"
#include "decode/generator.h"
#include "io/gguf.h"
#include "model/model.h"
#include "model/require_input.h"
#include "tokenizer/tokenizer.h"

namespace {

// llama.cpp's activation rounding moves SmolLM2's logits by ~0.5 (median row max; see test_smollm2_parity.cpp), so a
// flip is legitimate only where the two candidates are closer than that. On the Q4_K_M file it moves them further:
// the Q4_K weights' activations are rounded in blocks of 256 (Q8_K), not 32. Measured with winnow's f32 logits (exact
// arithmetic on the stored weights) against llama.cpp's on the parity prompts (3 x 64 positions): the row-max
// difference has median 0.65 / 0.95, 90th percentile 0.97 / 1.42 and maximum 1.88 / 3.36 on Q4_1 / Q4_K_M. The
// Q4_K_M bound is that 90th percentile: a flip within it is one the engines' known distance explains. (A bound at the
// median was tried and is too tight: reordering the float additions of one kernel, Q6_K's, moved one q8 flip's gap
// from 0.51 to 1.29, the 8-bit roundings cascading over 30 layers.)
constexpr float kNearTie = 0.5f, kNearTieQ4KM = 1.5f;

// prompt_by_steps: the prompt goes in one decode step per token instead of one prefill batch, so that every product
// takes the decode path (the q8 mode rounds the preset types' activations there only; llama.cpp rounds them in both).
void run_greedy_parity(const std::string& model_path, const std::string& oracle_path, winnow::CpuDotMode mode, float near_tie,
                       bool prompt_by_steps = false) {
    WINNOW_REQUIRE_FILE(model_path);
    WINNOW_REQUIRE_FILE(oracle_path);
    std::ifstream in(oracle_path);
    ASSERT_TRUE(in.good()) << "oracle output missing (fixture.llama_greedy_smollm2*)";
    auto model = winnow::Model::load(model_path);
    auto tok = winnow::Tokenizer::from_gguf(*model->gguf());
    const winnow::ChatTemplate tmpl = winnow::load_chat_template_for(*model, *tok);
    auto be = winnow::make_cpu_backend(2, mode);
    int cases = 0, full_matches = 0, matched_tokens = 0, total_tokens = 0;
    for (std::string line; std::getline(in, line);) {
        const auto j = nlohmann::json::parse(line);
        const std::string prompt = j["prompt"], mode_name = j["mode"];
        const std::string rendered = mode_name == "chat" ? winnow::apply_chat_template(tmpl, "", prompt) : prompt;
        EXPECT_EQ(rendered, j["rendered"].get<std::string>()) << "chat template rendering differs from jinja2";
        const auto ids = tok->encode(rendered, tok->add_bos_default(), true);
        ASSERT_EQ(ids, j["prompt_ids"].get<std::vector<int32_t>>()) << "prompt ids differ from llama.cpp's for: " << prompt;
        const auto ref = j["greedy_ids"].get<std::vector<int32_t>>();
        const auto margins = j["margins"].get<std::vector<float>>();
        ASSERT_EQ(ref.size(), 32u) << "the oracle generates 32 tokens per prompt: " << prompt;
        ASSERT_EQ(margins.size(), ref.size()) << prompt;

        winnow::Forward f(*model, *be, 512);
        std::vector<float> logits;
        if (prompt_by_steps)
            for (const int32_t id : ids) logits = f.eval(std::span<const int32_t>(&id, 1));
        else
            logits = f.eval(ids);
        size_t k = 0;
        for (; k < ref.size(); ++k) {
            const auto ours = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
            if (ours != ref[k]) {
                const float gap = logits[ours] - logits[ref[k]];
                std::printf("  [%s] '%s': diverges at token %zu: ours %d vs llama.cpp %d, our gap %.4f, llama.cpp margin %.4f\n",
                            winnow::to_string(mode), prompt.c_str(), k, ours, ref[k], gap, margins[k]);
                EXPECT_LE(gap, near_tie) << prompt;
                EXPECT_LE(margins[k], near_tie) << prompt;
                break;
            }
            logits = f.eval(std::span<const int32_t>(&ours, 1));
        }
        ++cases;
        full_matches += k == ref.size();
        matched_tokens += static_cast<int>(k);
        total_tokens += static_cast<int>(ref.size());
    }
    EXPECT_EQ(cases, 10);
    std::printf("%s: greedy vs llama.cpp (%s dots): %d/%d prompts identical for 32 tokens, %d/%d tokens before the first divergence\n",
                model_path.c_str(), winnow::to_string(mode), full_matches, cases, matched_tokens, total_tokens);
    // Small models meet many near-ties in greedy continuations (observed: 3 of 10 prompts run all 32 tokens
    // identical in f32 mode, 198/320 tokens before the first flip); every flip above must be a near-tie.
    EXPECT_GE(matched_tokens, total_tokens / 4);
}

const std::string kQ4_1 = WINNOW_DEFAULT_MODEL, kQ4_1Oracle = WINNOW_FIXTURE_DIR "/smollm2-greedy.jsonl";
const std::string kQ4KM = WINNOW_FIXTURE_DIR "/smollm2-q4_k_m.gguf", kQ4KMOracle = WINNOW_FIXTURE_DIR "/smollm2-q4_k_m-greedy.jsonl";

TEST(SmolLM2Greedy, F32ModeReproducesLlamaCpp) { run_greedy_parity(kQ4_1, kQ4_1Oracle, winnow::CpuDotMode::f32, kNearTie); }
TEST(SmolLM2Greedy, Q8ModeReproducesLlamaCpp) { run_greedy_parity(kQ4_1, kQ4_1Oracle, winnow::CpuDotMode::q8, kNearTie); }
// The preset file's decode steps run the preset types' own kernels: fp32 products (f32), and the 8-bit-activation
// ones with Q8_K / Q8_0 activations as llama.cpp computes them (q8). In q8 mode the prompt goes in by decode steps as
// well, so every product rounds its activations as llama.cpp's do (prefill batches of these types take sgemm). Both
// modes get the same bound: over 30 layers the q8 mode does not track llama.cpp closer than the f32 mode does (see
// SmolLM2Parity.Q8ModeAgainstLlamaCpp), so this test guards the kernels in a real model (a wrong scale or bit
// diverges at once, far from a tie), and their agreement with ggml is shown where it can be: Q8VsGgml (kernel by
// kernel) and cli.logits_tiny-llama-k-<preset>_q8_vs_llama_cpp (two layers).
TEST(SmolLM2Greedy, Q4KMF32ModeReproducesLlamaCpp) { run_greedy_parity(kQ4KM, kQ4KMOracle, winnow::CpuDotMode::f32, kNearTieQ4KM); }
TEST(SmolLM2Greedy, Q4KMQ8ModeReproducesLlamaCpp) { run_greedy_parity(kQ4KM, kQ4KMOracle, winnow::CpuDotMode::q8, kNearTieQ4KM, true); }

} // namespace
