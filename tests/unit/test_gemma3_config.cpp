// What a Gemma 3 checkpoint's metadata may say, and what is refused with one line naming it. The computation itself
// is checked against llama.cpp and a float64 HF-formula oracle on tiny-gemma3 (TinyParity.Gemma3MatchesLlamaCpp,
// cli.logits_tiny-gemma3*_vs_numpy); here: transformers 5's config form (layer_types, rope_parameters per layer type)
// is the same model as the older one the fixture is written in; Gemma 3's image-text checkpoints, softcapping (Gemma
// 2's), other activations and scaled sliding layers are refused; a GGUF needs its sliding window; block-sparse
// patterns are refused on sliding-window models.
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
#include "model/model.h"
#include "winnow/error.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using winnow::LoadedModel;

const fs::path kFixture = fs::path(WINNOW_FIXTURE_DIR) / "tiny-gemma3-hf";

using winnow::test::error_of;

// tiny-gemma3-hf in a fresh folder, its config.json edited first
fs::path edited_checkpoint(const std::string& name, const std::function<void(json&)>& edit) {
    return winnow::test::edited_checkpoint(kFixture, name, edit);
}

std::string gemma3_refusal(const std::string& name, const std::function<void(json&)>& edit) {
    const auto dir = edited_checkpoint(name, edit);
    return error_of([&] { (void)LoadedModel::load(dir.string()); });
}

std::vector<float> logits(const LoadedModel& m) { return winnow::test::fixed_sequence_logits(m); }

TEST(Gemma3Config, Transformers5FormEqualsTheOlderOne) {
    const auto older = LoadedModel::load(kFixture.string());
    const auto dir = edited_checkpoint("gemma3-transformers5", [](json& c) {
        // what transformers 5 saves: the pattern spelled out per layer, the rotary settings per layer type
        json types = json::array();
        for (int i = 0; i < c["num_hidden_layers"].get<int>(); ++i) types.push_back((i + 1) % 6 == 0 ? "full_attention" : "sliding_attention");
        c["layer_types"] = types;
        c["rope_parameters"] = {{"full_attention", {{"rope_type", "linear"}, {"factor", 4.0}, {"rope_theta", 1000000.0}}},
                                {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 10000.0}}}};
        for (const char* k : {"rope_theta", "rope_local_base_freq", "rope_scaling", "sliding_window_pattern"}) c.erase(k);
    });
    const auto newer = LoadedModel::load(dir.string());
    EXPECT_EQ(newer->config().sliding_layers, older->config().sliding_layers);
    EXPECT_EQ(newer->config().rope_base, 1000000.0f);
    EXPECT_EQ(newer->config().rope_base_sliding, 10000.0f);
    EXPECT_EQ(newer->weights().rope_freqs, older->weights().rope_freqs);
    EXPECT_EQ(logits(*newer), logits(*older));
}

