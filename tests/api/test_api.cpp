// The C++ API exactly as an application uses it: only <winnow/winnow.h>, linked against libwinnow.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include <winnow/winnow.h>

namespace {

const std::string kTiny = WINNOW_FIXTURE_DIR "/tiny-llama.gguf";

// The default model, or a skip (a failure under WINNOW_REQUIRE_MODELS=1, as in CI).
#define REQUIRE_DEFAULT_MODEL()                                                                              \
    do {                                                                                                     \
        if (!std::filesystem::exists(WINNOW_DEFAULT_MODEL)) {                                                \
            const char* req = std::getenv("WINNOW_REQUIRE_MODELS");                                          \
            if (req && std::string(req) == "1") FAIL() << "missing " WINNOW_DEFAULT_MODEL;                   \
            GTEST_SKIP() << WINNOW_DEFAULT_MODEL " not fetched (scripts/fetch-model.sh)";                    \
        }                                                                                                    \
    } while (0)

TEST(Api, LoadInfoAndTokenizer) {
    const winnow::Model m = winnow::Model::load(kTiny);
    const winnow::ModelInfo& i = m.info();
    EXPECT_EQ(i.architecture, "llama");
    EXPECT_GT(i.n_vocab, 0);
    EXPECT_GT(i.n_layer, 0);
    const auto ids = m.tokenize("the other sea", false, false);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(m.detokenize(ids), "the other sea");
    std::string pieces;
    for (int32_t id : ids) pieces += m.token_to_piece(id);
    EXPECT_EQ(pieces, "the other sea");
    EXPECT_THROW(m.token_to_piece(i.n_vocab), winnow::Error);
    EXPECT_THROW(m.detokenize(std::vector<int32_t>{-1}), winnow::Error);
}

TEST(Api, ErrorsAreOneLineExceptions) {
    try {
        winnow::Model::load("/nonexistent/model.gguf");
        FAIL() << "loaded a missing file";
    } catch (const winnow::Error& e) {
        EXPECT_EQ(e.kind(), winnow::ErrorKind::io);
        EXPECT_NE(std::string(e.what()).find("/nonexistent/model.gguf"), std::string::npos);
    }
    const winnow::Model m = winnow::Model::load(kTiny);
    EXPECT_THROW(m.session({.n_ctx = -1}), winnow::Error);
    winnow::ModelParams bad;
    bad.adaptive_impl = "quick";
    EXPECT_THROW(winnow::Model::load(kTiny, bad), winnow::Error);
    bad.adaptive_impl = "fast";
    bad.adaptive_row_clusters = -1; // refused at load, not at the first adaptive generation
    EXPECT_THROW(winnow::Model::load(kTiny, bad), winnow::Error);
    bad.adaptive_row_clusters = 0;
    bad.adaptive_exact_prefix = 1 << 20;
    EXPECT_THROW(winnow::Model::load(kTiny, bad), winnow::Error);
    winnow::Session s = m.session({.n_ctx = 8});
    EXPECT_THROW(s.generate(std::vector<int32_t>(9, 1)), winnow::Error); // the prompt does not fit the context
}

// The model's own chat template (SmolLM2's ChatML, with its default system prompt), one turn or a whole conversation.
TEST(Api, ChatTemplateRendersConversations) {
    EXPECT_THROW(winnow::Model::load(kTiny).apply_chat_template(std::vector<winnow::ChatMessage>{{"user", "a"}}), winnow::Error); // no template
    REQUIRE_DEFAULT_MODEL();
    const winnow::Model m = winnow::Model::load(WINNOW_DEFAULT_MODEL);
    EXPECT_TRUE(m.info().has_chat_template);
    EXPECT_EQ(m.apply_chat_template("Hi"), "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                                           "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    const std::vector<winnow::ChatMessage> conversation = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "Bye"}};
    const std::string history = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n"
                                "<|im_start|>user\nBye<|im_end|>\n";
    EXPECT_EQ(m.apply_chat_template(conversation, false), history);
    EXPECT_EQ(m.apply_chat_template(conversation), history + "<|im_start|>assistant\n");
    EXPECT_EQ(m.apply_chat_template("Hi", "Be brief."), "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

// generate's greedy ids equal a hand-written loop over the low-level eval (argmax of the returned logits).
TEST(Api, GreedyGenerateEqualsEvalLoop) {
    REQUIRE_DEFAULT_MODEL();
    const winnow::Model m = winnow::Model::load(WINNOW_DEFAULT_MODEL);
    winnow::Session s = m.session({.n_ctx = 256});
    winnow::GenerateOptions opt;
    opt.max_tokens = 16;
    opt.ignore_eos = true;
    const winnow::GenerateResult r = s.generate("The capital of France is", opt);
    ASSERT_EQ(r.output_ids.size(), 16u);
    EXPECT_EQ(r.stop_reason, "max_tokens");

    s.reset();
    std::vector<int32_t> ids = m.tokenize("The capital of France is");
    std::vector<int32_t> manual;
    std::vector<float> logits = s.eval(ids);
    for (int i = 0; i < 16; ++i) {
        ASSERT_EQ(logits.size(), static_cast<size_t>(m.info().n_vocab));
        const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        manual.push_back(next);
        logits = s.eval(std::vector<int32_t>{next});
    }
    EXPECT_EQ(manual, r.output_ids);
    EXPECT_EQ(s.n_past(), static_cast<int>(ids.size()) + 16);
    EXPECT_EQ(s.hidden().size(), static_cast<size_t>(m.info().n_embd));
}

// The threading contract: one Model shared by sessions on several threads gives each the serial result.
TEST(Api, SessionsOnManyThreadsShareOneModel) {
    REQUIRE_DEFAULT_MODEL();
    winnow::ModelParams mp;
    mp.threads = 1;
    const winnow::Model m = winnow::Model::load(WINNOW_DEFAULT_MODEL, mp);
    const std::vector<std::string> prompts{"The capital of France is", "Once upon a time", "def fibonacci(n):", "Water boils at"};
    winnow::GenerateOptions opt;
    opt.max_tokens = 12;
    opt.ignore_eos = true;
    std::vector<std::vector<int32_t>> serial, parallel(prompts.size());
    for (const auto& p : prompts) serial.push_back(m.session({.n_ctx = 128}).generate(p, opt).output_ids);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < prompts.size(); ++i)
        threads.emplace_back([&, i] {
            winnow::Session s = m.session({.n_ctx = 128});
            parallel[i] = s.generate(prompts[i], opt).output_ids;
        });
    for (auto& t : threads) t.join();
    for (size_t i = 0; i < prompts.size(); ++i) {
        EXPECT_EQ(parallel[i].size(), 12u);
        EXPECT_EQ(parallel[i], serial[i]) << prompts[i];
    }
}

TEST(Api, AdaptiveHeadIsAnOption) {
    const winnow::Model m = winnow::Model::load(kTiny);
    winnow::Session s = m.session({.n_ctx = 64});
    winnow::GenerateOptions opt;
    opt.max_tokens = 8;
    opt.ignore_eos = true;
    opt.head = winnow::HeadMode::adaptive;
    const winnow::GenerateResult r = s.generate(std::vector<int32_t>{1, 2, 3}, opt);
    EXPECT_EQ(r.output_ids.size(), 8u);
    EXPECT_EQ(r.head_adaptive_steps, 8); // one head step per generated token: after the prompt, then after each of the first 7
    EXPECT_GT(r.head_samples, 0);
    // The exact prefix and the row clusters reach the session's head: with a prefix of every column each step's warm-up
    // reads all d columns of the n arms and charges the 4 centroid logits d each, and nothing more is sampled.
    winnow::ModelParams cut;
    cut.adaptive_exact_prefix = m.info().n_embd;
    cut.adaptive_row_clusters = 4;
    const winnow::Model mc = winnow::Model::load(kTiny, cut);
    winnow::Session sc = mc.session({.n_ctx = 64});
    const winnow::GenerateResult rc = sc.generate(std::vector<int32_t>{1, 2, 3}, opt);
    EXPECT_EQ(rc.head_samples, int64_t{8} * (m.info().n_vocab + 4) * m.info().n_embd);
}

// A stored head basis (ModelParams::adaptive_basis, here fit by the winnow CLI on the tiny model) is loaded and checked
// at Model::load, and the session's head looks its factors up under "fast+pca" in that basis: a calibration file whose
// only entry is for this basis (f_b = 0.05, far below the theory constant 1) cuts the samples only when the basis is in
// use, and a model with other content refuses the basis.
TEST(Api, AdaptiveHeadBasisIsAnOption) {
    const std::string dir = testing::TempDir(), basis = dir + "/tiny.head-basis.gguf", fit = dir + "/tiny-fit.head.json";
    const std::string cmd = std::string(WINNOW_CLI) + " calibrate-head -m " + kTiny + " --window 8 --queries 20 --deltas 0.01 --threads 1 --basis-windows 60" +
                            " --head-basis " + basis + " --fit-head-basis --out " + fit + " > " + dir + "/fit.log 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    // the checksum and the model hash the CLI wrote, in a calibration file of our own
    std::ifstream in(fit);
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    auto field = [&](const std::string& key) {
        const size_t at = text.find("\"" + key + "\": \"");
        if (at == std::string::npos) return std::string();
        const size_t begin = at + key.size() + 5;
        return text.substr(begin, text.find('"', begin) - begin);
    };
    ASSERT_FALSE(field("basis").empty()) << text;
    const std::string cal = dir + "/tiny-basis-only.head.json";
    std::ofstream(cal) << "{\"model_hash\": \"" << field("model_hash") << "\", \"epsilon\": 0.3, \"factors\": [{\"algorithm\": \"fast+pca\", \"delta\": 0.01, "
                       << "\"fudge_best\": 0.05, \"fudge_norm\": 1.0, \"basis\": \"" << field("basis") << "\"}]}\n";

    winnow::GenerateOptions opt;
    opt.max_tokens = 8;
    opt.ignore_eos = true;
    opt.head = winnow::HeadMode::adaptive;
    std::string note; // GenerateResult::head_factors of the last run
    auto samples = [&](const std::string& basis_path, const std::string& calibration) {
        winnow::ModelParams p;
        p.adaptive_basis = basis_path;
        p.head_calibration = calibration;
        p.threads = 1;
        const winnow::Model m = winnow::Model::load(kTiny, p);
        winnow::Session s = m.session({.n_ctx = 64});
        const winnow::GenerateResult r = s.generate(std::vector<int32_t>{1, 2, 3}, opt);
        EXPECT_EQ(r.head_adaptive_steps, 8);
        note = r.head_factors;
        return r.head_samples;
    };
    const int64_t plain = samples("", "");
    EXPECT_EQ(note, "theory constants (uncalibrated)");
    // no entry for the unrotated head: theory constants, and the result says so
    EXPECT_EQ(samples("", cal), plain);
    EXPECT_EQ(note, "theory constants (" + cal + " has no entry for fast at this delta)");
    // the basis's entry is found and applied
    const int64_t rotated = samples(basis, "");
    const int64_t calibrated = samples(basis, cal);
    EXPECT_EQ(note, "calibrated (" + cal + ")");
    EXPECT_LT(calibrated, rotated);
    // factors the caller sets win, and are named
    opt.adaptive.fudge_best = 0.5;
    samples(basis, cal);
    EXPECT_EQ(note, "the caller's (GenerateOptions::adaptive)");
    opt.adaptive.fudge_best = 1.0;
    winnow::ModelParams foreign;
    foreign.adaptive_basis = basis;
    try {
        winnow::Model::load(WINNOW_FIXTURE_DIR "/tiny-llama-f16.gguf", foreign);
        ADD_FAILURE() << "another model accepted the basis";
    } catch (const winnow::Error& e) {
        EXPECT_NE(std::string(e.what()).find("fit on another model"), std::string::npos) << e.what();
    }
}

// Sparse attention is a session option: with a pattern that keeps every block it computes exactly what dense does;
// a pattern made for another model is refused.
TEST(Api, SparseAttentionIsAnOption) {
    const winnow::Model m = winnow::Model::load(kTiny);
    const int n_layer = m.info().n_layer;
    std::string json = "{\"format\": \"winnow-sparse-pattern\", \"version\": 1, \"model\": {\"name\": \"t\", \"n_layer\": " + std::to_string(n_layer) +
                       ", \"n_embd\": " + std::to_string(m.info().n_embd) + ", \"n_head\": " + std::to_string(m.info().n_head) + ", \"n_vocab\": " +
                       std::to_string(m.info().n_vocab) + "}, \"method\": \"c\", \"block\": 8, \"calib_ctx\": 32, \"layers\": [";
    for (int l = 0; l < n_layer; ++l) json += std::string(l ? "," : "") + "{\"keep\": [\"1000\", \"1100\", \"1110\", \"1111\"]}";
    json += "]}";
    const std::string path = testing::TempDir() + "/all-kept.json";
    { std::ofstream(path) << json; }
    winnow::GenerateOptions opt;
    opt.max_tokens = 10;
    opt.ignore_eos = true;
    const std::vector<int32_t> prompt{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const auto dense = m.session({.n_ctx = 32}).generate(prompt, opt);
    const auto sparse = m.session({.n_ctx = 32, .sparse_pattern = path}).generate(prompt, opt);
    EXPECT_EQ(sparse.output_ids, dense.output_ids);
    {
        // only the sink and the diagonal kept, everywhere; query-aware selection of every dropped block restores dense
        std::string local = json;
        for (size_t at = 0; (at = local.find("\"1110\"", at)) != std::string::npos;) local.replace(at, 6, "\"1010\"");
        for (size_t at = 0; (at = local.find("\"1111\"", at)) != std::string::npos;) local.replace(at, 6, "\"1001\"");
        const std::string local_path = testing::TempDir() + "/local.json";
        { std::ofstream(local_path) << local; }
        const auto all = m.session({.n_ctx = 32, .sparse_pattern = local_path, .sparse_dense_below = 0, .sparse_select_blocks = 4}).generate(prompt, opt);
        EXPECT_EQ(all.output_ids, dense.output_ids);
        EXPECT_THROW(m.session({.n_ctx = 32, .sparse_pattern = local_path, .sparse_select_blocks = 4, .sparse_select_block_size = 3}), winnow::Error)
            << "3-token units do not divide 8-token blocks";
    }
    std::string other = json;
    const std::string embd = "\"n_embd\": " + std::to_string(m.info().n_embd);
    other.replace(other.find(embd), embd.size(), "\"n_embd\": " + std::to_string(m.info().n_embd + 1)); // another model's width
    { std::ofstream(path) << other; }
    EXPECT_THROW(m.session({.n_ctx = 32, .sparse_pattern = path}), winnow::Error);
}

TEST(Api, StreamingCallbackCanStop) {
    const winnow::Model m = winnow::Model::load(kTiny);
    winnow::Session s = m.session({.n_ctx = 64});
    winnow::GenerateOptions opt;
    opt.max_tokens = 20;
    opt.ignore_eos = true;
    int pieces = 0;
    const winnow::GenerateResult r = s.generate(std::vector<int32_t>{1, 2, 3}, opt, [&](std::string_view) { return ++pieces < 3; });
    EXPECT_EQ(r.stop_reason, "callback");
    EXPECT_EQ(pieces, 3);
}

// winnow::quantize writes what `winnow quantize` writes (the same bytes), and the file loads and generates.
TEST(Api, QuantizeWritesWhatTheCliWrites) {
    const std::string in = WINNOW_FIXTURE_DIR "/tiny-llama-k.gguf";
    const auto dir = std::filesystem::temp_directory_path() / ("winnow-api-quantize-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
    std::filesystem::create_directories(dir);
    const std::string api_out = (dir / "api.gguf").string(), cli_out = (dir / "cli.gguf").string();
    winnow::QuantizeParams p;
    p.preset = "q5_k_m";
    p.output_tensor_type = "q8_0";
    const winnow::QuantizeResult r = winnow::quantize(in, api_out, p);
    EXPECT_EQ(r.tensors, 21);
    EXPECT_EQ(r.quantized, 16);
    EXPECT_LT(r.bytes_out, r.bytes_in / 4);
    const std::string cmd = std::string(WINNOW_CLI) + " quantize " + in + " " + cli_out + " Q5_K_M --output-tensor-type Q8_0 --quiet > /dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    auto bytes = [](const std::string& path) {
        std::ifstream f(path, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(f), {});
    };
    EXPECT_EQ(bytes(api_out), bytes(cli_out));
    const winnow::Model m = winnow::Model::load(api_out);
    winnow::GenerateOptions o;
    o.max_tokens = 4;
    o.ignore_eos = true;
    EXPECT_EQ(m.session().generate(std::string("hello"), o).output_ids.size(), 4u);
    p.preset = "iq2_xxs"; // a preset winnow does not write
    EXPECT_THROW(winnow::quantize(in, (dir / "never.gguf").string(), p), winnow::Error);
    EXPECT_FALSE(std::filesystem::exists(dir / "never.gguf"));
    std::filesystem::remove_all(dir);
}

} // namespace
