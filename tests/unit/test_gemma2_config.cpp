// What a Gemma 2 checkpoint's metadata may say. The computation itself is checked against llama.cpp and a float64
// HF-formula oracle on tiny-gemma2 (TinyParity.Gemma2MatchesLlamaCpp, cli.logits_tiny-gemma2*_vs_numpy); here: HF's
// class defaults where config.json leaves the caps or the window out (Gemma2Config: 50, 30, 4,096), a null cap is no
// cap, layer_types overrides the every-second-layer pattern, a scaled rotation and a bad GGUF cap are refused, and the
// adaptive head (which ranks raw logits) refuses a model that caps them.
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../fuzz/fuzz_util.h"
#include "backend/backend.h"
#include "decode/forward.h"
#include "edited_checkpoint.h"
#include "error_of.h"
#include "gguf_writer.h"
#include "head/adaptive_head.h"
#include "model/model.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using winnow::LoadedModel;
using winnow::test::error_of;

const fs::path kGemma2 = fs::path(WINNOW_FIXTURE_DIR) / "tiny-gemma2-hf";

// tiny-gemma2-hf in a fresh folder, its config.json edited first
fs::path edited_gemma2(const std::string& name, const std::function<void(json&)>& edit) {
    return winnow::test::edited_checkpoint(kGemma2, name, edit);
}

TEST(Gemma2Config, AbsentCapsAndWindowTakeHfDefaults) {
    const auto m = LoadedModel::load(edited_gemma2("gemma2-defaults", [](json& c) {
                                         c.erase("attn_logit_softcapping");
                                         c.erase("final_logit_softcapping");
                                         c.erase("sliding_window");
                                     }).string());
    EXPECT_EQ(m->config().attn_softcap, 50.0f);
    EXPECT_EQ(m->config().final_softcap, 30.0f);
    EXPECT_EQ(m->config().sliding_window, 4096);
    EXPECT_EQ(m->config().sliding_layers, (std::vector<uint8_t>{1, 0, 1, 0}));
}

// A null cap is none: the model then computes other logits than the fixture's (caps 1 and 2 bend every row)
TEST(Gemma2Config, NullCapsAreNone) {
    const auto capped = LoadedModel::load(kGemma2.string());
    const auto m = LoadedModel::load(edited_gemma2("gemma2-no-caps", [](json& c) {
                                         c["attn_logit_softcapping"] = nullptr;
                                         c["final_logit_softcapping"] = nullptr;
                                     }).string());
    EXPECT_EQ(m->config().attn_softcap, 0.0f);
    EXPECT_EQ(m->config().final_softcap, 0.0f);
    const auto a = winnow::test::fixed_sequence_logits(*capped), b = winnow::test::fixed_sequence_logits(*m);
    ASSERT_EQ(a.size(), b.size());
    double diff = 0;
    for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, static_cast<double>(std::abs(a[i] - b[i])));
    EXPECT_GT(diff, 0.1);
    for (float x : a) ASSERT_LE(std::abs(x), 2.0f); // the capped logits stay within the cap
}

TEST(Gemma2Config, LayerTypesOverrideThePattern) {
    const auto m = LoadedModel::load(edited_gemma2("gemma2-layer-types", [](json& c) {
                                         c["layer_types"] = {"full_attention", "sliding_attention", "sliding_attention", "full_attention"};
                                     }).string());
    EXPECT_EQ(m->config().sliding_layers, (std::vector<uint8_t>{0, 1, 1, 0}));
}

TEST(Gemma2Config, Refusals) {
    const std::string scaled = error_of([] {
        (void)LoadedModel::load(edited_gemma2("gemma2-rope-scaling", [](json& c) { c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}}; }).string());
    });
    EXPECT_NE(scaled.find("a scaled rotation is not supported for gemma2"), std::string::npos) << scaled;
    const std::string negative = error_of([] {
        (void)LoadedModel::load(edited_gemma2("gemma2-negative-cap", [](json& c) { c["final_logit_softcapping"] = -30.0; }).string());
    });
    EXPECT_NE(negative.find("final_logit_softcapping must be a positive finite number or null"), std::string::npos) << negative;
    // the adaptive head estimates and ranks raw logits: a capped model is refused by name
    const auto m = LoadedModel::load(kGemma2.string());
    const std::string adaptive = error_of([&] { winnow::head::AdaptiveHead head(*m, {}); });
    EXPECT_NE(adaptive.find("the adaptive head does not support a model that caps its logits"), std::string::npos) << adaptive;
}

// A gemma2 file's caps must be positive finite numbers (llama.cpp's defaults, 50 and 30, stand in for absent keys)
TEST(Gemma2Config, GgufCapMustBePositive) {
    winnow::test::GgufWriter w;
    w.header(0, 8);
    w.kv_str("general.architecture", "gemma2");
    w.kv_u32("gemma2.embedding_length", 64);
    w.kv_u32("gemma2.block_count", 1);
    w.kv_u32("gemma2.feed_forward_length", 32);
    w.kv_u32("gemma2.context_length", 64);
    w.kv_u32("gemma2.attention.head_count", 4);
    w.kv_f32("gemma2.attention.layer_norm_rms_epsilon", 1e-6f);
    w.kv_f32("gemma2.attn_logit_softcapping", -50.0f);
    const auto path = winnow::fuzz::fresh_dir("gemma2-gguf-cap") / "m.gguf";
    w.write(path);
    const std::string e = error_of([&] { (void)LoadedModel::load(path.string()); });
    EXPECT_NE(e.find("gemma2.attn_logit_softcapping must be a positive finite number"), std::string::npos) << e;
}

} // namespace
