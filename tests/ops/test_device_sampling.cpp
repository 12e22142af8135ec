// Generation with the sampler chain on the backend (Backend::sample, Generator's default where the backend has the
// op) against generation with every logit brought to the host's Sampler: the same ids for the same seed, greedy and
// sampled, both orders, with and without the penalty, on the tiny models and the CPU backend (whose sample op is the
// host's chain; tests/gpu holds the CUDA op to it).
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "decode/generator.h"
#include "model/model.h"
#include "sample_cases.h"
#include "tokenizer/model_tokenizer.h"
#include "fixture_dir.h"

namespace {

using namespace winnow;


std::vector<GenerateOptions> option_sets() {
    std::vector<GenerateOptions> out;
    auto add = [&](auto... params) {
        GenerateOptions o;
        o.max_tokens = 24;
        o.ignore_eos = true;
        o.sampling = test::sampling::chain_of(params...);
        out.push_back(o);
    };
    add(0.0f, 0, 1.0f, 0.0f, 1.3f, -1, SamplerOrder::hf, 0);         // greedy with a penalty: on the backend
    add(0.0f, 0, 1.0f, 0.0f, 1.0f, -1, SamplerOrder::hf, 0);         // plain greedy: the op's argmax vs the head's top-1
    for (uint64_t seed : {1u, 2u, 3u}) {
        add(1.0f, 0, 1.0f, 0.0f, 1.0f, -1, SamplerOrder::hf, seed);  // the whole vocabulary
        add(0.8f, 40, 0.95f, 0.05f, 1.1f, 64, SamplerOrder::llama_cpp, seed);
        add(1.2f, 0, 0.9f, 0.0f, 1.3f, -1, SamplerOrder::hf, seed);
        add(0.7f, 5, 1.0f, 0.0f, 1.0f, -1, SamplerOrder::llama_cpp, seed);
    }
    return out;
}

void expect_same_generation(const std::string& model_file) {
    auto m = Model::load(kDir + "/" + model_file);
    auto tok = load_model_tokenizer(*m);
    auto be = make_cpu_backend(2);
    ASSERT_TRUE(be->supports(Op::sample, GgmlType::F32));
    Generator gen(*m, *tok, *be, 64);
    const std::vector<int32_t> prompt{1, 5, 9, 5, 12};
    for (const GenerateOptions& o : option_sets()) {
        gen.set_device_sampling(false);
        const GenerateResult host = gen.generate(prompt, o);
        EXPECT_EQ(gen.device_sampled_steps(), 0);
        gen.set_device_sampling(true);
        const GenerateResult dev = gen.generate(prompt, o);
        EXPECT_EQ(gen.device_sampled_steps(), static_cast<int>(dev.output_ids.size()))
            << "every step is sampled on the backend, plain greedy too (the op's argmax against the head's top-1 on the host)";
        EXPECT_EQ(dev.output_ids, host.output_ids) << model_file << " temp " << o.sampling.temperature << " seed " << o.sampling.seed;
        EXPECT_EQ(dev.output_ids.size(), 24u);
    }
}

TEST(DeviceSampling, GenerationIsUnchangedTinyLlama) { expect_same_generation("tiny-llama.gguf"); }
TEST(DeviceSampling, GenerationIsUnchangedTinyGpt2) { expect_same_generation("tiny-gpt2.gguf"); }

// Sampled runs differ between seeds (the comparison above is not between two constant outputs).
TEST(DeviceSampling, SeedsMatter) {
    auto m = Model::load(kDir + "/tiny-llama.gguf");
    auto tok = load_model_tokenizer(*m);
    auto be = make_cpu_backend(2);
    Generator gen(*m, *tok, *be, 64);
    GenerateOptions o;
    o.max_tokens = 24;
    o.ignore_eos = true;
    o.sampling.temperature = 1.0f;
    o.sampling.seed = 1;
    const auto a = gen.generate({1, 5, 9}, o).output_ids;
    o.sampling.seed = 2;
    const auto b = gen.generate({1, 5, 9}, o).output_ids;
    EXPECT_NE(a, b);
    EXPECT_GT(gen.device_sampled_steps(), 0);
}

} // namespace
