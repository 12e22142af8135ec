// CUDA dequantize kernel against the CPU reference (winnow::dequantize_row), bit for bit. Skips without a GPU.
#include <cstring>
#include <random>
#include <vector>

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dequantize.h"
#include "backend/cuda/device.h"
#include "io/quant.h"
#include "ops/block_words.h"

namespace {

using namespace winnow;

class CudaDequantize : public ::testing::TestWithParam<GgmlType> {
protected:
    void SetUp() override {
        if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
    }
};

// Blocks of a preset type: random quant bytes (every bit pattern), each fp16 field a finite value of either sign, 2^-14 to 2^15.
std::vector<uint8_t> random_preset_blocks(GgmlType type, size_t bytes) {
    const int block_bytes = static_cast<int>(ggml_type_traits(static_cast<uint32_t>(type))->type_size);
    const std::vector<int> halves = type == GgmlType::Q6_K ? std::vector<int>{208} : type == GgmlType::Q5_0 ? std::vector<int>{0} : std::vector<int>{0, 2};
    return test::random_blocks(static_cast<int>(bytes / block_bytes), block_bytes, halves, 5, 1, 30);
}

TEST_P(CudaDequantize, MatchesCpuReferenceBitExact) {
    const GgmlType type = GetParam();
    const size_t n = 576 * 1536; // one SmolLM2 FFN matrix
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 0.05f);
    std::vector<float> x(n);
    for (auto& v : x) v = nd(rng);
    std::vector<uint8_t> stored(ggml_row_bytes(type, n));
    if (is_preset_type(type)) stored = random_preset_blocks(type, stored.size());
    else quantize_row_ref(type, x.data(), stored.data(), n);
    std::vector<float> cpu(n), gpu(n);
    dequantize_row(type, stored.data(), cpu.data(), n);

    void* d_src = nullptr;
    float* d_dst = nullptr;
    WINNOW_CUDA_CHECK(cudaMalloc(&d_src, stored.size()));
    WINNOW_CUDA_CHECK(cudaMalloc(&d_dst, n * sizeof(float)));
    WINNOW_CUDA_CHECK(cudaMemcpy(d_src, stored.data(), stored.size(), cudaMemcpyHostToDevice));
    cuda::dequantize(type, d_src, d_dst, n);
    WINNOW_CUDA_CHECK(cudaMemcpy(gpu.data(), d_dst, n * sizeof(float), cudaMemcpyDeviceToHost));
    cudaFree(d_src);
    cudaFree(d_dst);
    EXPECT_EQ(std::memcmp(cpu.data(), gpu.data(), n * sizeof(float)), 0);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, CudaDequantize,
                         ::testing::Values(GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
                                           GgmlType::Q5_1, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K));

} // namespace
