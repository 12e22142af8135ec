// Prefill's split products (src/backend/cuda/split_product.h) where the op harness does not reach: the tokens taken in
// chunks (the fp32 result bounded by WINNOW_CUDA_SPLIT_PRODUCT_BYTES; 256 MiB by default, which no harness shape
// fills), against the double reference and against one chunk; and the split path against the fp32 sgemm it replaced
// (WINNOW_CUDA_SPLIT_PRODUCTS=0). Skips without a GPU.
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cuda/device.h"
#include "device_matrix.h"
#include "winnow/error.h"

namespace {

using namespace winnow;

class CudaSplitProduct : public ::testing::TestWithParam<GgmlType> {
protected:
    void SetUp() override {
        if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
    }
};

// An environment variable set for the backends made while this lives (the backend reads its switches when it is made).
struct Env {
    Env(const char* name, const std::string& value) : name_(name) { setenv(name, value.c_str(), 1); }
    ~Env() { unsetenv(name_); }
    const char* name_;
};

constexpr int64_t kSplitRows = 37, kSplitCols = 160;
constexpr int kTokens = 21;

std::vector<float> randn(size_t n, unsigned seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = nd(rng);
    return v;
}

// y = W x + b for kTokens tokens on a backend made now (with whatever switches are set), downloaded.
std::vector<float> product(GgmlType type, const std::vector<float>& w, const std::vector<float>& x, const std::vector<float>& b) {
    auto be = make_backend({.device = Device::cuda});
    Tensor storage;
    const Matrix m = gpu_test::place_matrix(*be, type, kSplitRows, kSplitCols, w, storage);
    const Tensor xt = be->alloc(GgmlType::F32, kTokens, kSplitCols), yt = be->alloc(GgmlType::F32, kTokens, kSplitRows), bt = be->alloc(GgmlType::F32, 1, kSplitRows);
    be->upload(x.data(), xt);
    be->upload(b.data(), bt);
    be->linear(m, &bt, xt, yt);
    std::vector<float> y(static_cast<size_t>(kTokens * kSplitRows));
    be->download(yt, y.data());
    return y;
}

// The largest |y - ref| over the tokens and rows, relative to the row's sum of |w x| + |b|.
double worst_relative_error(GgmlType type, const std::vector<float>& w, const std::vector<float>& x, const std::vector<float>& b,
                            const std::vector<float>& y) {
    // the weights as the device decodes them
    const size_t rb = ggml_row_bytes(type, kSplitCols);
    std::vector<uint8_t> bytes(rb);
    std::vector<float> wd(w.size());
    for (int64_t r = 0; r < kSplitRows; ++r) {
        quantize_row_ref(type, w.data() + r * kSplitCols, bytes.data(), kSplitCols);
        dequantize_row(type, bytes.data(), wd.data() + r * kSplitCols, kSplitCols);
    }
    double worst = 0;
    for (int t = 0; t < kTokens; ++t)
        for (int64_t r = 0; r < kSplitRows; ++r) {
            double ref = b[r], scale = std::fabs(b[r]);
            for (int64_t c = 0; c < kSplitCols; ++c) {
                ref += static_cast<double>(wd[r * kSplitCols + c]) * x[t * kSplitCols + c];
                scale += std::fabs(static_cast<double>(wd[r * kSplitCols + c]) * x[t * kSplitCols + c]);
            }
            worst = std::max(worst, std::fabs(y[t * kSplitRows + r] - ref) / scale);
        }
    return worst;
}

int weight_slices(GgmlType t) { return t == GgmlType::BF16 ? 1 : 2; }

TEST_P(CudaSplitProduct, ChunkedTokensAgreeWithOneChunkAndTheReference) {
    const GgmlType type = GetParam();
    const auto w = randn(kSplitRows * kSplitCols, 1), x = randn(kTokens * kSplitCols, 2, 3.0f), b = randn(kSplitRows, 3, 0.1f);
    const auto whole = product(type, w, x, b);
    // 4 tokens a chunk: five chunks of 4 and a last one of 1
    const Env small("WINNOW_CUDA_SPLIT_PRODUCT_BYTES", std::to_string(4 * weight_slices(type) * kSplitRows * 3 * 4));
    const auto chunked = product(type, w, x, b);
    // fp32 accumulation of 160 exact products: within 160 * 2^-24 of the scale (a token mixed up with another, or a
    // chunk's rows shifted, is off by the whole value)
    const double bound = kSplitCols * std::ldexp(1.0, -24);
    EXPECT_LT(worst_relative_error(type, w, x, b, whole), bound);
    EXPECT_LT(worst_relative_error(type, w, x, b, chunked), bound);
    double diff = 0;
    for (size_t i = 0; i < whole.size(); ++i) diff = std::max(diff, static_cast<double>(std::fabs(whole[i] - chunked[i])));
    EXPECT_LT(diff, 1e-4);
}

TEST_P(CudaSplitProduct, AsCloseToTheReferenceAsTheSgemm) {
    const GgmlType type = GetParam();
    const auto w = randn(kSplitRows * kSplitCols, 4), x = randn(kTokens * kSplitCols, 5, 3.0f), b = randn(kSplitRows, 6, 0.1f);
    const auto split = product(type, w, x, b);
    const Env off("WINNOW_CUDA_SPLIT_PRODUCTS", "0");
    const auto sgemm = product(type, w, x, b);
    const double e_split = worst_relative_error(type, w, x, b, split), e_sgemm = worst_relative_error(type, w, x, b, sgemm);
    EXPECT_LT(e_split, kSplitCols * std::ldexp(1.0, -24));
    EXPECT_LT(e_sgemm, kSplitCols * std::ldexp(1.0, -24));
    std::printf("%s: worst error relative to sum |w x|: split products %.3g, fp32 sgemm %.3g\n", ggml_type_name(type), e_split, e_sgemm);
}

// A long inner dimension with every w and x positive, where a rounding that always goes one way (tensor cores do not
// promise round-to-nearest inside their accumulation) adds up fastest: the split products must stay within fp32's
// recursive-summation bound, (k - 1) * 2^-24 of sum |w x|, as the pedantic sgemm does. Both errors are printed.
TEST(CudaSplitProductLongSums, PositiveTermsStayWithinTheFp32Bound) {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
    constexpr int64_t rows = 16, cols = 8192;
    constexpr int n = 9;
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    std::vector<float> w(rows * cols), x(n * cols);
    for (auto& v : w) v = u(rng);
    for (auto& v : x) v = u(rng);
    auto run = [&] {
        auto be = make_backend({.device = Device::cuda});
        Tensor storage;
        const Matrix m = gpu_test::place_matrix(*be, GgmlType::BF16, rows, cols, w, storage);
        const Tensor xt = be->alloc(GgmlType::F32, n, cols), yt = be->alloc(GgmlType::F32, n, rows);
        be->upload(x.data(), xt);
        be->linear(m, nullptr, xt, yt);
        std::vector<float> y(static_cast<size_t>(n * rows));
        be->download(yt, y.data());
        return y;
    };
    const auto split = run();
    std::vector<float> sgemm;
    {
        const Env off("WINNOW_CUDA_SPLIT_PRODUCTS", "0");
        sgemm = run();
    }
    double e_split = 0, e_sgemm = 0;
    for (int t = 0; t < n; ++t)
        for (int64_t r = 0; r < rows; ++r) {
            double ref = 0;
            for (int64_t c = 0; c < cols; ++c) ref += static_cast<double>(bf16_to_fp32(fp32_to_bf16(w[r * cols + c]))) * x[t * cols + c];
            e_split = std::max(e_split, std::fabs(split[t * rows + r] - ref) / ref);
            e_sgemm = std::max(e_sgemm, std::fabs(sgemm[t * rows + r] - ref) / ref);
        }
    std::printf("k = %lld, positive terms: worst relative error split products %.3g, fp32 sgemm %.3g (bound %.3g)\n", static_cast<long long>(cols),
                e_split, e_sgemm, (cols - 1) * std::ldexp(1.0, -24));
    EXPECT_LT(e_split, (cols - 1) * std::ldexp(1.0, -24));
    EXPECT_LT(e_sgemm, (cols - 1) * std::ldexp(1.0, -24));
}

// An infinite activation: its second and third slices are 0, and 0 times a weight slice pairs with inf elsewhere; the
// outputs must be the fp32 sgemm's infinities (split_product::finish recomputes a NaN from the unsplit values), and a
// NaN activation must stay NaN.
TEST_P(CudaSplitProduct, NonFiniteActivationsGiveTheSgemmsValues) {
    const GgmlType type = GetParam();
    auto w = randn(kSplitRows * kSplitCols, 7);
    for (auto& v : w) v = std::fabs(v) + 0.01f; // positive: a product with +inf is +inf, unless the weight rounds to 0
    auto x = randn(kTokens * kSplitCols, 8), b = randn(kSplitRows, 9, 0.1f);
    x[5] = INFINITY;            // token 0
    x[kSplitCols + 7] = -INFINITY;   // token 1
    x[2 * kSplitCols + 9] = NAN;     // token 2
    const auto split = product(type, w, x, b);
    const Env off("WINNOW_CUDA_SPLIT_PRODUCTS", "0");
    const auto sgemm = product(type, w, x, b);
    // (a weight quantized to 0 makes 0 * inf = NaN on both paths: Q4_0's smallest values)
    int infinities = 0;
    for (int64_t r = 0; r < kSplitRows; ++r) {
        EXPECT_TRUE(std::isnan(split[2 * kSplitRows + r])) << "token 2 row " << r;
        for (int t = 0; t < 2; ++t) {
            const float sp = split[t * kSplitRows + r], sg = sgemm[t * kSplitRows + r];
            if (std::isnan(sg)) EXPECT_TRUE(std::isnan(sp)) << "token " << t << " row " << r;
            else EXPECT_EQ(sp, sg) << "token " << t << " row " << r;
            infinities += std::isinf(sp);
        }
    }
    EXPECT_GT(infinities, kSplitRows);
}

TEST(CudaSplitProductSwitch, ABadChunkBoundIsRefused) {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
    for (const char* bad : {"0", "-5", "12x", ""}) {
        const Env e("WINNOW_CUDA_SPLIT_PRODUCT_BYTES", bad);
        EXPECT_THROW(make_backend({.device = Device::cuda}), Error) << "'" << bad << "'";
    }
}

INSTANTIATE_TEST_SUITE_P(SplitTypes, CudaSplitProduct, ::testing::Values(GgmlType::BF16, GgmlType::F16, GgmlType::Q4_0, GgmlType::Q4_1),
                         [](const auto& info) { return std::string(ggml_type_name(info.param)); });

} // namespace
