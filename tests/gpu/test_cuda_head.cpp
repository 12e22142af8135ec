// The fused exact head on the GPU (Backend::head_top_k, backend/cuda/head_top_k.cu) beyond the op harness's fixed
// cases: random shapes, every weight type and k from 1 to past the 128-row tile, the workspace growing and shrinking
// between calls, one backend reused throughout; each call must equal the same backend's linear + top_k exactly (ids,
// logit bits) and its log-normalizer within 1e-12; so must rows of NaN and -inf logits. Then the time per call of both
// on SmolLM2's head shape, printed (not asserted). And the adaptive head's kernels against their host twins: the
// warm-up, the rounds' masked step (a NaN query too) and the elimination round's reduction. Skips without a GPU.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cuda/adaptive_rounds.h"
#include "backend/cuda/adaptive_warmup.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device.h"
#include "device_matrix.h"
#include "head/adaptive_algorithm.h"
#include "head/column_major_head.h"
#include "io/quant.h"
#include "winnow/error.h"

namespace {

using namespace winnow;

class CudaHead : public ::testing::Test {
protected:
    void SetUp() override {
        if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
        be_ = make_backend({.device = Device::cuda});
    }
    // A random head in `type` placed on the device (storage keeps the bytes).
    Matrix head(GgmlType type, int64_t rows, int64_t cols, uint64_t seed, Tensor& storage) {
        std::mt19937_64 rng(seed);
        std::normal_distribution<float> nd(0.0f, 0.05f);
        std::vector<float> w(static_cast<size_t>(rows * cols));
        for (auto& v : w) v = nd(rng);
        // a few duplicated rows: exact ties, wherever they fall in the tiles
        for (int dup = 0; dup < 4 && rows > 2; ++dup) {
            const int64_t a = static_cast<int64_t>(rng() % rows), b = static_cast<int64_t>(rng() % rows);
            std::copy(w.begin() + a * cols, w.begin() + (a + 1) * cols, w.begin() + b * cols);
        }
        return gpu_test::place_matrix(*be_, type, rows, cols, w, storage);
    }
    Tensor hidden(int64_t cols, uint64_t seed) {
        std::mt19937_64 rng(seed);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        std::vector<float> x(static_cast<size_t>(cols));
        for (auto& v : x) v = nd(rng);
        Tensor t = be_->alloc(GgmlType::F32, 1, cols);
        be_->upload(x.data(), t);
        return t;
    }
    std::unique_ptr<Backend> be_;
};

TEST_F(CudaHead, RandomShapesEqualLinearPlusTopK) {
    const GgmlType types[] = {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1};
    std::mt19937_64 rng(11);
    for (int trial = 0; trial < 60; ++trial) {
        const GgmlType type = types[trial % 6];
        const int64_t rows = 1 + static_cast<int64_t>(rng() % 20000), cols = 32 * (1 + static_cast<int64_t>(rng() % 24));
        const int k_choices[] = {1, 2, 40, 127, 128, 129, 500};
        const int k = static_cast<int>(std::min<int64_t>(rows, k_choices[rng() % 7]));
        Tensor storage;
        const Matrix w = head(type, rows, cols, 100 + trial, storage);
        const Tensor x = hidden(cols, 200 + trial);
        const TopK got = be_->head_top_k(w, x, k, true);
        const Tensor logits = be_->alloc(GgmlType::F32, 1, rows);
        be_->linear(w, nullptr, x, logits);
        const TopK want = be_->top_k(logits, k, true);
        SCOPED_TRACE(std::string(ggml_type_name(type)) + " " + std::to_string(rows) + "x" + std::to_string(cols) + " k " + std::to_string(k));
        ASSERT_EQ(got.ids, want.ids);
        ASSERT_EQ(got.logits, want.logits);
        EXPECT_NEAR(got.log_norm, want.log_norm, 1e-12 * std::max(1.0, std::fabs(want.log_norm)));
    }
}

// Rows whose logits are NaN (a row of NaN weights) or -inf (a row of -inf weights against a positive hidden state):
// the fused op orders them as the same backend's top_k (sample_chain::top_k_key: a NaN in row 0 first, the others
// last), so k = 1 is also the CPU twin's std::max_element; log Z is NaN with a NaN and -inf for a row of -inf, as top_k.
TEST_F(CudaHead, NaNAndMinusInfLogitsAsTopK) {
    const int64_t rows = 20000, cols = 64;
    auto cpu = make_cpu_backend(1);
    std::vector<float> xv(cols, 0.5f);
    Tensor x = be_->alloc(GgmlType::F32, 1, cols), host_x = cpu->alloc(GgmlType::F32, 1, cols);
    be_->upload(xv.data(), x);
    cpu->upload(xv.data(), host_x);
    auto bits_equal = [](const std::vector<float>& a, const std::vector<float>& b) {
        return a.size() == b.size() && std::memcmp(a.data(), b.data(), 4 * a.size()) == 0;
    };
    std::mt19937_64 rng(3);
    std::normal_distribution<float> nd(0.0f, 0.05f);
    for (int shape = 0; shape < 4; ++shape) {
        std::vector<float> w(static_cast<size_t>(rows * cols));
        for (auto& v : w) v = nd(rng);
        auto fill = [&](int64_t r, float v) { std::fill(w.begin() + r * cols, w.begin() + (r + 1) * cols, v); };
        if (shape == 0) // NaN in row 0, and in others
            for (int64_t r : {0, 77, 5000, 19999}) fill(r, NAN);
        if (shape == 1) // scattered, not in row 0
            for (int64_t r = 3; r < rows; r += 301) fill(r, NAN);
        if (shape == 2) // every logit -inf
            for (int64_t r = 0; r < rows; ++r) fill(r, -INFINITY);
        if (shape == 3) { // a tile of -inf with a NaN in it
            for (int64_t r = 256; r < 384; ++r) fill(r, -INFINITY);
            fill(300, NAN);
        }
        const Tensor storage = be_->place_readonly(GgmlType::I8, 1, static_cast<int64_t>(4 * w.size()), w.data());
        Matrix m;
        m.type = GgmlType::F32;
        m.rows = rows;
        m.cols = cols;
        m.row_bytes = 4 * cols;
        m.data = storage.data<uint8_t>();
        m.name = "test";
        Matrix host_m = m;
        host_m.data = reinterpret_cast<const uint8_t*>(w.data());
        const Tensor logits = be_->alloc(GgmlType::F32, 1, rows);
        for (int k : {1, 40, 129}) {
            SCOPED_TRACE("shape " + std::to_string(shape) + " k " + std::to_string(k));
            const TopK got = be_->head_top_k(m, x, k, true);
            be_->linear(m, nullptr, x, logits);
            const TopK want = be_->top_k(logits, k, true);
            ASSERT_EQ(got.ids, want.ids);
            EXPECT_TRUE(bits_equal(got.logits, want.logits));
            if (shape == 2) {
                EXPECT_EQ(got.log_norm, -INFINITY);
                EXPECT_EQ(want.log_norm, -INFINITY);
            } else {
                EXPECT_TRUE(std::isnan(got.log_norm));
                EXPECT_TRUE(std::isnan(want.log_norm));
            }
            if (k == 1) {
                EXPECT_EQ(got.ids, cpu->head_top_k(host_m, host_x, 1, false).ids);
            }
        }
    }
}

TEST_F(CudaHead, RefusesBadArguments) {
    Tensor storage;
    const Matrix w = head(GgmlType::BF16, 300, 64, 1, storage);
    const Tensor x = hidden(64, 2), wrong = hidden(96, 3);
    EXPECT_THROW(be_->head_top_k(w, x, 0, false), Error);
    EXPECT_THROW(be_->head_top_k(w, x, 301, false), Error);
    EXPECT_THROW(be_->head_top_k(w, wrong, 5, false), Error);
    auto cpu = make_cpu_backend(1);
    const Tensor host_x = cpu->alloc(GgmlType::F32, 1, 64);
    EXPECT_THROW(be_->head_top_k(w, host_x, 5, false), Error);
}

// Printed for the report: the fused op against the two-op path on SmolLM2's head shape (bf16 and Q8_0), k = 1 and 40.
TEST_F(CudaHead, TimePerCallOnSmolLM2Shape) {
    for (GgmlType type : {GgmlType::BF16, GgmlType::Q8_0})
        for (int k : {1, 40}) {
            Tensor storage;
            const Matrix w = head(type, 49152, 576, 7, storage);
            const Tensor x = hidden(576, 8), logits = be_->alloc(GgmlType::F32, 1, 49152);
            auto time = [&](auto&& call) {
                for (int i = 0; i < 20; ++i) call();
                std::vector<double> us;
                for (int i = 0; i < 200; ++i) {
                    const auto t0 = std::chrono::steady_clock::now();
                    call();
                    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
                }
                std::sort(us.begin(), us.end());
                return us[us.size() / 2];
            };
            const double fused = time([&] { return be_->head_top_k(w, x, k, true); });
            const double pair = time([&] {
                be_->linear(w, nullptr, x, logits);
                return be_->top_k(logits, k, true);
            });
            std::printf("head 49152x576 %s k %d: fused %.1f us, linear + top_k %.1f us (median of 200 calls, host clock, results on the host)\n",
                        ggml_type_name(type), k, fused, pair);
        }
}

// A random 5000 x 192 head (N(0, 0.05^2)) in the column-major layout and one N(0, 1) query's column order, on the host
// and copied to the device, for the adaptive head's kernel tests; nan_at >= 0 makes x NaN at that sampled column. The
// device buffers (also those a test adds with up()) are freed with the setup.
class AdaptiveSetup {
public:
    AdaptiveSetup(bool q8, int nan_at, uint64_t seed, uint64_t noise_seed) : rng_(seed) {
        const int n = 5000, d = 192;
        std::normal_distribution<float> nd(0.0f, 1.0f);
        std::vector<float> A(static_cast<size_t>(n) * d), x(d);
        for (auto& v : A) v = 0.05f * nd(rng_);
        for (auto& v : x) v = nd(rng_);
        H_ = std::make_unique<head::ColumnMajorHead>(A, n, d, q8);
        order_ = head::gumbel_column_order(H_->statistics().l1, x, noise_seed);
        dp_ = order_.size();
        blk_.resize(dp_), xs_.resize(dp_), coef_.resize(dp_);
        double remaining = 0;
        for (int m = dp_ - 1; m >= 0; --m) {
            remaining += order_.share[m];
            blk_[m] = order_.column[m] / 32;
            xs_[m] = x[order_.column[m]];
            coef_[m] = static_cast<float>(remaining / order_.share[m]);
        }
        if (nan_at >= 0) xs_[nan_at] = NAN;
        stride_ = H_->stride();
        hl_.stride = dl_.stride = stride_;
        if (q8) {
            hl_.quants = H_->quant_column(0);
            hl_.scales = H_->scale_row(0);
            dl_.quants = static_cast<const int8_t*>(up(hl_.quants, static_cast<size_t>(d) * stride_));
            dl_.scales = static_cast<const uint16_t*>(up(hl_.scales, static_cast<size_t>(d / 32) * stride_ * 2));
        } else {
            hl_.values = H_->float_column(0);
            dl_.values = static_cast<const float*>(up(hl_.values, static_cast<size_t>(d) * stride_ * 4));
        }
        ho_ = {order_.column.data(), blk_.data(), xs_.data(), coef_.data(), dp_};
        dord_ = {static_cast<const int32_t*>(up(order_.column.data(), 4 * dp_)), static_cast<const int32_t*>(up(blk_.data(), 4 * dp_)),
                 static_cast<const float*>(up(xs_.data(), 4 * dp_)), static_cast<const float*>(up(coef_.data(), 4 * dp_)), dp_};
    }
    ~AdaptiveSetup() {
        for (void* p : owned_) cudaFree(p);
    }
    AdaptiveSetup(const AdaptiveSetup&) = delete;
    AdaptiveSetup& operator=(const AdaptiveSetup&) = delete;

