// The kernels of vec_dot's quantized rows (the f32 dot mode's decode, backend/cpu/vec_dot.h): each one this CPU can
// run against a double-precision dot product of the dequantized row (gguf-py's layouts, io/quant.cpp; the preset
// types Q5_0 ... Q6_K too, since winnow encodes them), on row lengths
// with and without a remainder after the kernels' groups of 8 or 16 blocks, with offsets that make Q4_1's m and Q4_0's
// -8 d terms matter; and the run-time choice against the CPU's flags as /proc/cpuinfo lists them.
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cpu/vec_dot.h"
#include "io/ggml_type.h"
#include "io/quant.h"
#include "winnow/error.h"

namespace winnow::cpu {
namespace {

struct Case {
    VecDotKernel kernel;
    GgmlType type;
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
    return std::string(info.param.kernel == VecDotKernel::avx512 ? "avx512" : "baseline") + "_" + ggml_type_name(info.param.type);
}

class VecDotKernels : public ::testing::TestWithParam<Case> {
protected:
    void TearDown() override { vec_dot_force_kernel(VecDotKernel::automatic); }
};

TEST_P(VecDotKernels, MatchDoublePrecisionOnEveryRowLength) {
    const auto [kernel, type] = GetParam();
    if (!vec_dot_kernel_available(kernel)) {
        GTEST_SKIP() << vec_dot_kernel_name(kernel) << " is not available on this CPU";
    }
    vec_dot_force_kernel(kernel);
    ASSERT_EQ(vec_dot_kernel_in_use(), kernel);
    std::mt19937 rng(41);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    // 1..49 blocks: below, at and past the groups of 8 (AVX2) and 16 (AVX-512) blocks, SmolLM2's 18 and 48 included;
    // the K-quants' super-blocks of 256: 1..9
    const size_t block = ggml_type_traits(static_cast<uint32_t>(type))->block_size;
    for (size_t blocks = 1; blocks <= (block == 32 ? 49u : 9u); ++blocks) {
        const size_t n = blocks * block;
        std::vector<float> w(n), x(n), deq(n);
        // weights with an offset per block (Q4_1's m), activations with a mean (the block sums' term)
        for (size_t i = 0; i < n; ++i) w[i] = 0.3f * nd(rng) + (i / 32 % 3 == 0 ? 0.5f : -0.2f), x[i] = nd(rng) + 0.25f;
        std::vector<uint8_t> row(ggml_row_bytes(type, n));
        quantize_row_ref(type, w.data(), row.data(), n);
        dequantize_row(type, row.data(), deq.data(), n);
        double ref = 0.0, mag = 0.0;
        for (size_t i = 0; i < n; ++i) ref += static_cast<double>(deq[i]) * x[i], mag += std::abs(static_cast<double>(deq[i]) * x[i]);
        PreparedActivation px;
        prepare_activation(type, x.data(), n, px);
        const float ours = vec_dot(type, row.data(), px, n);
        // fp32 accumulation over n products: a few units of rounding of the absolute sum
        EXPECT_NEAR(ours, ref, 4e-7 * mag * std::sqrt(static_cast<double>(n)) + 1e-6) << blocks << " blocks";
    }
}

std::vector<Case> all_cases() {
    std::vector<Case> cases;
    for (VecDotKernel k : {VecDotKernel::baseline, VecDotKernel::avx512})
        for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K,
                           GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_NL, GgmlType::IQ4_XS})
            if (k == VecDotKernel::baseline || !is_preset_type(t)) cases.push_back({k, t}); // the preset types have no AVX-512 kernel
    return cases;
}

INSTANTIATE_TEST_SUITE_P(Kernels, VecDotKernels, ::testing::ValuesIn(all_cases()), case_name);

// The CPU's flags as the kernel lists them (independent of the __builtin_cpu_supports the choice uses).
std::string cpu_flags() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("flags", 0) == 0) return line.substr(line.find(':') + 1) + " ";
    return {};
}

TEST(VecDotKernelChoice, AutomaticTakesAvx512ExactlyWhereTheCpuHasIt) {
    const std::string flags = cpu_flags();
    ASSERT_FALSE(flags.empty()) << "no flags line in /proc/cpuinfo";
    const bool avx512 = flags.find(" avx512f ") != std::string::npos;
    EXPECT_EQ(vec_dot_kernel_available(VecDotKernel::avx512), avx512);
    vec_dot_force_kernel(VecDotKernel::automatic);
    if (std::getenv("WINNOW_CPU_DOT_KERNEL")) {
        GTEST_SKIP() << "WINNOW_CPU_DOT_KERNEL is set: the environment chooses the kernel";
    }
    EXPECT_EQ(vec_dot_kernel_in_use(), avx512 ? VecDotKernel::avx512 : VecDotKernel::baseline);
    if (!avx512) {
        EXPECT_THROW(vec_dot_force_kernel(VecDotKernel::avx512), Error);
    }
}

} // namespace
} // namespace winnow::cpu
