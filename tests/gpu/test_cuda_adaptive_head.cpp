// The GPU AdaptiveSoftmax's complete query (backend/cuda/adaptive_head_gpu.h, both loops) and its kernels
// (adaptive_head_gpu.cu, adaptive_persistent.cu) against their CPU twins. Skips without a GPU.
//   * The kernels one by one against the *_host functions of adaptive_norm_logic.cuh: set statistics and advance()'s
//     grouping exactly, the exact rows within rounding of the CPU's row_dot, the normalizer's weights within a few ulp
//     (expf), their block sums bit for bit given the device's weights (the documented order), the filter's flags
//     exactly given the same weights, the log-sum-exp within 1e-6.
//   * The query, phase by phase, against HostQuerySteps (the twin executor, which tests/ops/test_adaptive_query.cpp
//     holds to FastAdaptiveSoftmax's decisions): for a fixed column order and seed, after the warm-up every estimate
//     bit for bit; after the first elimination round the same survivors, the same prefix lengths and the estimates
//     within fp tolerance (an arm promoted to its exact row gets the GPU's warp dot product, which rounds differently).
//   * Whole queries with a clear winner on random heads (Q8_0 and f32 storage, n in {1000, 4097}, d in {64, 576}): the
//     GPU's top equals FastAdaptiveSoftmax's and the exact argmax, p_top within epsilon of the exact p, the warm-up's
//     sample count equal to the CPU's (the persistent loop, the default).
//   * The persistent loop against the host-driven one: the same answer, bits and sample counts, on grids of 1, 3 and
//     the default number of blocks; a grid it cannot use is refused.
//   * A rotated head (a PCA basis: rotated columns, the model's rows for the exact finish with the query turned back):
//     the GPU's top equals the CPU fast head's on the same rotated head and the model's exact argmax, both loops alike.
//   * Time per query on SmolLM2's head shape (49152 x 576, Q8_0) in each loop, printed, not asserted.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cuda/adaptive_head_gpu.h"
#include "backend/cuda/adaptive_head_kernels.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device.h"
#include "head/column_major_head.h"
#include "head/fast_adaptive_softmax.h"
#include "head/rotation.h"
#include "ops/adaptive_test_instances.h"

namespace {

using namespace winnow;
namespace ad = winnow::cuda::adaptive;

#define SKIP_WITHOUT_GPU() \
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine"

// Device copies freed at the end of a test.
class DeviceArrays {
public:
    ~DeviceArrays() {
        for (void* p : owned_) cudaFree(p);
    }
    template <class T>
    T* up(const std::vector<T>& v) {
        T* p = alloc<T>(v.size());
        WINNOW_CUDA_CHECK(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
        return p;
    }
    template <class T>
    T* alloc(size_t count) {
        void* p = nullptr;
        WINNOW_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(count * sizeof(T), 8)));
        owned_.push_back(p);
        return static_cast<T*>(p);
    }
    template <class T>
    static std::vector<T> down(const T* p, size_t count) {
        WINNOW_CUDA_CHECK(cudaDeviceSynchronize());
        std::vector<T> v(count);
        WINNOW_CUDA_CHECK(cudaMemcpy(v.data(), p, count * sizeof(T), cudaMemcpyDeviceToHost));
        return v;
    }

private:
    std::vector<void*> owned_;
};

bool same_or_both_nan(float a, float b) { return std::memcmp(&a, &b, 4) == 0 || (std::isnan(a) && std::isnan(b)); }

using Instance = winnow::test::AdaptiveInstance;
// A random head and a query whose planted winner clears the other logits by ~8.
Instance planted(int n, int d, uint64_t seed) { return winnow::test::adaptive_instance(n, d, seed, true); }

// The exact logits (the CPU's row dot products on the stored rows), their argmax and the argmax's probability.
struct Exact {
    int argmax = 0;
    double p = 0;
};
Exact exact(const head::ColumnMajorHead& H, const std::vector<float>& x, float beta) {
    head::ExactQuery prep;
    H.prepare_exact(x, prep);
    std::vector<double> z(H.n());
    Exact e;
    for (int i = 0; i < H.n(); ++i) {
        z[i] = static_cast<double>(beta) * H.row_dot(i, prep);
        if (z[i] > z[e.argmax]) e.argmax = i;
    }
    double s = 0;
    for (double v : z) s += std::exp(v - z[e.argmax]);
    e.p = 1.0 / s;
    return e;
}

