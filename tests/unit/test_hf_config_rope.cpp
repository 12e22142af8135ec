// The rotary base of a LLaMA-family safetensors checkpoint, in both config.json forms: a top-level "rope_theta"
// (transformers 4) and "rope_parameters": {"rope_type", "rope_theta"} (transformers 5, whose saved configs have no
// top-level key; read as 10000 before, silently, which changed every rotation of a model with another base). Scaled
// variants, bad bases and two bases that disagree are refused with a one-line winnow::Error.
#include <functional>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/model.h"
#include "tiny_llama_checkpoint.h"
#include "winnow/error.h"

namespace {

using nlohmann::json;
using winnow::LoadedModel;

// Loads the tiny llama checkpoint with its config.json changed by `edit`.
std::unique_ptr<LoadedModel> load_with(const std::string& name, const std::function<void(json&)>& edit) {
    return LoadedModel::load(winnow::test::tiny_llama_checkpoint(name, edit).string());
}

std::string rope_refusal(const std::string& name, const std::function<void(json&)>& edit) {
    try {
        (void)load_with(name, edit);
    } catch (const winnow::Error& e) {
        return e.what();
    }
    return "";
}

TEST(HfConfigRope, TopLevelRopeTheta) {
    EXPECT_EQ(load_with("top", [](json& c) { c["rope_theta"] = 500000.0; })->config().rope_base, 500000.0f);
    EXPECT_EQ(load_with("absent", [](json& c) { c.erase("rope_theta"); })->config().rope_base, 10000.0f);
}

TEST(HfConfigRope, Transformers5RopeParameters) {
    auto v5 = [](json& c) {
        c.erase("rope_theta");
        c["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 500000.0}};
    };
    EXPECT_EQ(load_with("v5", v5)->config().rope_base, 500000.0f);
    // both forms, agreeing
    EXPECT_EQ(load_with("both", [&](json& c) { v5(c), c["rope_theta"] = 500000.0; })->config().rope_base, 500000.0f);
    // rope_parameters without a base: the top-level one, or the default
    EXPECT_EQ(load_with("no-base", [](json& c) { c["rope_parameters"] = {{"rope_type", "default"}}; })->config().rope_base, 10000.0f);
}

// Llama 3.1's scaling in transformers 5's form (rope_parameters); the earlier rope_scaling form is checked against
// llama.cpp's rope_freqs.weight by FormatParity.Llama3RopeScalingSafetensorsEqualsGguf.
TEST(HfConfigRope, Llama3ScalingInRopeParameters) {
    auto m = load_with("llama3-v5", [](json& c) {
        c.erase("rope_theta");
        c["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 32.0}, {"low_freq_factor", 1.0},
                                {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 64}};
    });
    EXPECT_EQ(m->config().rope_base, 500000.0f);
    const auto& f = m->weights().rope_freqs;
    ASSERT_EQ(f.size(), static_cast<size_t>(m->config().rope_dim / 2));
    EXPECT_EQ(f.front(), 1.0f);  // the fastest pair keeps its frequency
    EXPECT_EQ(f.back(), 32.0f); // the slowest is slowed by the factor
}

TEST(HfConfigRope, ScaledDisagreeingOrBadBasesAreRefused) {
    EXPECT_NE(rope_refusal("llama3-partial", [](json& c) { c["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 10000.0}, {"factor", 32.0}}; })
                  .find("original_max_position_embeddings"),
              std::string::npos);
    EXPECT_NE(rope_refusal("llama3-inverted", [](json& c) {
                  c["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 4.0}, {"high_freq_factor", 1.0},
                                       {"original_max_position_embeddings", 64}};
              }).find("low_freq_factor < high_freq_factor"),
              std::string::npos);
    EXPECT_NE(rope_refusal("yarn", [](json& c) { c["rope_parameters"] = {{"rope_type", "yarn"}, {"rope_theta", 10000.0}, {"factor", 4.0}}; })
                  .find("rope_type 'yarn' is not supported"),
              std::string::npos);
    EXPECT_NE(rope_refusal("differ", [](json& c) { c["rope_parameters"] = {{"rope_theta", 500000.0}}; }).find("differ"), std::string::npos);
    EXPECT_NE(rope_refusal("not-object", [](json& c) { c["rope_parameters"] = 3; }).find("rope_parameters is not an object"), std::string::npos);
    EXPECT_NE(rope_refusal("wrong-type", [](json& c) { c["rope_parameters"] = {{"rope_theta", "big"}}; }).find("wrong type"), std::string::npos);
    EXPECT_NE(rope_refusal("zero", [](json& c) { c["rope_theta"] = 0; }).find("positive finite"), std::string::npos);
    EXPECT_NE(rope_refusal("negative", [](json& c) { c["rope_theta"] = -10000.0; }).find("positive finite"), std::string::npos);
    EXPECT_NE(rope_refusal("scaling", [](json& c) { c["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}}; }).find("rope_scaling"), std::string::npos);
}

} // namespace
