// winnow quantize's file conversion (model/quantize_model.h) and llama.cpp's per-tensor rules
// (model/quant_presets.h). The rules' parity with llama.cpp itself, tensor by tensor on real files, is
// tests/cli/quantize_vs_llama_cpp.py; here: what a regression in the converter would break (metadata, order, copied
// bytes, atomic output on failure) and the rules' layer pattern on a 30-layer model (SmolLM2's depth).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "io/quant.h"
#include "model/quantize_model.h"
#include "test_scratch_dir.h"
#include "winnow/error.h"

namespace {

namespace fs = std::filesystem;
using namespace winnow;

class QuantizeModel : public winnow::test::ScratchDirTest {
protected:
    std::string path(const std::string& name) const { return (dir_ / name).string(); }

    // A two-layer llama-shaped file: 256-wide matrices (K-quants fit), a 1-D norm, an untied output.
    std::string write_model(float poison = 0.0f, const std::vector<std::pair<std::string, io::GgufValue>>& extra = {}) {
        std::mt19937 rng(3);
        std::normal_distribution<float> nd(0.0f, 0.05f);
        const char* names[] = {"token_embd.weight", "blk.0.attn_v.weight", "blk.0.ffn_down.weight", "blk.1.attn_v.weight", "blk.1.ffn_down.weight",
                               "output.weight"};
        data_.clear();
        for (size_t i = 0; i < std::size(names); ++i) {
            data_.emplace_back(256 * 8);
            for (auto& v : data_.back()) v = nd(rng);
        }
        data_[2][77] = poison == 0.0f ? data_[2][77] : poison;
        norm_.assign(256, 1.0f);
        io::GgufWriter w;
        w.set_string("general.architecture", "llama");
        w.set_u32("llama.block_count", 2);
        w.set_string("general.name", "quantize-test");
        for (const auto& [key, value] : extra) w.set(key, value);
        for (size_t i = 0; i < std::size(names); ++i) {
            w.add_tensor(names[i], data_[i].data(), {256, 8});
            if (i == 2) w.add_tensor("blk.0.ffn_norm.weight", norm_.data(), {256});
        }
        const std::string p = path("in.gguf");
        w.write(p);
        return p;
    }