TEST(CudaAdaptiveHeadKernels, SetStatsAndGroupsEqualTheTwins) {
    SKIP_WITHOUT_GPU();
    std::mt19937 rng(31);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const int dp = 90;
    for (int n : {1, 255, 256, 257, 4097, 49152}) {
        std::vector<float> var(n);
        std::vector<int32_t> T(n);
        std::vector<uint8_t> in(n);
        for (int i = 0; i < n; ++i) {
            T[i] = rng() % 5 ? static_cast<int32_t>(16 * (1 + rng() % 5)) : dp;
            var[i] = T[i] == dp ? 0.0f : std::fabs(nd(rng)) * 0.1f;
            if (rng() % 50 == 0) var[i] = NAN;
            in[i] = rng() % 3 != 0;
        }
        DeviceArrays dev;
        const uint8_t* din = dev.up(in);
        const float* dvar = dev.up(var);
        const int32_t* dT = dev.up(T);
        auto* stats = dev.alloc<ad::SetStats>(1);
        auto* group = dev.alloc<ad::Group>(1);
        auto* active = dev.alloc<int32_t>(n);
        auto* list = dev.alloc<int32_t>(n);
        SCOPED_TRACE("n " + std::to_string(n));
        for (float thr : {0.0f, 0.05f, 1.0f}) {
            ad::launch_set_stats(din, dvar, dT, n, thr, dp, stats, nullptr);
            const ad::SetStats got = DeviceArrays::down(stats, 1)[0], want = ad::set_stats_host(in.data(), var.data(), T.data(), n, thr, dp);
            EXPECT_EQ(got.count, want.count);
            EXPECT_EQ(got.min_T, want.min_T);
            EXPECT_EQ(got.failing, want.failing);
            EXPECT_EQ(got.max_var_key, want.max_var_key);
        }
        for (int target : {16, 40, 64, dp, dp + 1}) {
            ad::launch_mark_group(din, dT, n, target, active, list, group, nullptr);
            const ad::Group g = DeviceArrays::down(group, 1)[0];
            int32_t from = ad::kNoArm;
            for (int i = 0; i < n; ++i)
                if (in[i] && T[i] < target) from = std::min(from, T[i]);
            std::set<int32_t> want;
            for (int i = 0; i < n; ++i)
                if (in[i] && T[i] == from) want.insert(i);
            EXPECT_EQ(g.from, from) << "target " << target;
            ASSERT_EQ(g.count, static_cast<int32_t>(want.size())) << "target " << target;
            const std::vector<int32_t> got_list = DeviceArrays::down(list, g.count), got_active = DeviceArrays::down(active, n);
            EXPECT_EQ(std::set<int32_t>(got_list.begin(), got_list.end()), want);
            for (int i = 0; i < n; ++i) ASSERT_EQ(got_active[i], want.count(i) ? -1 : 0) << "arm " << i;
        }
    }
}