// One flat rope_parameters object (no per-layer-type keys) is the full layers' rotation, as the older rope_scaling was
TEST(Gemma3Config, FlatRopeParametersAreTheFullLayers) {
    const auto older = LoadedModel::load(kFixture.string());
    const auto dir = edited_checkpoint("gemma3-flat-rope", [](json& c) {
        c["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 4.0}, {"rope_theta", 1000000.0}};
        for (const char* k : {"rope_theta", "rope_scaling"}) c.erase(k);
    });
    const auto flat = LoadedModel::load(dir.string());
    EXPECT_EQ(flat->weights().rope_freqs, older->weights().rope_freqs);
    EXPECT_EQ(flat->config().rope_base, 1000000.0f);
    EXPECT_EQ(logits(*flat), logits(*older));
}

// A layer_types list other than the pattern is followed layer by layer: all full attention is another function
TEST(Gemma3Config, LayerTypesAreFollowed) {
    const auto dir = edited_checkpoint("gemma3-all-full", [](json& c) {
        c["layer_types"] = json::array();
        for (int i = 0; i < c["num_hidden_layers"].get<int>(); ++i) c["layer_types"].push_back("full_attention");
    });
    const auto all_full = LoadedModel::load(dir.string());
    EXPECT_EQ(all_full->config().sliding_layers, std::vector<uint8_t>(7, 0));
    EXPECT_NE(logits(*all_full), logits(*LoadedModel::load(kFixture.string())));
}

TEST(Gemma3Config, RefusesWhatItCannotCompute) {
    EXPECT_NE(gemma3_refusal("gemma3-multimodal", [](json& c) { c["model_type"] = "gemma3"; }).find("image-text checkpoints) is not supported"),
              std::string::npos);
    EXPECT_NE(gemma3_refusal("gemma3-softcap", [](json& c) { c["final_logit_softcapping"] = 30.0; }).find("final_logit_softcapping is not supported"),
              std::string::npos);
    EXPECT_NE(gemma3_refusal("gemma3-attn-softcap", [](json& c) { c["attn_logit_softcapping"] = 50.0; }).find("attn_logit_softcapping is not supported"),
              std::string::npos);
    EXPECT_NE(gemma3_refusal("gemma3-act", [](json& c) { c["hidden_activation"] = "gelu"; }).find("hidden_activation 'gelu' is not supported"),
              std::string::npos);
    EXPECT_NE(gemma3_refusal("gemma3-chunked", [](json& c) { c["layer_types"] = json(7, "chunked_attention"); }).find("layer_types entry \"chunked_attention\""),
              std::string::npos);
    EXPECT_NE(gemma3_refusal("gemma3-short-types", [](json& c) { c["layer_types"] = json(3, "full_attention"); }).find("num_hidden_layers entries"),
              std::string::npos);
    EXPECT_NE(gemma3_refusal("gemma3-no-window", [](json& c) { c.erase("sliding_window"); }).find("required key 'sliding_window' is missing"), std::string::npos);
    EXPECT_NE(gemma3_refusal("gemma3-yarn", [](json& c) { c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 8.0}}; }).find("type 'yarn' is not supported"),
              std::string::npos);
    EXPECT_NE(gemma3_refusal("gemma3-scaled-sliding",
                      [](json& c) {
                          c["rope_parameters"] = {{"sliding_attention", {{"rope_type", "linear"}, {"factor", 2.0}}}};
                      })
                  .find("scaled rotation of the sliding layers is not supported"),
              std::string::npos);
}

// llama.cpp fixes the pattern, the sliding base and the scale for the architecture, but reads the window: a gemma3
// file without it is refused by name; so is one whose logits or scores are softcapped (Gemma 2's, which winnow does
// not compute)
std::string gemma3_gguf_refusal(const std::string& extra_key, float value) {
    winnow::test::GgufWriter w;
    w.header(0, extra_key.empty() ? 7 : 8);
    w.kv_str("general.architecture", "gemma3");
    w.kv_u32("gemma3.embedding_length", 64);
    w.kv_u32("gemma3.block_count", 1);
    w.kv_u32("gemma3.feed_forward_length", 32);
    w.kv_u32("gemma3.context_length", 64);
    w.kv_u32("gemma3.attention.head_count", 4);
    w.kv_f32("gemma3.attention.layer_norm_rms_epsilon", 1e-6f);
    if (!extra_key.empty()) w.kv_f32(extra_key, value);
    const auto path = winnow::fuzz::fresh_dir("gemma3-gguf-metadata") / "m.gguf";
    w.write(path);
    return error_of([&] { (void)LoadedModel::load(path.string()); });
}

TEST(Gemma3Config, GgufNeedsItsSlidingWindowAndNoSoftcapping) {
    EXPECT_NE(gemma3_gguf_refusal("", 0).find("gemma3.attention.sliding_window"), std::string::npos);
    EXPECT_NE(gemma3_gguf_refusal("gemma3.final_logit_softcapping", 30.0f).find("gemma3.final_logit_softcapping is not supported"), std::string::npos);
    EXPECT_NE(gemma3_gguf_refusal("gemma3.attn_logit_softcapping", 50.0f).find("gemma3.attn_logit_softcapping is not supported"), std::string::npos);
}

// SPION's patterns are calibrated on full-attention layers; a sliding layer with one is refused when the masks are set
TEST(Gemma3Config, BlockSparsePatternsAreRefused) {
    const auto m = LoadedModel::load((kFixture.parent_path() / "tiny-gemma3.gguf").string());
    auto be = winnow::make_cpu_backend(1);
    winnow::Forward f(*m, *be, 64);
    winnow::BlockMask mask;
    mask.block = 16;
    mask.n_blocks = 4;
    mask.keep.assign(16, 1);
    const std::string e = error_of([&] { f.set_attention_masks(std::vector<const winnow::BlockMask*>(7, &mask)); });
    EXPECT_NE(e.find("layer 0 of this gemma3 model attends through a sliding window"), std::string::npos) << e;
}

} // namespace
