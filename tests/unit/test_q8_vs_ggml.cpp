// The q8 dot mode against ggml's own CPU kernels (tests/fixtures/quant_oracle.py writes qdot-<TYPE>.bin with
// llama-cpp-python's libggml-cpu, the pinned AVX2 build): for every weight type with an 8-bit-activation product,
//   - the activation quantized for it (Q8_0, Q8_1 or Q8_K) is ggml's, byte for byte;
//   - each row's dot product equals ggml's to fp32 rounding of the sum of |terms|, on every kernel this CPU runs
//     (the plain reference and the one-token SIMD rows). The integer sums are exact in both engines; only the order of
//     the float additions differs. A wrong scale, min, bit or sub-block gives errors the size of a term.
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cpu/gemm.h"
#include "backend/cpu/vec_dot_q8.h"
#include "io/quant.h"

namespace winnow::cpu {
namespace {

struct DotCase {
    GgmlType type{};
    uint32_t rows = 0, cols = 0, row_bytes = 0;
    std::vector<uint8_t> weights, xq;
    std::vector<float> x, dots;
};

DotCase read_dot_case(const std::string& name) {
    const std::string path = std::string(WINNOW_FIXTURE_DIR) + "/qdot-" + name + ".bin";
    std::ifstream in(path, std::ios::binary);
    DotCase c;
    if (!in.good()) {
        ADD_FAILURE() << "missing " << path << " (written by tests/fixtures/quant_oracle.py)";
        return c;
    }
    char magic[4];
    uint32_t header[6];
    in.read(magic, 4);
    in.read(reinterpret_cast<char*>(header), sizeof(header));
    EXPECT_EQ(std::memcmp(magic, "WQDT", 4), 0) << path;
    EXPECT_EQ(header[0], 1u) << path;
    c.type = static_cast<GgmlType>(header[1]);
    c.rows = header[2], c.cols = header[3], c.row_bytes = header[4];
    c.weights.resize(static_cast<size_t>(c.rows) * c.row_bytes);
    c.x.resize(c.cols);
    c.xq.resize(header[5]);
    c.dots.resize(c.rows);
    in.read(reinterpret_cast<char*>(c.weights.data()), static_cast<std::streamsize>(c.weights.size()));
    in.read(reinterpret_cast<char*>(c.x.data()), static_cast<std::streamsize>(c.x.size() * 4));
    in.read(reinterpret_cast<char*>(c.xq.data()), static_cast<std::streamsize>(c.xq.size()));
    in.read(reinterpret_cast<char*>(c.dots.data()), static_cast<std::streamsize>(c.dots.size() * 4));
    EXPECT_TRUE(in.good()) << path << " is truncated";
    EXPECT_EQ(c.weights.size(), c.rows * ggml_row_bytes(c.type, c.cols)) << path;
    return c;
}

// The scale of a row's dot product: the sum of |w x| over the decoded weights and the dequantized activation.
double magnitude(const DotCase& c, uint32_t r) {
    std::vector<float> w(c.cols);
    dequantize_row(c.type, c.weights.data() + static_cast<size_t>(r) * c.row_bytes, w.data(), c.cols);
    double m = 0;
    for (uint32_t i = 0; i < c.cols; ++i) m += std::fabs(static_cast<double>(w[i]) * c.x[i]);
    return m;
}

class Q8VsGgml : public ::testing::TestWithParam<const char*> {
protected:
    void TearDown() override { gemm_q8_force_kernel(GemmQ8Kernel::automatic); }
};

TEST_P(Q8VsGgml, ActivationQuantizedAsGgmlDoes) {
    const DotCase c = read_dot_case(GetParam());
    if (HasFailure()) return;
    ASSERT_TRUE(has_q8_path(c.type));
    ASSERT_EQ(q8_activation_bytes(c.type, c.cols), c.xq.size());
    std::vector<uint8_t> ours(c.xq.size());
    quantize_activation_q8(c.type, c.x.data(), c.cols, ours.data());
    for (size_t i = 0; i < ours.size(); ++i) ASSERT_EQ(ours[i], c.xq[i]) << GetParam() << ": activation byte " << i;
}

TEST_P(Q8VsGgml, DotProductsEqualGgmlsOnEveryKernel) {
    const DotCase c = read_dot_case(GetParam());
    if (HasFailure()) return;
    Matrix w;
    w.type = c.type, w.rows = c.rows, w.cols = c.cols, w.row_bytes = c.row_bytes, w.data = c.weights.data(), w.name = GetParam();
    std::vector<double> tol(c.rows);
    for (uint32_t r = 0; r < c.rows; ++r) tol[r] = 1e-6 * magnitude(c, r) + 1e-30;
    for (uint32_t r = 0; r < c.rows; ++r) // the plain reference on ggml's own activation bytes
        EXPECT_NEAR(vec_dot_q8(c.type, c.weights.data() + static_cast<size_t>(r) * c.row_bytes, c.xq.data(), c.cols), c.dots[r], tol[r])
            << GetParam() << " row " << r << " (vec_dot_q8)";
    GemmQ8Scratch scratch;
    for (GemmQ8Kernel k : {GemmQ8Kernel::scalar, GemmQ8Kernel::avx2, GemmQ8Kernel::avx512_vnni}) {
        if (!gemm_q8_kernel_available(k)) continue;
        gemm_q8_force_kernel(k);
        std::vector<float> y(c.rows);
        gemv_q8(w, nullptr, c.x.data(), y.data(), 2, scratch);
        for (uint32_t r = 0; r < c.rows; ++r)
            EXPECT_NEAR(y[r], c.dots[r], tol[r]) << GetParam() << " row " << r << " (gemv_q8, " << gemm_q8_kernel_name(k) << ")";
    }
}

// A diverged model's Inf or NaN activations give garbage products, but their quantization stays defined behaviour
// (UBSan's float-cast-overflow checks it in scripts/sanitize.sh): every quant in range, finite blocks untouched.
TEST_P(Q8VsGgml, NonFiniteActivationsQuantizeWithoutUndefinedBehaviour) {
    const DotCase c = read_dot_case(GetParam());
    if (HasFailure()) return;
    std::vector<float> x = c.x;
    x[1] = std::numeric_limits<float>::infinity();
    x[2] = std::numeric_limits<float>::quiet_NaN();
    x[c.cols - 1] = -std::numeric_limits<float>::infinity();
    std::vector<uint8_t> q(c.xq.size());
    quantize_activation_q8(c.type, x.data(), c.cols, q.data());
    const size_t last_block = uses_q8_k(c.type) ? c.xq.size() - sizeof(BlockQ8_K) : c.xq.size() - q8_activation_bytes(c.type, 32);
    // the blocks between the first and the last hold only finite values: quantized as before
    for (size_t i = uses_q8_k(c.type) ? sizeof(BlockQ8_K) : q8_activation_bytes(c.type, 32); i < last_block; ++i) ASSERT_EQ(q[i], c.xq[i]) << i;
}

INSTANTIATE_TEST_SUITE_P(WeightTypes, Q8VsGgml, ::testing::Values("Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K", "Q2_K", "Q3_K", "IQ4_NL", "IQ4_XS"));

} // namespace
} // namespace winnow::cpu
