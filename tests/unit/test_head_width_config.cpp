// Head widths and qwen3's head norms in a model's metadata: heads of another width than n_embd / n_head load (GGUF
// attention.key_length / value_length, HF head_dim; Qwen3-0.6B's 16 x 128 on 1,024), and what winnow cannot compute
// or cannot tell is refused with one line naming it: key and value heads of different widths (llama.cpp defaults
// either to n_embd / n_head), an embedding the heads do not divide with no width given, sliding-window layers, and a
// qwen3 checkpoint without its head norms. The computation itself is checked against llama.cpp on tiny-qwen3
// (TinyParity.Qwen3MatchesLlamaCpp).
#include <filesystem>
#include <functional>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../fuzz/fuzz_util.h"
#include "error_of.h"
#include "gguf_writer.h"
#include "model/model.h"
#include "tiny_llama_checkpoint.h"
#include "winnow/error.h"

namespace {

using nlohmann::json;
using winnow::LoadedModel;
using winnow::test::GgufWriter;

using winnow::test::error_of;

// A metadata-only GGUF of a llama-computation architecture: the loader decides the head width before any tensor.
std::string gguf_refusal(const std::string& arch, int n_embd, int n_head, int key_length, int value_length) {
    GgufWriter w;
    const int kv = 7 + (key_length > 0) + (value_length > 0);
    w.header(0, kv);
    w.kv_str("general.architecture", arch);
    w.kv_u32(arch + ".embedding_length", n_embd);
    w.kv_u32(arch + ".block_count", 1);
    w.kv_u32(arch + ".feed_forward_length", 32);
    w.kv_u32(arch + ".context_length", 64);
    w.kv_u32(arch + ".attention.head_count", n_head);
    w.kv_f32(arch + ".attention.layer_norm_rms_epsilon", 1e-6f);
    if (key_length > 0) w.kv_u32(arch + ".attention.key_length", key_length);
    if (value_length > 0) w.kv_u32(arch + ".attention.value_length", value_length);
    const auto path = winnow::fuzz::fresh_dir("head-width-gguf") / (arch + ".gguf");
    w.write(path);
    return error_of([&] { (void)LoadedModel::load(path.string()); });
}

std::string hf_refusal(const std::string& name, const std::function<void(json&)>& edit) {
    const auto dir = winnow::test::tiny_llama_checkpoint(name, edit);
    return error_of([&] { (void)LoadedModel::load(dir.string()); });
}

TEST(HeadWidthConfig, GgufKeyAndValueWidthsMustAgree) {
    EXPECT_NE(gguf_refusal("qwen3", 64, 4, 32, 16).find("key heads of 32 and value heads of 16: winnow needs one width for both"), std::string::npos);
    // value_length absent: llama.cpp's default n_embd / n_head (16) is not the key heads' 32
    EXPECT_NE(gguf_refusal("qwen3", 64, 4, 32, 0).find("key heads of 32 and value heads of 16"), std::string::npos);
    EXPECT_NE(gguf_refusal("llama", 60, 8, 0, 0).find("embedding length 60 is not a multiple of the head count 8"), std::string::npos);
    // both widths given: a 60-wide embedding with 8 heads of 16 gets past the widths (and stops at the missing vocabulary)
    EXPECT_EQ(gguf_refusal("llama", 60, 8, 16, 16).find("head count"), std::string::npos);
}

TEST(HeadWidthConfig, HfHeadDimAndLayerTypes) {
    EXPECT_NE(hf_refusal("hd-undivided", [](json& c) { c["num_attention_heads"] = 3, c["num_key_value_heads"] = 3; })
                  .find("hidden_size 16 is not a multiple of num_attention_heads 3"),
              std::string::npos);
    // head_dim 4: q_proj must then have 2 x 4 rows, and the checkpoint's 16 are refused by shape
    EXPECT_NE(hf_refusal("hd-4", [](json& c) { c["head_dim"] = 4; }).find("expected [8, 16]"), std::string::npos);
    EXPECT_NE(hf_refusal("sliding", [](json& c) { c["layer_types"] = {"sliding_attention"}; })
                  .find("layer_types entry \"sliding_attention\" is not supported (full_attention)"),
              std::string::npos);
    EXPECT_NE(hf_refusal("qwen3-no-norms", [](json& c) { c["model_type"] = "qwen3"; }).find("'model.layers.0.self_attn.q_norm.weight' not found"),
              std::string::npos);
}

} // namespace