TEST(CudaAdaptiveHeadKernels, NormalizerAndLogSumExpEqualTheTwins) {
    SKIP_WITHOUT_GPU();
    std::mt19937 rng(37);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const int dp = 100;
    for (int n : {1, 31, 256, 1000, 4097, 49152}) {
        std::vector<float> mu(n), var(n);
        std::vector<int32_t> T(n);
        for (int i = 0; i < n; ++i) {
            mu[i] = 3.0f * nd(rng);
            var[i] = rng() % 4 ? 0.05f * std::fabs(nd(rng)) : 0.0f;
            T[i] = var[i] == 0.0f && rng() % 2 ? dp : static_cast<int32_t>(16 + rng() % 80);
        }
        DeviceArrays dev;
        const float *dmu = dev.up(mu), *dvar = dev.up(var);
        const int32_t* dT = dev.up(T);
        auto* de = dev.alloc<float>(n);
        auto* key = dev.alloc<uint32_t>(1);
        auto* count = dev.alloc<int32_t>(1);
        auto* todo = dev.alloc<uint8_t>(n);
        const int64_t blocks = ad::norm_blocks(n);
        auto* partials = dev.alloc<double>(2 * blocks);
        const float c2 = 2.0f * std::log(6.0f * n / 0.005f);
        SCOPED_TRACE("n " + std::to_string(n));

        std::vector<float> he(n);
        std::vector<double> hpart(2 * blocks);
        const ad::NormSums want = ad::norm_weights_host(mu.data(), var.data(), n, c2, he.data(), hpart.data());
        ad::launch_norm_weights(dmu, dvar, n, c2, de, key, partials, nullptr);
        EXPECT_EQ(ad::max_from_key(DeviceArrays::down(key, 1)[0]), want.la_max);
        const std::vector<float> ge = DeviceArrays::down(de, n);
        for (int i = 0; i < n; ++i) ASSERT_NEAR(ge[i], he[i], 5e-7 * he[i] + 1e-37) << "arm " << i;
        // the device's block sums, bit for bit the documented order applied to the device's own weights
        const std::vector<double> gpart = DeviceArrays::down(partials, 2 * blocks);
        for (int64_t b = 0; b < blocks; ++b) {
            double ve[ad::kNormThreads] = {}, vg[ad::kNormThreads] = {};
            for (int t = 0; t < ad::kNormThreads && b * ad::kNormThreads + t < n; ++t) {
                ve[t] = ge[b * ad::kNormThreads + t];
                vg[t] = std::sqrt(ge[b * ad::kNormThreads + t]);
            }
            ASSERT_EQ(gpart[b], ad::block_sum_host(ve)) << "block " << b;
            ASSERT_EQ(gpart[blocks + b], ad::block_sum_host(vg)) << "block " << b;
        }
        EXPECT_NEAR(ad::add_partials(gpart.data(), blocks), want.sum_e, 1e-6 * want.sum_e);

        // the filter's flags, given the device's weights on both sides
        const double a = 0.3 * want.sum_e / (16 * std::sqrt(2.0) * 10 * want.sum_g), b = 0.09 * want.sum_e / (16 * std::log(12 / 0.005));
        std::vector<uint8_t> htodo(n);
        for (int pass = 0; pass < 2; ++pass) {
            const int32_t hc = ad::norm_filter_host(pass == 0, ge.data(), var.data(), T.data(), n, dp, 1.0, a, b, htodo.data());
            ad::launch_norm_filter(pass == 0, de, dvar, dT, n, dp, 1.0, a, b, todo, count, nullptr);
            EXPECT_EQ(DeviceArrays::down(count, 1)[0], hc) << "pass " << pass;
            EXPECT_EQ(DeviceArrays::down(todo, n), htodo) << "pass " << pass;
            for (auto& v : var) v *= 0.5f; // the second pass sees tighter estimates
            WINNOW_CUDA_CHECK(cudaMemcpy(const_cast<float*>(dvar), var.data(), 4 * n, cudaMemcpyHostToDevice));
        }

        const ad::SumExp hs = ad::sum_exp_host(mu.data(), n);
        ad::launch_sum_exp(dmu, n, key, partials, nullptr);
        EXPECT_EQ(ad::max_from_key(DeviceArrays::down(key, 1)[0]), hs.max);
        const std::vector<double> sp = DeviceArrays::down(partials, blocks);
        EXPECT_NEAR(ad::add_partials(sp.data(), blocks), hs.sum, 1e-6 * hs.sum);
    }
}

TEST(CudaAdaptiveHeadKernels, ExactRowsEqualTheCpusRowDotWithinRounding) {
    SKIP_WITHOUT_GPU();
    for (bool q8 : {true, false}) {
        const Instance in = planted(777, 576, q8 ? 3 : 4);
        const head::ColumnMajorHead H(in.A, 777, 576, q8);
        DeviceArrays dev;
        std::vector<uint8_t> rows(H.rows().data, H.rows().data + H.rows().row_bytes * 777);
        std::vector<int32_t> list = {0, 5, 776, 300, 301};
        const uint8_t* drows = dev.up(rows);
        const float* dx = dev.up(in.x);
        const int32_t* dlist = dev.up(list);
        auto *mu = dev.alloc<float>(777), *var = dev.alloc<float>(777);
        auto* T = dev.alloc<int32_t>(777);
        ad::launch_exact_rows(H.rows().type, drows, H.rows().row_bytes, 576, dx, dlist, static_cast<int>(list.size()), 0.8f, 500, mu, var, T, nullptr);
        const std::vector<float> gmu = DeviceArrays::down(mu, 777), gvar = DeviceArrays::down(var, 777);
        const std::vector<int32_t> gT = DeviceArrays::down(T, 777);
        head::ExactQuery prep;
        H.prepare_exact(in.x, prep);
        for (int32_t i : list) {
            const float want = 0.8f * H.row_dot(i, prep);
            EXPECT_NEAR(gmu[i], want, 1e-5f * (1 + std::fabs(want))) << (q8 ? "q8" : "f32") << " arm " << i;
            EXPECT_EQ(gvar[i], 0.0f);
            EXPECT_EQ(gT[i], 500);
        }
    }
}

