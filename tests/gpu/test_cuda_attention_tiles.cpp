// Prefill attention's key tiles (src/backend/cuda/attention_tiles.cu) where the op harness's random finite caches do
// not reach: an infinite value in a later token's cache row must not reach the rows before it. The tile a row ends in
// holds later tokens' keys too (up to the block's last row); their weight for the row is 0, and 0 * inf would be NaN.
// Against the CPU backend on the same inputs (its rows only ever read keys up to their own position). Skips without
// a GPU.
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cuda/device.h"

namespace {

using namespace winnow;

class CudaAttentionTiles : public ::testing::TestWithParam<GgmlType> {
protected:
    void SetUp() override {
        if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
    }
};

constexpr int kRows = 32, kHeads = 4, kKvHeads = 2, kHeadDim = 64, kInfRow = 20;

// The op's output for kRows prefill rows at position 0 on `be`, with value (kInfRow, first dimension) set to 1e30
// (an infinity in an F16 cache; 1e30 * a softmax weight of 0 is still 0 in F32, so the F32 case uses +inf itself).
std::vector<float> attend(Backend& be, GgmlType cache_type, int window = 0, int inf_row = kInfRow) {
    const int qd = kHeads * kHeadDim, kvd = kKvHeads * kHeadDim;
    std::mt19937 rng(11);
    std::normal_distribution<float> nd;
    std::vector<float> q(static_cast<size_t>(kRows) * qd), k(static_cast<size_t>(kRows) * kvd), v(k.size());
    for (auto* vec : {&q, &k, &v})
        for (auto& x : *vec) x = nd(rng);
    v[static_cast<size_t>(inf_row) * kvd] = cache_type == GgmlType::F32 ? INFINITY : 1e30f;
    auto put = [&](const std::vector<float>& host, int64_t rows, int64_t cols) {
        Tensor t = be.alloc(GgmlType::F32, rows, cols);
        be.upload(host.data(), t);
        return t;
    };
    const Tensor qt = put(q, kRows, qd), ks = put(k, kRows, kvd), vs = put(v, kRows, kvd), out = be.alloc(GgmlType::F32, kRows, qd);
    const Tensor kc = be.alloc(cache_type, kRows, kvd), vc = be.alloc(cache_type, kRows, kvd);
    be.copy_rows(ks, kc, 0);
    be.copy_rows(vs, vc, 0);
    AttentionParams p;
    p.n_head = kHeads;
    p.n_head_kv = kKvHeads;
    p.head_dim = kHeadDim;
    p.window = window;
    be.attention(qt, kc, vc, out, p);
    std::vector<float> o(static_cast<size_t>(kRows) * qd);
    be.download(out, o.data());
    return o;
}

TEST_P(CudaAttentionTiles, ALaterInfiniteValueLeavesEarlierRowsFinite) {
    const GgmlType type = GetParam();
    auto gpu = make_backend({.device = Device::cuda});
    auto cpu = make_backend({.device = Device::cpu});
    const auto g = attend(*gpu, type), c = attend(*cpu, type);
    const int qd = kHeads * kHeadDim;
    for (int t = 0; t < kInfRow; ++t)
        for (int i = 0; i < qd; ++i) {
            const size_t at = static_cast<size_t>(t) * qd + i;
            ASSERT_TRUE(std::isfinite(g[at])) << "row " << t << " value " << i << ": " << g[at];
            ASSERT_NEAR(g[at], c[at], 1e-5f * (1.0f + std::fabs(c[at]))) << "row " << t << " value " << i;
        }
}

// With a sliding window of 8: an earlier token's (row 3's) infinite value must not reach the rows whose window has
// passed it (rows 11 on), though their key tile (keys 0-31) holds it with weight 0; the rows of its window are skipped
TEST_P(CudaAttentionTiles, AnInfiniteValueBeforeTheWindowLeavesLaterRowsFinite) {
    constexpr int kWindow = 8, kEarlyInf = 3;
    const GgmlType type = GetParam();
    auto gpu = make_backend({.device = Device::cuda});
    auto cpu = make_backend({.device = Device::cpu});
    const auto g = attend(*gpu, type, kWindow, kEarlyInf), c = attend(*cpu, type, kWindow, kEarlyInf);
    const int qd = kHeads * kHeadDim;
    for (int t = 0; t < kRows; ++t) {
        if (t >= kEarlyInf && t < kEarlyInf + kWindow) continue;
        for (int i = 0; i < qd; ++i) {
            const size_t at = static_cast<size_t>(t) * qd + i;
            ASSERT_TRUE(std::isfinite(g[at])) << "row " << t << " value " << i << ": " << g[at];
            ASSERT_NEAR(g[at], c[at], 1e-5f * (1.0f + std::fabs(c[at]))) << "row " << t << " value " << i;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(CacheTypes, CudaAttentionTiles, ::testing::Values(GgmlType::F32, GgmlType::F16),
                         [](const auto& info) { return std::string(ggml_type_name(info.param)); });

} // namespace
