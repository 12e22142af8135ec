// The fine-tuning loop end to end on the tiny llama model: a run killed after its last checkpoint and resumed
// reproduces the uninterrupted run's losses exactly; the checkpoint is a model the decoder loads and computes the
// trainer's logits with; changed settings, a missing checkpoint and invalid UTF-8 data are clear errors.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "decode/forward.h"
#include "model/model.h"
#include "model/require_input.h"
#include "train/finetune.h"
#include "train/transformer.h"
#include "winnow/error.h"

namespace {

namespace fs = std::filesystem;
using namespace winnow;

struct FinetuneRun : ::testing::Test {
    fs::path dir;
    std::string data;
    void SetUp() override {
        WINNOW_REQUIRE_FILE(WINNOW_FIXTURE_DIR "/tiny-llama.gguf");
        WINNOW_REQUIRE_FILE(WINNOW_FIXTURE_DIR "/tiny-gpt2.gguf");
        dir = fs::temp_directory_path() / ("winnow-finetune-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
                                           ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir);
        fs::create_directories(dir);
        data = (dir / "data.txt").string();
        std::ofstream(data) << std::string(R"(It is a truth universally acknowledged, that a single man in possession of a good fortune,
must be in want of a wife. However little known the feelings or views of such a man may be on his first entering a
neighbourhood, this truth is so well fixed in the minds of the surrounding families, that he is considered the rightful
property of some one or other of their daughters.)");
    }
    void TearDown() override { fs::remove_all(dir); }
    train::FinetuneOptions options(const std::string& out) const {
        train::FinetuneOptions o;
        o.model_path = WINNOW_FIXTURE_DIR "/tiny-llama.gguf";
        o.data_path = data;
        o.out_dir = (dir / out).string();
        o.steps = 12;
        o.seq = 16;
        o.batch = 2;
        o.adam.lr = 3e-3;
        o.adam.warmup_steps = 2;
        o.val_every = 4;
        o.val_windows = 2;
        o.save_every = 4;
        o.val_fraction = 0.2;
        return o;
    }
};

TEST_F(FinetuneRun, KilledAndResumedRunRepeatsTheUninterruptedLosses) {
    const auto full = train::run_finetune(options("full"));
    ASSERT_EQ(full.history.size(), 12u);
    auto o = options("killed");
    o.stop_after = 10; // the last checkpoint is at step 8: steps 9 and 10 are lost
    train::run_finetune(o);
    o.stop_after = -1;
    o.resume = true;
    const auto resumed = train::run_finetune(o);
    EXPECT_EQ(resumed.first_step, 8);
    ASSERT_EQ(resumed.history.size(), 12u);
    for (size_t i = 0; i < 12; ++i) {
        EXPECT_EQ(resumed.history[i].loss, full.history[i].loss) << "step " << i + 1;
        if (!std::isnan(full.history[i].val_loss)) {
            EXPECT_EQ(resumed.history[i].val_loss, full.history[i].val_loss) << "step " << i + 1;
        }
    }
    EXPECT_LT(full.history.back().val_loss, full.history[3].val_loss); // it learns
    EXPECT_TRUE(fs::exists(dir / "full" / "loss.png"));
    // the PNG is a PNG
    std::ifstream png(dir / "full" / "loss.png", std::ios::binary);
    char sig[8];
    png.read(sig, 8);
    EXPECT_EQ(std::string(sig, 8), "\x89PNG\r\n\x1a\n");
}

TEST_F(FinetuneRun, CheckpointLoadsAsAModelAndMatchesTheTrainer) {
    for (const char* base : {"tiny-llama", "tiny-gpt2"}) { // gpt2 writes its fused q|k|v back
        SCOPED_TRACE(base);
        auto o = options(std::string("run-") + base);
        o.model_path = std::string(WINNOW_FIXTURE_DIR "/") + base + ".gguf";
        train::run_finetune(o);
        const std::string ckpt = (dir / (std::string("run-") + base) / "checkpoint.gguf").string();
        auto model = Model::load(ckpt);
        train::Transformer<float> t(train::TrainShape::from(model->config()));
        t.load(*model);
        std::vector<int32_t> tokens = {3, 17, 42, 99, 7, 250};
        const auto ours = t.logits(tokens.data(), static_cast<int>(tokens.size()));
        auto be = make_cpu_backend(1);
        Forward f(*model, *be, 32);
        const auto& want = f.eval(tokens, true);
        for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(ours[i], want[i], 1e-4f);
        // and the weights differ from the starting model's
        auto start = Model::load(o.model_path);
        Forward g(*start, *be, 32);
        const auto& before = g.eval(tokens, true);
        double diff = 0;
        for (size_t i = 0; i < want.size(); ++i) diff += std::fabs(before[i] - want[i]);
        EXPECT_GT(diff / want.size(), 1e-3);
    }
}

TEST_F(FinetuneRun, BadInputsAreClearErrors) {
    auto o = options("resume-nothing");
    o.resume = true;
    EXPECT_THROW(train::run_finetune(o), winnow::Error);
    o = options("ok");
    o.steps = 4;
    train::run_finetune(o);
    o.resume = true;
    o.adam.lr = 1e-3; // other settings than the checkpoint's
    try {
        train::run_finetune(o);
        FAIL() << "resume with other settings must fail";
    } catch (const winnow::Error& e) {
        EXPECT_NE(std::string(e.what()).find("other settings"), std::string::npos) << e.what();
    }
    const std::string bad = (dir / "bad.txt").string();
    std::ofstream(bad) << "valid text, then a stray byte: \xff and more";
    o = options("bad-utf8");
    o.data_path = bad;
    try {
        train::run_finetune(o);
        FAIL() << "invalid UTF-8 must fail";
    } catch (const winnow::Error& e) {
        EXPECT_NE(std::string(e.what()).find("invalid UTF-8 at byte 31"), std::string::npos) << e.what();
    }
    o = options("tiny-data");
    std::ofstream((dir / "short.txt").string()) << "too short";
    o.data_path = (dir / "short.txt").string();
    EXPECT_THROW(train::run_finetune(o), winnow::Error);
}

} // namespace