struct Config {
    bool q8;
    int n, d;
};
const Config kConfigs[] = {{true, 1000, 64}, {true, 1000, 576}, {true, 4097, 64}, {true, 4097, 576},
                           {false, 1000, 64}, {false, 1000, 576}, {false, 4097, 64}, {false, 4097, 576}};

std::string name(const Config& c) { return std::string(c.q8 ? "q8" : "f32") + " n " + std::to_string(c.n) + " d " + std::to_string(c.d); }

// For a fixed column order and seed: the warm-up's estimates bit for bit, then the first round's survivors.
TEST(CudaAdaptiveHead, WarmUpAndFirstRoundEqualTheHostTwin) {
    SKIP_WITHOUT_GPU();
    int trial = 0;
    for (const Config& c : kConfigs) {
        const Instance in = planted(c.n, c.d, 50 + trial++);
        auto H = std::make_shared<head::ColumnMajorHead>(in.A, c.n, c.d, c.q8);
        AdaptiveParams p;
        p.delta = 0.05;
        const uint64_t seed = head::query_noise_seed(p.seed, 1);
        ad::GpuAdaptiveHead gpu(H);
        ad::HostQuerySteps host(*H);
        ad::QueryDriver g(*H, gpu.steps(), in.x, p, seed), h(*H, host, in.x, p, seed);
        SCOPED_TRACE(name(c));
        g.warm_up();
        h.warm_up();
        EXPECT_EQ(g.cost().warmup, h.cost().warmup);
        std::vector<float> gmu, gvar, hmu, hvar;
        std::vector<int32_t> gT, hT;
        std::vector<uint8_t> gS, hS;
        gpu.steps().read_state(gmu, gvar, gT, gS);
        host.read_state(hmu, hvar, hT, hS);
        EXPECT_EQ(gT, hT);
        for (int i = 0; i < c.n; ++i) {
            ASSERT_TRUE(same_or_both_nan(gmu[i], hmu[i])) << "warm-up mu, arm " << i;
            ASSERT_TRUE(same_or_both_nan(gvar[i], hvar[i])) << "warm-up var, arm " << i;
        }
        g.eliminate(1);
        h.eliminate(1);
        gpu.steps().read_state(gmu, gvar, gT, gS);
        host.read_state(hmu, hvar, hT, hS);
        EXPECT_EQ(gS, hS) << "survivors after the first round";
        EXPECT_EQ(gT, hT) << "prefix lengths after the first round";
        EXPECT_EQ(g.cost().samples, h.cost().samples);
        for (int i = 0; i < c.n; ++i) {
            EXPECT_NEAR(gmu[i], hmu[i], 1e-5f * (1 + std::fabs(hmu[i]))) << "arm " << i;
            EXPECT_NEAR(gvar[i], hvar[i], 1e-5f * (1 + std::fabs(hvar[i]))) << "arm " << i;
        }
        EXPECT_EQ(gS[in.winner], 1);
    }
}

TEST(CudaAdaptiveHead, TopEqualsTheCpuPathAndTheExactArgmax) {
    SKIP_WITHOUT_GPU();
    int trial = 0;
    for (const Config& c : kConfigs)
        for (int q = 0; q < 3; ++q, ++trial) {
            const Instance in = planted(c.n, c.d, 500 + trial);
            auto H = std::make_shared<head::ColumnMajorHead>(in.A, c.n, c.d, c.q8);
            AdaptiveParams p;
            p.delta = q == 2 ? 0.1 : 0.01;
            p.seed = 11 + trial;
            head::FastAdaptiveSoftmax cpu(H, 1);
            ad::GpuAdaptiveHead gpu(H);
            const head::AdaptiveResult want = cpu.run(in.x, p), got = gpu.run(in.x, p); // both heads' first query: one seed
            const Exact ex = exact(*H, in.x, p.beta);
            SCOPED_TRACE(name(c) + " query " + std::to_string(q));
            ASSERT_EQ(got.head.top.size(), 1u);
            EXPECT_EQ(got.head.top, want.head.top);
            EXPECT_EQ(got.head.top[0], ex.argmax);
            EXPECT_NEAR(got.head.p_top, ex.p, p.epsilon * ex.p);
            EXPECT_NEAR(got.head.p_top, want.head.p_top, 1e-4);
            EXPECT_NEAR(got.head.log_norm, want.head.log_norm, 1e-4);
            EXPECT_EQ(got.cost.warmup, want.cost.warmup);
            EXPECT_EQ(got.cost.d_prime, want.cost.d_prime);
            // exact rows round differently, so a later decision may differ at its edge: counts compared loosely
            EXPECT_NEAR(static_cast<double>(got.cost.samples), static_cast<double>(want.cost.samples), 0.02 * want.cost.baseline);
        }
}