    // A device copy of `bytes` at src (uninitialised when src is null), freed with the setup.
    void* up(const void* src, size_t bytes) {
        void* p = nullptr;
        WINNOW_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(bytes, 4)));
        if (src) WINNOW_CUDA_CHECK(cudaMemcpy(p, src, bytes, cudaMemcpyHostToDevice));
        owned_.push_back(p);
        return p;
    }
    // References to the random generator (after the head and the query), d', the stride, and the host and device
    // layouts and orders.
    auto parts() { return std::tie(rng_, dp_, stride_, hl_, dl_, ho_, dord_); }

private:
    std::mt19937_64 rng_;
    std::unique_ptr<head::ColumnMajorHead> H_;
    head::ColumnOrder order_;
    int dp_ = 0;
    int64_t stride_ = 0;
    std::vector<int32_t> blk_;
    std::vector<float> xs_, coef_;
    cuda::adaptive::ColumnLayout hl_, dl_;
    cuda::adaptive::QueryOrder ho_{}, dord_{};
    std::vector<void*> owned_;
};

// The adaptive head's warm-up kernel (backend/cuda/adaptive_warmup.cu) against its CPU twin (the same function per arm
// on the host), bit for bit, in both storages, through the warm-up's steps (fresh 16 columns, then 24, 36, ..., d').
TEST(CudaAdaptiveWarmUp, EqualsHostTwinBitForBit) {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
    namespace ad = winnow::cuda::adaptive;
    // values equal, or NaN in both (a NaN's payload bits are the device's own, not the host's)
    auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
        for (size_t i = 0; i < a.size(); ++i)
            if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
        return a.size() == b.size();
    };
    for (int variant = 0; variant < 4; ++variant) {
        const bool q8 = variant % 2 == 1, nan_query = variant >= 2; // a NaN x at the 10th sampled column
        AdaptiveSetup setup(q8, nan_query ? 9 : -1, q8 ? 5 : 6, 9);
        auto [rng, dp, stride, hl, dl, ho, dord] = setup.parts();
        auto up = [&](const void* src, size_t bytes) { return setup.up(src, bytes); };
        std::vector<float> hK(stride), hZ(stride), hZ2(stride), hmu(stride), hvar(stride);
        std::vector<int32_t> hT(stride);
        const ad::ArmState hs{hK.data(), hZ.data(), hZ2.data(), hmu.data(), hvar.data(), hT.data()};
        const size_t fb = 4 * static_cast<size_t>(stride);
        const ad::ArmState ds{static_cast<float*>(up(nullptr, fb)), static_cast<float*>(up(nullptr, fb)), static_cast<float*>(up(nullptr, fb)),
                              static_cast<float*>(up(nullptr, fb)), static_cast<float*>(up(nullptr, fb)), static_cast<int32_t*>(up(nullptr, fb))};
        int cur = 0;
        for (int target : {16, 24, 36, 54, 81, dp}) {
            const int to = std::min(target, dp);
            if (to <= cur) continue;
            ad::warm_up_host(hl, ho, hs, stride, cur, to, cur == 0, 1.0f);
            ad::launch_warm_up(dl, dord, ds, stride, cur, to, cur == 0, 1.0f, nullptr);
            WINNOW_CUDA_CHECK(cudaDeviceSynchronize());
            std::vector<float> gK(stride), gmu(stride), gvar(stride);
            std::vector<int32_t> gT(stride);
            WINNOW_CUDA_CHECK(cudaMemcpy(gK.data(), ds.K, fb, cudaMemcpyDeviceToHost));
            WINNOW_CUDA_CHECK(cudaMemcpy(gmu.data(), ds.mu, fb, cudaMemcpyDeviceToHost));
            WINNOW_CUDA_CHECK(cudaMemcpy(gvar.data(), ds.var, fb, cudaMemcpyDeviceToHost));
            WINNOW_CUDA_CHECK(cudaMemcpy(gT.data(), ds.T, fb, cudaMemcpyDeviceToHost));
            SCOPED_TRACE(std::string(q8 ? "q8" : "f32") + (nan_query ? " NaN query" : "") + " columns [" + std::to_string(cur) + ", " + std::to_string(to) + ")");
            EXPECT_TRUE(same(gK, hK));
            EXPECT_TRUE(same(gmu, hmu));
            EXPECT_TRUE(same(gvar, hvar));
            EXPECT_EQ(gT, hT);
            cur = to;
        }
    }
}