    std::vector<std::vector<float>> data_;
    std::vector<float> norm_;
};

TEST_F(QuantizeModel, Q4KMKeepsMetadataOrderAndVectorsAndFollowsTheMix) {
    const std::string in = write_model(), out = path("out.gguf");
    QuantizeOptions o;
    o.preset = find_quant_preset("q4_k_m");
    ASSERT_NE(o.preset, nullptr);
    const QuantizeSummary s = quantize_model(in, out, o);
    EXPECT_EQ(s.tensors, 7);
    EXPECT_EQ(s.quantized, 6);
    const auto f = io::GgufFile::open(out);
    EXPECT_EQ(f->get_uint("general.file_type"), 15u);
    EXPECT_EQ(f->get_uint("general.quantization_version"), 2u);
    EXPECT_EQ(f->get_string("general.name"), "quantize-test");
    const std::vector<std::pair<std::string, GgmlType>> expected = {
        {"token_embd.weight", GgmlType::Q4_K},     {"blk.0.attn_v.weight", GgmlType::Q4_K}, {"blk.0.ffn_down.weight", GgmlType::Q4_K},
        {"blk.0.ffn_norm.weight", GgmlType::F32},  {"blk.1.attn_v.weight", GgmlType::Q6_K}, {"blk.1.ffn_down.weight", GgmlType::Q6_K},
        {"output.weight", GgmlType::Q6_K}};
    ASSERT_EQ(f->tensors().size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
        EXPECT_EQ(f->tensors()[i].name, expected[i].first);
        EXPECT_EQ(f->tensors()[i].type, expected[i].second) << expected[i].first << ": " << ggml_type_name(f->tensors()[i].type);
    }
    const auto* norm = f->find_tensor("blk.0.ffn_norm.weight");
    ASSERT_NE(norm, nullptr);
    EXPECT_EQ(std::memcmp(norm->data, norm_.data(), norm_.size() * 4), 0) << "a vector is copied as stored";
    // the encoded rows decode close to the input (Q4_K: within a few percent of the weights' scale)
    const auto* t = f->find_tensor("token_embd.weight");
    std::vector<float> back(256 * 8);
    dequantize_row(GgmlType::Q4_K, t->data, back.data(), back.size());
    double err = 0, ref = 0;
    for (size_t i = 0; i < back.size(); ++i) {
        err += (back[i] - data_[0][i]) * (back[i] - data_[0][i]);
        ref += data_[0][i] * data_[0][i];
    }
    EXPECT_LT(std::sqrt(err / ref), 0.12);
    EXPECT_FALSE(fs::exists(out + ".tmp"));
}

TEST_F(QuantizeModel, PureGivesEveryMatrixTheBaseType) {
    const std::string in = write_model(), out = path("out.gguf");
    QuantizeOptions o;
    o.preset = find_quant_preset("Q4_K_M");
    o.pure = true;
    quantize_model(in, out, o);
    const auto f = io::GgufFile::open(out); // held: a range-for over a temporary's member outlives the temporary
    for (const auto& t : f->tensors()) EXPECT_EQ(t.type, t.n_dims == 1 ? GgmlType::F32 : GgmlType::Q4_K) << t.name;
}

TEST_F(QuantizeModel, OutputAndTokenEmbeddingTypesAsNamed) {
    const std::string in = write_model(), out = path("out.gguf");
    QuantizeOptions o;
    o.preset = find_quant_preset("q4_k_m");
    o.output_type = GgmlType::Q8_0;
    o.token_embedding_type = GgmlType::Q6_K;
    quantize_model(in, out, o);
    const auto f = io::GgufFile::open(out);
    EXPECT_EQ(f->find_tensor("output.weight")->type, GgmlType::Q8_0);
    EXPECT_EQ(f->find_tensor("token_embd.weight")->type, GgmlType::Q6_K);
    EXPECT_EQ(f->find_tensor("blk.1.attn_v.weight")->type, GgmlType::Q6_K); // the rest as the preset has it
    o.output_type = GgmlType::IQ3_S;
    EXPECT_THROW(quantize_model(in, path("never.gguf"), o), Error); // a type winnow does not write
    EXPECT_FALSE(fs::exists(path("never.gguf")));
}

// Q2_K's attn_v depends on the query heads per KV head (Q4_K from 4): read from integers, or from layer 0 where a file
// gives the counts per layer (an array), and 1 where the file has none.
TEST_F(QuantizeModel, HeadCountsAsIntegersOrPerLayerArrays) {
    auto u32 = [](uint64_t v) {
        io::GgufValue x;
        x.type = io::GgufValueType::u32, x.u = v;
        return x;
    };
    auto per_layer = [&](uint64_t v) {
        io::GgufValue x;
        x.type = io::GgufValueType::array, x.elem_type = io::GgufValueType::u32, x.elems = {u32(v), u32(v)};
        return x;
    };
    QuantizeOptions o;
    o.preset = find_quant_preset("q2_k");
    const std::vector<std::pair<std::vector<std::pair<std::string, io::GgufValue>>, GgmlType>> cases = {
        {{}, GgmlType::Q3_K},
        {{{"llama.attention.head_count", u32(16)}, {"llama.attention.head_count_kv", u32(4)}}, GgmlType::Q4_K},
        {{{"llama.attention.head_count", u32(6)}, {"llama.attention.head_count_kv", u32(2)}}, GgmlType::Q3_K},
        {{{"llama.attention.head_count", per_layer(8)}, {"llama.attention.head_count_kv", per_layer(2)}}, GgmlType::Q4_K},
    };
    for (size_t i = 0; i < cases.size(); ++i) {
        const std::string in = write_model(0.0f, cases[i].first), out = path("heads-" + std::to_string(i) + ".gguf");
        quantize_model(in, out, o);
        EXPECT_EQ(io::GgufFile::open(out)->find_tensor("blk.1.attn_v.weight")->type, cases[i].second) << "case " << i;
    }
}

TEST_F(QuantizeModel, ANonFiniteWeightFailsAndLeavesTheOutputAsItWas) {
    const std::string in = write_model(std::nanf("")), out = path("out.gguf");
    { std::ofstream(out) << "the previous file"; }
    QuantizeOptions o;
    o.preset = find_quant_preset("q8_0");
    try {
        quantize_model(in, out, o);
        ADD_FAILURE() << "a NaN weight was quantized";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("tensor 'blk.0.ffn_down.weight' holds a value that is not finite (row 0)"), std::string::npos) << e.what();
    }
    std::ifstream kept(out);
    std::string content;
    std::getline(kept, content);
    EXPECT_EQ(content, "the previous file");
    EXPECT_FALSE(fs::exists(out + ".tmp"));
}

