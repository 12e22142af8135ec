// AdaptiveHeadOptions' variance cuts (exact prefix, cluster-centred rows) reach the head that generate and the C++ API
// build, calibration files key their factors by them, and values the head cannot take are refused in one line.
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "head/adaptive_head.h"
#include "head/adaptive_softmax.h"
#include "head/column_major_head.h"
#include "head/exact_head.h"
#include "head/fast_adaptive_softmax.h"
#include "model/model.h"
#include "model/require_input.h"
#include "winnow/error.h"

namespace {

using winnow::head::AdaptiveHead;
using winnow::head::AdaptiveHeadOptions;
using winnow::head::HeadImpl;

TEST(AdaptiveHeadOptions, TheAlgorithmKeyNamesTheVarianceCuts) {
    EXPECT_EQ(winnow::head::algorithm_key({}), "fast");
    EXPECT_EQ(winnow::head::algorithm_key({.impl = HeadImpl::faithful}), "faithful");
    EXPECT_EQ(winnow::head::algorithm_key({.exact_prefix = 16}), "fast+prefix16");
    EXPECT_EQ(winnow::head::algorithm_key({.impl = HeadImpl::faithful, .row_clusters = 64}), "faithful+clusters64");
    EXPECT_EQ(winnow::head::algorithm_key({.exact_prefix = 16, .row_clusters = 64}), "fast+prefix16+clusters64");
}

class AdaptiveHeadOptionsOnTinyLlama : public ::testing::Test {
protected:
    void SetUp() override {
        WINNOW_REQUIRE_FILE(WINNOW_FIXTURE_DIR "/tiny-llama.gguf");
        model_ = winnow::LoadedModel::load(WINNOW_FIXTURE_DIR "/tiny-llama.gguf");
        d_ = model_->config().n_embd;
        std::mt19937 rng(7);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        x_.resize(d_);
        for (float& v : x_) v = nd(rng);
    }
    std::unique_ptr<winnow::LoadedModel> model_;
    int d_ = 0;
    std::vector<float> x_;
};

// A prefix of every column makes each arm exact in the warm-up: it then reads all d' columns of every arm, besides the
// 4 centroid logits (charged d' each, to the warm-up), and the answer is the exact one. Without the prefix the warm-up
// stops at its cap (here 16 columns) and later rounds make this small head's arms exact instead.
TEST_F(AdaptiveHeadOptionsOnTinyLlama, TheFastHeadTakesThePrefixAndTheClusters) {
    AdaptiveHead head(*model_, {.impl = HeadImpl::fast, .threads = 1, .exact_prefix = d_, .row_clusters = 4});
    auto& fast = dynamic_cast<winnow::head::FastAdaptiveSoftmax&>(head.algorithm());
    EXPECT_EQ(fast.head().row_clusters().k, 4);
    winnow::head::AdaptiveParams p;
    const auto r = head.select(x_, p);
    const int n = fast.n();
    const auto columns = fast.last_columns_read();
    EXPECT_EQ(*std::min_element(columns.begin(), columns.end()), r.cost.d_prime);
    EXPECT_EQ(r.cost.warmup, static_cast<int64_t>(n + 4) * r.cost.d_prime);
    EXPECT_EQ(r.head.top, winnow::head::exact_softmax(head.dense_matrix(), n, d_, x_).top);
}

TEST_F(AdaptiveHeadOptionsOnTinyLlama, TheFaithfulHeadTakesThem) {
    AdaptiveHead head(*model_, {.impl = HeadImpl::faithful, .exact_prefix = 3, .row_clusters = 4});
    const auto& faithful = dynamic_cast<winnow::head::AdaptiveSoftmax&>(head.algorithm());
    EXPECT_EQ(faithful.options().exact_prefix, 3);
    EXPECT_EQ(faithful.options().row_clusters, 4);
}

// The fast head's columns are immutable and may be shared (the API shares one set per model): heads built on shared
// columns make the same draws as a head that built its own, and read the shared object itself.
TEST_F(AdaptiveHeadOptionsOnTinyLlama, SharedColumnsMakeTheSameDraws) {
    const AdaptiveHeadOptions o{.impl = HeadImpl::fast, .threads = 1, .exact_prefix = 3, .row_clusters = 4};
    const auto columns = winnow::head::fast_head_columns(*model_, o);
    AdaptiveHead own(*model_, o), shared(*model_, o, columns), again(*model_, o, columns);
    EXPECT_EQ(&dynamic_cast<winnow::head::FastAdaptiveSoftmax&>(shared.algorithm()).head(), columns.get());
    EXPECT_EQ(&dynamic_cast<winnow::head::FastAdaptiveSoftmax&>(again.algorithm()).head(), columns.get());
    winnow::head::AdaptiveParams p;
    const auto a = own.select(x_, p), b = shared.select(x_, p), c = again.select(x_, p);
    EXPECT_EQ(a.head.top, b.head.top);
    EXPECT_EQ(a.head.p_top, b.head.p_top);
    EXPECT_EQ(a.cost.samples, b.cost.samples);
    EXPECT_EQ(b.cost.samples, c.cost.samples);
    // columns made for other options, or of another head, are refused
    EXPECT_THROW(AdaptiveHead(*model_, {.impl = HeadImpl::fast, .threads = 1, .exact_prefix = 3}, columns), winnow::Error); // clusters 4 vs none
    std::vector<float> small(8 * 32, 0.5f);
    EXPECT_THROW(AdaptiveHead(*model_, o, std::make_shared<const winnow::head::ColumnMajorHead>(small, 8, 32, false)), winnow::Error);
}

TEST_F(AdaptiveHeadOptionsOnTinyLlama, ValuesTheHeadCannotTakeAreRefused) {
    auto message = [&](const AdaptiveHeadOptions& o) {
        try {
            AdaptiveHead head(*model_, o);
        } catch (const winnow::Error& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    EXPECT_NE(message({.exact_prefix = -1}).find("exact prefix must be 0 to " + std::to_string(d_)), std::string::npos);
    EXPECT_NE(message({.exact_prefix = d_ + 1}).find("exact prefix must be 0 to"), std::string::npos);
    EXPECT_NE(message({.row_clusters = -2}).find("row clusters must be 0 to"), std::string::npos);
    EXPECT_NE(message({.row_clusters = static_cast<int>(model_->config().n_vocab) + 1}).find("row clusters must be 0 to"), std::string::npos);
    // the GPU head has neither: refused by name, with or without CUDA in the build
    EXPECT_NE(message({.device = winnow::Device::cuda, .row_clusters = 4}).find("CPU only"), std::string::npos);
}

} // namespace