// The elimination rounds' masked step (launch_stream_masked) against its host twin, bit for bit (NaN: NaN in both),
// after a fresh 16-column warm-up: arms at different prefix lengths, active words -1, 1 and 0, every array compared
// after each step, both storages, a NaN query too.
TEST(CudaAdaptiveRounds, MaskedStepEqualsHostTwinBitForBit) {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
    namespace ad = winnow::cuda::adaptive;
    auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
        for (size_t i = 0; i < a.size(); ++i)
            if (!(std::memcmp(&a[i], &b[i], 4) == 0 || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
        return a.size() == b.size();
    };
    for (int variant = 0; variant < 4; ++variant) {
        const bool q8 = variant % 2 == 1, nan_query = variant >= 2; // a NaN x at the 30th sampled column
        AdaptiveSetup setup(q8, nan_query ? 29 : -1, q8 ? 15 : 16, 19);
        auto [rng, dp, stride, hl, dl, ho, dord] = setup.parts();
        auto up = [&](const void* src, size_t bytes) { return setup.up(src, bytes); };
        std::vector<float> h[5];
        for (auto& v : h) v.assign(stride, 0.0f);
        std::vector<int32_t> hT(stride);
        const ad::ArmState hs{h[0].data(), h[1].data(), h[2].data(), h[3].data(), h[4].data(), hT.data()};
        const size_t fb = 4 * static_cast<size_t>(stride);
        const ad::ArmState ds{static_cast<float*>(up(nullptr, fb)), static_cast<float*>(up(nullptr, fb)), static_cast<float*>(up(nullptr, fb)),
                              static_cast<float*>(up(nullptr, fb)), static_cast<float*>(up(nullptr, fb)), static_cast<int32_t*>(up(nullptr, fb))};
        int32_t* dactive = static_cast<int32_t*>(up(nullptr, fb));
        ad::warm_up_host(hl, ho, hs, stride, 0, 16, true, 0.9f);
        ad::launch_warm_up(dl, dord, ds, stride, 0, 16, true, 0.9f, nullptr);
        std::vector<int32_t> active(stride);
        const int steps[][3] = {{16, 24, 50}, {16, 36, 30}, {24, 36, 100}, {36, 54, 70}, {36, dp, 100}, {54, dp, 100}}; // from, to, % active
        for (const auto& step : steps) {
            for (auto& a : active) a = static_cast<int>(rng() % 100) < step[2] ? (rng() % 2 ? -1 : 1) : 0;
            WINNOW_CUDA_CHECK(cudaMemcpy(dactive, active.data(), fb, cudaMemcpyHostToDevice));
            ad::stream_masked_host(hl, ho, hs, active.data(), stride, step[0], step[1], 0.9f);
            ad::launch_stream_masked(dl, dord, ds, dactive, stride, step[0], step[1], 0.9f, nullptr);
            WINNOW_CUDA_CHECK(cudaDeviceSynchronize());
            SCOPED_TRACE(std::string(q8 ? "q8" : "f32") + (nan_query ? " NaN query" : "") + " columns [" + std::to_string(step[0]) + ", " +
                         std::to_string(step[1]) + ")");
            float* const dev[5] = {ds.K, ds.Z, ds.Z2, ds.mu, ds.var};
            for (int a = 0; a < 5; ++a) {
                std::vector<float> g(stride);
                WINNOW_CUDA_CHECK(cudaMemcpy(g.data(), dev[a], fb, cudaMemcpyDeviceToHost));
                EXPECT_TRUE(same(g, h[a])) << "array " << a << " (K, Z, Z2, mu, var)";
            }
            std::vector<int32_t> gT(stride);
            WINNOW_CUDA_CHECK(cudaMemcpy(gT.data(), ds.T, fb, cudaMemcpyDeviceToHost));
            EXPECT_EQ(gT, hT);
        }
    }
}

// The elimination round's reduction (launch_eliminate_round, three launches with atomics) against its host twin:
// best arm, floor_b, the two reductions' values, kept count, all_exact and every keep flag, on sizes around the
// 256-thread block and SmolLM2's 49152 arms, random and tied estimates, NaN and infinities, and a NaN first arm.
TEST(CudaAdaptiveRounds, EliminateRoundEqualsHostTwin) {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
    namespace ad = winnow::cuda::adaptive;
    std::mt19937 rng(21);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const float tie_mu[] = {-1.0f, -0.0f, 0.0f, 0.5f, 1.0f, 2.0f}, tie_var[] = {0.0f, 0.25f, 1.0f, 4.0f};
    int trial = 0;
    for (int n : {1, 255, 256, 257, 1000, 5000, 49152})
        for (int kind = 0; kind < 4; ++kind, ++trial) { // 0: random, 1: ties, 2: ties + NaN/inf, 3: random + NaN/inf, NaN first arm
            const bool ties = kind == 1 || kind == 2, special = kind >= 2;
            const int dp = 100;
            std::vector<float> mu(n), var(n);
            std::vector<int32_t> T(n);
            std::vector<uint8_t> S(n);
            for (int i = 0; i < n; ++i) {
                mu[i] = ties ? tie_mu[rng() % 6] : nd(rng);
                var[i] = ties ? tie_var[rng() % 4] : std::fabs(nd(rng)) * 0.01f;
                const unsigned c = special ? rng() % 40 : 99;
                if (c == 0) mu[i] = NAN;
                if (c == 1) mu[i] = INFINITY;
                if (c == 2) mu[i] = -INFINITY;
                if (c == 3) var[i] = NAN;
                if (c == 4) var[i] = INFINITY;
                T[i] = rng() % 3 ? dp : static_cast<int32_t>(rng() % dp);
                S[i] = rng() % 4 != 0;
            }
            S[rng() % n] = 1;
            if (kind == 3 && n > 1) { // the first arm of S NaN: the CPU loop's b stays there
                const int f = static_cast<int>(std::find(S.begin(), S.end(), 1) - S.begin());
                mu[f] = NAN;
            }
            const float width2 = 0.5f + static_cast<float>(rng() % 100) / 10;
            std::vector<uint8_t> hkeep(n);
            const ad::RoundResult want = ad::eliminate_round_host(mu.data(), var.data(), T.data(), S.data(), hkeep.data(), n, dp, width2);
            std::vector<void*> owned;
            auto up = [&](const void* src, size_t bytes) {
                void* p = nullptr;
                WINNOW_CUDA_CHECK(cudaMalloc(&p, bytes));
                if (src) WINNOW_CUDA_CHECK(cudaMemcpy(p, src, bytes, cudaMemcpyHostToDevice));
                owned.push_back(p);
                return p;
            };
            auto* dkeep = static_cast<uint8_t*>(up(nullptr, n));
            auto* dres = static_cast<ad::RoundResult*>(up(nullptr, sizeof(ad::RoundResult)));
            WINNOW_CUDA_CHECK(cudaMemset(dkeep, 9, n)); // every flag must be written
            WINNOW_CUDA_CHECK(cudaMemset(dres, 0xA5, sizeof(ad::RoundResult))); // and every field reset: no help from a zeroed buffer
            ad::launch_eliminate_round(static_cast<const float*>(up(mu.data(), 4 * n)), static_cast<const float*>(up(var.data(), 4 * n)),
                                       static_cast<const int32_t*>(up(T.data(), 4 * n)), static_cast<const uint8_t*>(up(S.data(), n)), dkeep, n, dp, width2,
                                       dres, nullptr);
            ad::RoundResult got;
            std::vector<uint8_t> gkeep(n);
            WINNOW_CUDA_CHECK(cudaMemcpy(&got, dres, sizeof got, cudaMemcpyDeviceToHost));
            WINNOW_CUDA_CHECK(cudaMemcpy(gkeep.data(), dkeep, n, cudaMemcpyDeviceToHost));
            SCOPED_TRACE("n " + std::to_string(n) + " kind " + std::to_string(kind));
            EXPECT_EQ(got.first, want.first);
            EXPECT_EQ(got.key, want.key);
            EXPECT_EQ(got.best, want.best);
            EXPECT_TRUE(std::memcmp(&got.floor_b, &want.floor_b, 4) == 0 || (std::isnan(got.floor_b) && std::isnan(want.floor_b)))
                << got.floor_b << " vs " << want.floor_b;
            EXPECT_EQ(got.kept, want.kept);
            EXPECT_EQ(got.all_exact, want.all_exact);
            EXPECT_EQ(gkeep, hkeep);
            for (void* p : owned) cudaFree(p);
        }
}

} // namespace