TEST_F(QuantizeModel, AQuantizedTensorNeedsAllowRequantize) {
    const std::string in = write_model(), mid = path("mid.gguf"), out = path("out.gguf");
    QuantizeOptions o;
    o.preset = find_quant_preset("q4_0");
    quantize_model(in, mid, o);
    o.preset = find_quant_preset("q8_0");
    try {
        quantize_model(mid, out, o);
        ADD_FAILURE() << "requantized without allow_requantize";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("tensor 'token_embd.weight' is already Q4_0; quantizing it to Q8_0"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(out));
    o.allow_requantize = true;
    const QuantizeSummary s = quantize_model(mid, out, o);
    EXPECT_EQ(s.types_out.at("Q8_0"), 6);
}

TEST(QuantPresets, NamesAnyCaseAndRefusesOthers) {
    ASSERT_NE(find_quant_preset("q5_k_m"), nullptr);
    EXPECT_STREQ(find_quant_preset("q5_k_m")->name, "Q5_K_M");
    ASSERT_NE(find_quant_preset("q3_k_m"), nullptr);
    EXPECT_EQ(find_quant_preset("q3_k_m")->base, GgmlType::Q3_K);
    ASSERT_NE(find_quant_preset("iq4_xs"), nullptr);
    EXPECT_EQ(find_quant_preset("iq4_xs")->file_type, 30u); // llama_ftype LLAMA_FTYPE_MOSTLY_IQ4_XS
    EXPECT_EQ(find_quant_preset("IQ3_S"), nullptr);
    EXPECT_EQ(find_quant_preset(""), nullptr);
}

// llama.cpp's layers with more bits in the _M presets for 30 layers: the first and last eighth (0-2, 26-29) and
// every third layer from 5 (5, 8, ..., 23).
TEST(QuantPresets, MediumMixesGiveQ6KToLlamaCppsLayers) {
    const QuantPreset& p = *find_quant_preset("Q4_K_M");
    PresetModelShape m;
    m.n_layer = 30;
    m.n_attention_v = 30;
    const std::vector<int> more = {0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29};
    for (int layer = 0; layer < 30; ++layer) {
        const bool q6 = std::find(more.begin(), more.end(), layer) != more.end();
        for (const char* part : {"ffn_down.weight", "attn_v.weight"}) {
            PresetTensor t{"blk." + std::to_string(layer) + "." + part, 2, {1536, 576, 1, 1}};
            EXPECT_EQ(preset_tensor_type(p, t, m, false), q6 ? GgmlType::Q6_K : GgmlType::Q4_K) << t.name;
        }
        PresetTensor q{"blk." + std::to_string(layer) + ".attn_q.weight", 2, {1536, 576, 1, 1}};
        EXPECT_EQ(preset_tensor_type(p, q, m, false), GgmlType::Q4_K) << q.name;
    }
}

// The 2- and 3-bit presets on a 32-layer llama with 4 query heads per KV head (Llama-3.2-1B's shape, 2048-wide rows),
// as llama.cpp's llama_tensor_get_type gives them: Q3_K_M's attn_v Q5_K in the first two layers, Q4_K after;
// its ffn_down Q5_K below n_layer / 16 (layers 0, 1), Q4_K after; Q2_K's attn_v Q4_K from 4 query heads per KV head
// (Q3_K below); Q3_K_L's Q5_K; a 70B llama's attn_v raised to Q5_K; IQ4_NL where 256-weight blocks do not fit; the
// IQ4_NL and IQ4_XS presets' Q5_K for the first eighth of ffn_down and for attn_v from 4 query heads per KV head.
TEST(QuantPresets, TwoAndThreeBitMixesFollowLlamaCppsRules) {
    PresetModelShape m;
    m.n_layer = 32, m.n_attention_v = 32, m.n_gqa = 4;
    auto type_of = [&](const char* preset, int layer, const char* part) {
        return preset_tensor_type(*find_quant_preset(preset), {"blk." + std::to_string(layer) + "." + part, 2, {2048, 2048, 1, 1}}, m, false);
    };
    for (int layer = 0; layer < 32; ++layer) {
        EXPECT_EQ(type_of("Q3_K_M", layer, "attn_v.weight"), layer < 2 ? GgmlType::Q5_K : GgmlType::Q4_K) << layer;
        EXPECT_EQ(type_of("Q3_K_M", layer, "ffn_down.weight"), layer < 2 ? GgmlType::Q5_K : GgmlType::Q4_K) << layer;
        EXPECT_EQ(type_of("Q3_K_M", layer, "attn_output.weight"), GgmlType::Q4_K) << layer;
        EXPECT_EQ(type_of("Q3_K_M", layer, "ffn_up.weight"), GgmlType::Q3_K) << layer;
        EXPECT_EQ(type_of("Q3_K_S", layer, "attn_v.weight"), GgmlType::Q3_K) << layer;
        EXPECT_EQ(type_of("Q3_K_L", layer, "ffn_down.weight"), GgmlType::Q5_K) << layer;
        EXPECT_EQ(type_of("Q2_K", layer, "attn_v.weight"), GgmlType::Q4_K) << layer;
        EXPECT_EQ(type_of("Q2_K", layer, "ffn_down.weight"), GgmlType::Q3_K) << layer;
        EXPECT_EQ(type_of("Q2_K", layer, "attn_q.weight"), GgmlType::Q2_K) << layer;
    }
    m.n_gqa = 3; // SmolLM2's 9 query heads on 3 KV heads
    EXPECT_EQ(type_of("Q2_K", 5, "attn_v.weight"), GgmlType::Q3_K);
    EXPECT_EQ(preset_tensor_type(*find_quant_preset("Q2_K"), {"output.weight", 2, {2048, 128256, 1, 1}}, m, false), GgmlType::Q6_K);
    m.n_layer = m.n_attention_v = 80, m.n_gqa = 8, m.llama_70b = true;
    EXPECT_EQ(type_of("Q3_K_M", 40, "attn_v.weight"), GgmlType::Q5_K);
    EXPECT_EQ(type_of("Q4_K_M", 40, "attn_v.weight"), GgmlType::Q5_K); // not one of its Q6_K layers ((40 - 10) % 3 = 0)
    EXPECT_EQ(type_of("Q4_K_M", 42, "attn_v.weight"), GgmlType::Q6_K); // one of them ((42 - 10) % 3 = 2)
    // 576-wide rows: IQ4_NL
    EXPECT_EQ(preset_tensor_type(*find_quant_preset("Q3_K_S"), {"blk.3.attn_q.weight", 2, {576, 576, 1, 1}}, m, false), GgmlType::IQ4_NL);
    // the IQ4_NL preset: Q5_K for the first eighth of ffn_down (80 layers: 0-9) and, from 4 query heads per KV head, attn_v
    EXPECT_EQ(type_of("IQ4_NL", 9, "ffn_down.weight"), GgmlType::Q5_K);
    EXPECT_EQ(type_of("IQ4_NL", 10, "ffn_down.weight"), GgmlType::IQ4_NL);
    EXPECT_EQ(type_of("IQ4_NL", 10, "attn_v.weight"), GgmlType::Q5_K);
    // IQ4_XS: the same rules; its 576-wide rows fall back to IQ4_NL, as Q2_K's and Q3_K's
    EXPECT_EQ(type_of("IQ4_XS", 9, "ffn_down.weight"), GgmlType::Q5_K);
    EXPECT_EQ(type_of("IQ4_XS", 10, "ffn_down.weight"), GgmlType::IQ4_XS);
    EXPECT_EQ(type_of("IQ4_XS", 10, "attn_v.weight"), GgmlType::Q5_K);
    EXPECT_EQ(type_of("IQ4_XS", 10, "attn_q.weight"), GgmlType::IQ4_XS);
    EXPECT_EQ(preset_tensor_type(*find_quant_preset("IQ4_XS"), {"blk.3.attn_q.weight", 2, {576, 576, 1, 1}}, m, false), GgmlType::IQ4_NL);
    EXPECT_EQ(preset_tensor_type(*find_quant_preset("IQ4_XS"), {"blk.3.attn_q.weight", 2, {100, 7, 1, 1}}, m, false), GgmlType::F16);
    EXPECT_EQ(preset_tensor_type(*find_quant_preset("IQ4_XS"), {"output.weight", 2, {2048, 128256, 1, 1}}, m, false), GgmlType::Q6_K);
    m.n_gqa = 3; // below 4 query heads per KV head attn_v keeps the base type
    EXPECT_EQ(type_of("IQ4_XS", 10, "attn_v.weight"), GgmlType::IQ4_XS);
    EXPECT_EQ(type_of("IQ4_NL", 10, "attn_v.weight"), GgmlType::IQ4_NL);
}

TEST(QuantPresets, FallbacksAndTensorsKeptAsStored) {
    const QuantPreset& q4km = *find_quant_preset("Q4_K_M");
    PresetModelShape m;
    m.n_layer = 8;
    m.n_attention_v = 8;
    m.has_output = false;
    // 576-wide rows: Q4_K falls back to Q5_0, Q6_K (the tied output) to Q8_0
    EXPECT_EQ(preset_tensor_type(q4km, {"blk.3.attn_q.weight", 2, {576, 576, 1, 1}}, m, false), GgmlType::Q5_0);
    EXPECT_EQ(preset_tensor_type(q4km, {"token_embd.weight", 2, {576, 49152, 1, 1}}, m, false), GgmlType::Q8_0);
    EXPECT_EQ(preset_tensor_type(*find_quant_preset("Q5_K_S"), {"blk.3.attn_q.weight", 2, {576, 576, 1, 1}}, m, false), GgmlType::Q5_1);
    // rows no block fits: F16
    EXPECT_EQ(preset_tensor_type(q4km, {"blk.3.attn_q.weight", 2, {100, 7, 1, 1}}, m, false), GgmlType::F16);
    // kept as stored: vectors, norms, position embeddings, a [n, 1] matrix (one dimension of more than one element)
    EXPECT_EQ(preset_tensor_type(q4km, {"blk.0.attn_norm.weight", 1, {576, 1, 1, 1}}, m, false), std::nullopt);
    EXPECT_EQ(preset_tensor_type(q4km, {"blk.0.attn_qkv.bias", 1, {576, 1, 1, 1}}, m, false), std::nullopt);
    EXPECT_EQ(preset_tensor_type(q4km, {"position_embd.weight", 2, {768, 1024, 1, 1}}, m, false), std::nullopt);
    EXPECT_EQ(preset_tensor_type(q4km, {"blk.0.ffn_down.weight", 2, {256, 1, 1, 1}}, m, false), std::nullopt);
    // GPT-2's fused attention: one step up in the _M presets
    EXPECT_EQ(preset_tensor_type(q4km, {"blk.0.attn_qkv.weight", 2, {768, 2304, 1, 1}}, m, false), GgmlType::Q5_K);
}

} // namespace