// The persistent query (one cooperative launch, the loop on the device) against the host-driven one over the same
// kernels' logic: the same decisions, so the same winner, the same bits of its logit and of the log-sum-exp, and the
// same sample counts per phase; with the default grid and with grids of 1 and 3 blocks, which give each block several
// chunks of arms (the default grid gives one per block wherever the device holds that many).
TEST(CudaAdaptiveHead, PersistentQueryEqualsTheHostDrivenOne) {
    SKIP_WITHOUT_GPU();
    int trial = 0;
    for (const Config& c : kConfigs)
        for (int q = 0; q < 3; ++q, ++trial) {
            // a planted winner, then flat logits with calibration-sized factors: many rounds, groups streamed and read
            // exactly, and a normalizer that has to read further (f_ln < 1)
            const Instance in = winnow::test::adaptive_instance(c.n, c.d, 700 + trial, q == 0);
            auto H = std::make_shared<head::ColumnMajorHead>(in.A, c.n, c.d, c.q8);
            AdaptiveParams p;
            p.delta = q == 2 ? 0.1 : 0.01;
            if (q > 0) p.fudge_best = q == 1 ? 0.15 : 0.1, p.fudge_norm = q == 1 ? 1.0 : 0.05;
            p.seed = 31 + trial;
            ad::GpuAdaptiveHead host_loop(H);
            const head::AdaptiveResult want = host_loop.run(in.x, p, ad::QueryLoop::host);
            for (int blocks : {0, 1, 3}) {
                ad::GpuAdaptiveHead gpu(H); // a fresh object: its first query, the same noise seed as host_loop's
                const head::AdaptiveResult got = gpu.run(in.x, p, ad::QueryLoop::persistent, blocks);
                SCOPED_TRACE(name(c) + " query " + std::to_string(q) + " blocks " + std::to_string(blocks));
                EXPECT_EQ(got.head.top, want.head.top);
                ASSERT_EQ(got.head.top_logits.size(), 1u);
                EXPECT_TRUE(same_or_both_nan(got.head.top_logits[0], want.head.top_logits[0]));
                EXPECT_EQ(got.head.log_norm, want.head.log_norm);
                EXPECT_EQ(got.head.p_top, want.head.p_top);
                EXPECT_EQ(got.cost.samples, want.cost.samples);
                EXPECT_EQ(got.cost.warmup, want.cost.warmup);
                EXPECT_EQ(got.cost.best_arm, want.cost.best_arm);
                EXPECT_EQ(got.cost.normalizer, want.cost.normalizer);
                EXPECT_EQ(got.cost.d_prime, want.cost.d_prime);
            }
        }
}

