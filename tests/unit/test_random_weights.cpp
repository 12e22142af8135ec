// io/random_weights.h: the random stored matrices the op harness and `bench gemv` use. Whole rows of the asked type,
// the same bytes for the same seed, values of the intended size (finite, |w| of order 0.05), bad shapes refused.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "io/quant.h"
#include "io/random_weights.h"
#include "winnow/error.h"

namespace {

using namespace winnow;

TEST(RandomWeights, EveryTypeGivesWholeRowsOfModestFiniteValues) {
    for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                          GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
                          GgmlType::IQ4_NL, GgmlType::IQ4_XS}) {
        const int64_t rows = 6, cols = 512;
        const auto bytes = random_stored_weights(type, rows, cols, 3);
        ASSERT_EQ(bytes.size(), rows * ggml_row_bytes(type, cols)) << ggml_type_name(type);
        EXPECT_EQ(bytes, random_stored_weights(type, rows, cols, 3)) << ggml_type_name(type) << ": the same seed gave other bytes";
        EXPECT_NE(bytes, random_stored_weights(type, rows, cols, 4)) << ggml_type_name(type) << ": another seed gave the same bytes";
        std::vector<float> w(static_cast<size_t>(rows * cols));
        dequantize_row(type, bytes.data(), w.data(), w.size());
        double sum_sq = 0, largest = 0;
        for (float v : w) {
            ASSERT_TRUE(std::isfinite(v)) << ggml_type_name(type);
            sum_sq += static_cast<double>(v) * v;
            largest = std::max(largest, std::fabs(static_cast<double>(v)));
        }
        const double rms = std::sqrt(sum_sq / w.size());
        EXPECT_GT(rms, 0.005) << ggml_type_name(type);
        EXPECT_LT(rms, 0.5) << ggml_type_name(type);
        EXPECT_LT(largest, 2.0) << ggml_type_name(type);
    }
}

TEST(RandomWeights, RefusesColumnsThatAreNotWholeBlocks) {
    EXPECT_THROW(random_stored_weights(GgmlType::Q4_K, 2, 96, 1), Error);
    EXPECT_THROW(random_stored_weights(GgmlType::IQ3_S, 2, 256, 1), Error); // not a type winnow reads
    EXPECT_NO_THROW(random_stored_weights(GgmlType::Q5_0, 2, 96, 1));
}

} // namespace
