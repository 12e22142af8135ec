// Greedy generation of SmolLM2-135M against llama.cpp (tests/fixtures/llama_greedy_oracle.py) for 10 prompts, plain
// and chat, 32 tokens each. The chat prompt is rendered by our Jinja engine and must equal the model's Jinja template
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
// flip is legitimate only where the two candidates are closer than that.
constexpr float kNearTie = 0.5f;

void run_greedy_parity(winnow::CpuDotMode mode) {
    WINNOW_REQUIRE_FILE(WINNOW_DEFAULT_MODEL);
    WINNOW_REQUIRE_FILE(WINNOW_FIXTURE_DIR "/smollm2-greedy.jsonl");
    std::ifstream in(WINNOW_FIXTURE_DIR "/smollm2-greedy.jsonl");
    ASSERT_TRUE(in.good()) << "oracle output missing (fixture.llama_greedy_smollm2)";
    auto model = winnow::Model::load(WINNOW_DEFAULT_MODEL);
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
        std::vector<float> logits = f.eval(ids);
        size_t k = 0;
        for (; k < ref.size(); ++k) {
            const auto ours = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
            if (ours != ref[k]) {
                const float gap = logits[ours] - logits[ref[k]];
                std::printf("  [%s] '%s': diverges at token %zu: ours %d vs llama.cpp %d, our gap %.4f, llama.cpp margin %.4f\n",
                            winnow::to_string(mode), prompt.c_str(), k, ours, ref[k], gap, margins[k]);
                EXPECT_LE(gap, kNearTie) << prompt;
                EXPECT_LE(margins[k], kNearTie) << prompt;
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
    std::printf("greedy vs llama.cpp (%s dots): %d/%d prompts identical for 32 tokens, %d/%d tokens before the first divergence\n",
                winnow::to_string(mode), full_matches, cases, matched_tokens, total_tokens);
    // Small models meet many near-ties in greedy continuations (observed: 3 of 10 prompts run all 32 tokens
    // identical in f32 mode, 198/320 tokens before the first flip); every flip above must be a near-tie.
    EXPECT_GE(matched_tokens, total_tokens / 4);
}

TEST(SmolLM2Greedy, F32ModeReproducesLlamaCpp) { run_greedy_parity(winnow::CpuDotMode::f32); }
TEST(SmolLM2Greedy, Q8ModeReproducesLlamaCpp) { run_greedy_parity(winnow::CpuDotMode::q8); }

} // namespace
