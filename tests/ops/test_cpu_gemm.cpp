// The CPU prefill products (backend/cpu/gemm.h) against the per-row paths they replace. Every q8 kernel this CPU
// can run must give exactly the bits of vec_dot_q8 (same lanes, same order of additions), on shapes with leftover
// rows and tokens; the fp32 product (OpenBLAS, another summation order) must agree with the per-row fp32 dot
// products to fp32 rounding.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cpu/gemm.h"
#include "backend/cpu/simd.h"
#include "backend/cpu/vec_dot.h"
#include "backend/cpu/vec_dot_q8.h"
#include "io/ggml_type.h"
#include "io/quant.h"

namespace winnow::cpu {
namespace {

struct Weights {
    std::vector<uint8_t> bytes;
    Matrix m;
};

Weights random_weights(GgmlType type, int64_t rows, int64_t cols, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 0.05f);
    Weights w;
    const size_t row_bytes = ggml_row_bytes(type, static_cast<uint64_t>(cols));
    w.bytes.resize(row_bytes * rows);
    std::vector<float> row(cols);
    for (int64_t r = 0; r < rows; ++r) {
        for (auto& v : row) v = nd(rng);
        if (type == GgmlType::F32) std::memcpy(w.bytes.data() + r * row_bytes, row.data(), row_bytes);
        else quantize_row_ref(type, row.data(), w.bytes.data() + r * row_bytes, cols);
    }
    w.m.type = type, w.m.rows = rows, w.m.cols = cols, w.m.row_bytes = row_bytes, w.m.data = w.bytes.data(), w.m.name = "test";
    return w;
}

std::vector<float> random_activations(int n_tokens, int64_t cols, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(n_tokens * cols);
    for (auto& v : x) v = nd(rng);
    return x;
}

// y as the per-row q8 path computes it
std::vector<float> rowwise_q8(const Matrix& w, const std::vector<float>& bias, const std::vector<float>& x, int n_tokens) {
    const size_t xq_bytes = q8_activation_bytes(w.type, w.cols);
    std::vector<uint8_t> xq(xq_bytes * n_tokens);
    for (int t = 0; t < n_tokens; ++t) quantize_activation_q8(w.type, x.data() + t * w.cols, w.cols, xq.data() + t * xq_bytes);
    std::vector<float> y(n_tokens * w.rows);
    for (int64_t r = 0; r < w.rows; ++r)
        for (int t = 0; t < n_tokens; ++t) y[t * w.rows + r] = vec_dot_q8(w.type, w.row(r), xq.data() + t * xq_bytes, w.cols) + bias[r];
    return y;
}

class GemmQ8 : public ::testing::TestWithParam<GemmQ8Kernel> {
protected:
    void TearDown() override { gemm_q8_force_kernel(GemmQ8Kernel::automatic); }
};

TEST_P(GemmQ8, BitIdenticalToPerRowDotProducts) {
    const GemmQ8Kernel kernel = GetParam();
    if (!gemm_q8_kernel_available(kernel)) GTEST_SKIP() << gemm_q8_kernel_name(kernel) << " is not available on this CPU";
    gemm_q8_force_kernel(kernel);
    GemmQ8Scratch scratch;
    for (GgmlType type : {GgmlType::Q4_1, GgmlType::Q4_0, GgmlType::Q8_0})
        for (auto [rows, cols] : {std::pair<int64_t, int64_t>{37, 160}, {192, 576}, {6, 1536}})
            for (int n_tokens : {2, 3, 4, 7, 9, 70}) {
                const Weights w = random_weights(type, rows, cols, 3 + static_cast<unsigned>(rows + n_tokens));
                const auto x = random_activations(n_tokens, cols, 11 + n_tokens);
                const auto bias = random_activations(1, rows, 5);
                std::vector<float> y(n_tokens * rows);
                for (int threads : {1, 2}) {
                    gemm_q8(w.m, bias.data(), x.data(), n_tokens, y.data(), threads, scratch);
                    const auto want = rowwise_q8(w.m, bias, x, n_tokens);
#ifdef WINNOW_AVX2
                    // vec_dot_q8 is the AVX2 lane order: every SIMD kernel gives its bits exactly
                    const bool exact = kernel != GemmQ8Kernel::scalar;
#else
                    const bool exact = false;
#endif
                    for (size_t i = 0; i < y.size(); ++i) {
                        if (exact) ASSERT_EQ(y[i], want[i]) << ggml_type_name(type) << " " << rows << "x" << cols << " t" << n_tokens << " at " << i;
                        else ASSERT_NEAR(y[i], want[i], 1e-5f * (1.0f + std::fabs(want[i]))) << ggml_type_name(type) << " at " << i;
                    }
                }
            }
}

// The one-token product adds the blocks' scaled sums in another order than vec_dot_q8 (each block's integer dot
// product is exact in both), so it agrees to fp32 rounding of the sum of |block terms|; a wrong block, scale,
// offset or saturating product gives errors of the size of a term. The preset types (Q5_0, Q5_1 and the K-quants)
// are held to vec_dot_q8's plain reference here and to ggml's own kernels in tests/unit/test_q8_vs_ggml.cpp.
TEST_P(GemmQ8, OneTokenMatchesPerRowDotProducts) {
    const GemmQ8Kernel kernel = GetParam();
    if (!gemm_q8_kernel_available(kernel)) GTEST_SKIP() << gemm_q8_kernel_name(kernel) << " is not available on this CPU";
    gemm_q8_force_kernel(kernel);
    GemmQ8Scratch scratch;
    for (GgmlType type : {GgmlType::Q4_1, GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K,
                          GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_NL, GgmlType::IQ4_XS})
        for (auto [rows, cols] : {std::pair<int64_t, int64_t>{37, 160}, {192, 576}, {64, 1536}, {5, 32}, {24, 2560}, {3, 256}}) {
            if (cols % static_cast<int64_t>(ggml_type_traits(static_cast<uint32_t>(type))->block_size) != 0) continue; // K-quants: rows of whole 256-weight super-blocks
            const Weights w = random_weights(type, rows, cols, 7 + static_cast<unsigned>(rows));
            auto x = random_activations(1, cols, 13);
            x[3] = 40.0f; // one large activation per first block: its quants saturate toward +-127 (the maddubs range)
            const auto bias = random_activations(1, rows, 5);
            std::vector<float> y(rows);
            for (int threads : {1, 2}) {
                gemv_q8(w.m, bias.data(), x.data(), y.data(), threads, scratch);
                const auto want = rowwise_q8(w.m, bias, x, 1);
                for (int64_t r = 0; r < rows; ++r) {
                    std::vector<float> wrow(cols);
                    dequantize_row(type, w.m.row(r), wrow.data(), cols);
                    double mag = std::fabs(bias[r]);
                    for (int64_t c = 0; c < cols; ++c) mag += std::fabs(wrow[c] * x[c]);
                    ASSERT_NEAR(y[r], want[r], 2e-6 * mag) << ggml_type_name(type) << " " << rows << "x" << cols << " row " << r;
                }
            }
        }
}

INSTANTIATE_TEST_SUITE_P(Kernels, GemmQ8, ::testing::Values(GemmQ8Kernel::scalar, GemmQ8Kernel::avx2, GemmQ8Kernel::avx512_vnni),
                         [](const auto& info) { return std::string(gemm_q8_kernel_name(info.param)) == "avx512-vnni" ? std::string("avx512_vnni") : std::string(gemm_q8_kernel_name(info.param)); });

TEST(GemmQ8Dispatch, PicksTheWidestKernelTheCpuHas) {
    const GemmQ8Kernel k = gemm_q8_kernel_in_use();
    EXPECT_TRUE(gemm_q8_kernel_available(k));
    if (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw")) {
        EXPECT_EQ(k, GemmQ8Kernel::avx512_vnni);
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        EXPECT_EQ(k, GemmQ8Kernel::avx2);
    }
}

// The default dot mode (automatic) is q8's decode product and f32's prefill product, bit for bit: what each phase
// measured fastest (bench/reports/dot-default-cpu.md)
TEST(CpuDotAuto, DecodeIsQ8PrefillIsF32) {
    for (GgmlType type : {GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4_K}) {
        const Weights w = random_weights(type, 96, 512, 41);
        auto run = [&](CpuDotMode mode, int n_tokens) {
            auto be = make_cpu_backend(2, mode);
            const auto x = random_activations(n_tokens, w.m.cols, 42);
            Tensor xt = be->alloc(GgmlType::F32, n_tokens, w.m.cols), yt = be->alloc(GgmlType::F32, n_tokens, w.m.rows);
            be->upload(x.data(), xt);
            be->linear(w.m, nullptr, xt, yt);
            std::vector<float> y(static_cast<size_t>(n_tokens) * w.m.rows);
            be->download(yt, y.data());
            return y;
        };
        for (int n : {1, 7}) {
            const auto a = run(CpuDotMode::automatic, n), q8 = run(CpuDotMode::q8, n), f32 = run(CpuDotMode::f32, n);
            EXPECT_EQ(a, n == 1 ? q8 : f32) << ggml_type_name(type) << ", " << n << " tokens";
            if (n == 7 && type != GgmlType::Q4_K) {
                EXPECT_NE(q8, f32) << ggml_type_name(type) << ": the modes must differ for this test to tell them apart";
            }
        }
        EXPECT_NE(run(CpuDotMode::q8, 1), run(CpuDotMode::f32, 1)) << ggml_type_name(type);
    }
}

TEST(GemmF32, MatchesPerRowDotProducts) {
    for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_1, GgmlType::Q8_0})
        for (int n_tokens : {2, 5, 64}) {
            const int64_t rows = 300, cols = 576; // more rows than one decoded block, and a partial last block
            const Weights w = random_weights(type, rows, cols, 17);
            const auto x = random_activations(n_tokens, cols, 23);
            const auto bias = random_activations(1, rows, 29);
            std::vector<float> y(n_tokens * rows), wrow(cols);
            gemm_f32(w.m, bias.data(), x.data(), n_tokens, y.data(), 2);
            for (int64_t r = 0; r < rows; ++r) {
                dequantize_row(type, w.m.row(r), wrow.data(), cols);
                for (int t = 0; t < n_tokens; ++t) {
                    double want = bias[r], mag = std::fabs(bias[r]);
                    for (int64_t c = 0; c < cols; ++c) want += static_cast<double>(wrow[c]) * x[t * cols + c], mag += std::fabs(wrow[c] * x[t * cols + c]);
                    // fp32 accumulation of 576 terms in any order: |error| <= ~cols * 2^-24 * sum|terms|; a wrong row or
                    // token gives errors of the size of the terms
                    ASSERT_NEAR(y[t * rows + r], want, 1e-4 * mag + 1e-6) << ggml_type_name(type) << " row " << r << " token " << t;
                }
            }
        }
}

} // namespace
} // namespace winnow::cpu