// A rotated head (head/rotation.h): the columns hold A R (from a PCA basis of random states, quantized to Q8_0 where the
// head is), the exact rows are the model's A, and queries come rotated (y = R^T x). The GPU head must turn y back for its
// exact rows: its top must be the model's exact argmax of A x and the CPU fast head's on the same rotated head, with
// the same warm-up count; the persistent loop must equal the host-driven one bit for bit.
TEST(CudaAdaptiveHead, RotatedHeadTopEqualsTheCpuPathAndTheModelsArgmax) {
    SKIP_WITHOUT_GPU();
    int trial = 0;
    for (const Config& c : {Config{true, 1000, 64}, Config{false, 4097, 64}, Config{true, 1000, 576}})
        for (int q = 0; q < 2; ++q, ++trial) {
            const Instance in = planted(c.n, c.d, 900 + trial);
            std::mt19937_64 rng(77 + trial);
            std::normal_distribution<float> nd(0.0f, 1.0f);
            std::vector<std::vector<float>> states(static_cast<size_t>(2 * c.d), std::vector<float>(c.d));
            for (auto& st : states)
                for (float& v : st) v = nd(rng);
            const head::HeadRotation rot = head::pca_rotation(states, c.d);
            const head::ColumnMajorHead model(in.A, c.n, c.d, c.q8); // the model's stored rows (outlives H)
            const std::vector<float> AR = head::rotate_head(model.dense(), c.n, rot);
            auto H = std::make_shared<head::ColumnMajorHead>(AR, c.n, c.d, c.q8, model.rows(), rot.R);
            const std::vector<float> y = head::rotate_query(in.x, rot);
            AdaptiveParams p;
            p.delta = q == 1 ? 0.1 : 0.01;
            p.seed = 41 + trial;
            head::FastAdaptiveSoftmax cpu(H, 1);
            ad::GpuAdaptiveHead host_loop(H), persistent(H); // each one's first query: the same noise seed
            const head::AdaptiveResult want = cpu.run(y, p), got = host_loop.run(y, p, ad::QueryLoop::host);
            const head::AdaptiveResult dev = persistent.run(y, p, ad::QueryLoop::persistent);
            const Exact ex = exact(model, in.x, p.beta);
            SCOPED_TRACE(name(c) + " query " + std::to_string(q));
            ASSERT_EQ(got.head.top.size(), 1u);
            EXPECT_EQ(got.head.top[0], ex.argmax);
            EXPECT_EQ(got.head.top, want.head.top);
            EXPECT_NEAR(got.head.p_top, ex.p, p.epsilon * ex.p);
            EXPECT_NEAR(got.head.log_norm, want.head.log_norm, 1e-4);
            EXPECT_EQ(got.cost.warmup, want.cost.warmup);
            EXPECT_EQ(dev.head.top, got.head.top);
            EXPECT_EQ(dev.head.log_norm, got.head.log_norm);
            EXPECT_EQ(dev.cost.samples, got.cost.samples);
        }
}

// A grid larger than the persistent query can use is refused with a message, and nothing is launched.
TEST(CudaAdaptiveHead, PersistentQueryRefusesAGridItCannotUse) {
    SKIP_WITHOUT_GPU();
    const Instance in = planted(1000, 64, 5);
    auto H = std::make_shared<head::ColumnMajorHead>(in.A, 1000, 64, true);
    ad::GpuAdaptiveHead gpu(H);
    AdaptiveParams p;
    try {
        gpu.run(in.x, p, ad::QueryLoop::persistent, 5); // 1000 arms: 4 chunks of 256
        ADD_FAILURE() << "5 blocks for 4 chunks were accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("at most 4"), std::string::npos) << e.what();
    }
    EXPECT_EQ(gpu.run(in.x, p).head.top[0], in.winner); // and the head still answers
}

// SmolLM2's head shape (49152 x 576, Q8_0): median time of a whole query in each loop, printed (the exact head's fused
// kernel is timed by CudaHead.TimePerCallOnSmolLM2Shape). The host-driven loop's per-step waits dominate it; the
// persistent loop is what has to beat the fused exact head.
TEST(CudaAdaptiveHead, TimePerQueryOnSmolLM2Shape) {
    SKIP_WITHOUT_GPU();
    const int n = 49152, d = 576;
    const Instance in = planted(n, d, 99);
    auto H = std::make_shared<head::ColumnMajorHead>(in.A, n, d, true);
    ad::GpuAdaptiveHead gpu(H);
    AdaptiveParams p;
    p.delta = 0.01;
    for (ad::QueryLoop loop : {ad::QueryLoop::persistent, ad::QueryLoop::host}) {
        std::mt19937 rng(3);
        std::normal_distribution<float> nd(0.0f, 0.05f);
        std::vector<double> us;
        int correct = 0;
        for (int q = 0; q < 30; ++q) {
            std::vector<float> x = in.x;
            for (auto& v : x) v += nd(rng);
            const auto t0 = std::chrono::steady_clock::now();
            const head::AdaptiveResult r = gpu.run(x, p, loop);
            us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
            correct += r.head.top[0] == in.winner;
        }
        std::sort(us.begin(), us.end());
        std::printf("adaptive head (cuda, %s) %d x %d q8: median %.1f us per query (30 queries, delta 0.01), planted winner found %d/30\n",
                    loop == ad::QueryLoop::persistent ? "persistent" : "host-driven", n, d, us[us.size() / 2], correct);
    }
}

} // namespace
