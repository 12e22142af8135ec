// The CUDA split products' arithmetic (backend/cuda/split_product_logic.cuh) on the host: that the slices are exact
// for every value the prefill path gives them (fp32 activations, and the weights of each type the device splits), that
// the partial products are summed smallest first, and that a product built from the slices the way the device builds
// it (exact bf16 x bf16 products, fp32 accumulation) is as close to the double reference as an fp32 product is, while
// two activation slices are not. The device's kernels run the same functions; the op harness's 9-token linear cases
// check them end to end (on the SIMT emulator here, on the GPU machine there).
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cuda/split_product_logic.cuh"
#include "io/quant.h"

namespace {

namespace sp = winnow::cuda::split_product;

// The exact sum of v's slices (a double holds any three bf16 slices of one float exactly).
double sum_of_slices(float v, int slices) {
    uint16_t parts[sp::kActivationSlices];
    sp::split(v, slices, parts);
    double s = 0;
    for (int i = 0; i < slices; ++i) s += sp::bf16_value(parts[i]);
    return s;
}

std::vector<float> interesting_floats() {
    std::vector<float> v = {0.0f, -0.0f, 1.0f, -1.0f, FLT_MAX, -FLT_MAX, FLT_MIN, -FLT_MIN, FLT_TRUE_MIN, 1.0f + FLT_EPSILON, 3.0f / 7.0f, -1e-30f, 65504.0f};
    std::mt19937 rng(7);
    std::uniform_int_distribution<uint32_t> bits;
    while (v.size() < 200000) {
        const uint32_t b = bits(rng);
        if ((b & 0x7f800000u) == 0x7f800000u) continue; // finite values only here
        float f;
        std::memcpy(&f, &b, sizeof f);
        v.push_back(f);
    }
    return v;
}

TEST(SplitProductLogic, ThreeSlicesHoldEveryFloatAbove2ToTheMinus110Exactly) {
    for (float v : interesting_floats()) {
        if (std::fabs(v) < std::ldexp(1.0f, -110)) {
            // below 2^-110 the last slice's bits fall under bf16's smallest subnormal (2^-133): lost, but no more than that
            ASSERT_LE(std::fabs(sum_of_slices(v, 3) - v), std::ldexp(1.0, -133)) << v;
            continue;
        }
        ASSERT_EQ(sum_of_slices(v, 3), static_cast<double>(v)) << v;
        uint16_t parts[3];
        sp::split(v, 3, parts);
        // largest first: each slice at most 2^-7 of the one before (truncation keeps the top 8 significant bits)
        for (int i = 1; i < 3; ++i) ASSERT_LE(std::fabs(sp::bf16_value(parts[i])), std::ldexp(std::fabs(sp::bf16_value(parts[i - 1])), -7)) << v;
    }
}

TEST(SplitProductLogic, TwoActivationSlicesWouldLoseBits) {
    // why the device uses three: a float's low 8 bits are beyond two slices
    int inexact = 0;
    for (float v : interesting_floats()) inexact += sum_of_slices(v, 2) != static_cast<double>(v);
    EXPECT_GT(inexact, 100000);
}

TEST(SplitProductLogic, NonFiniteValuesStayWhatTheyAre) {
    uint16_t parts[3];
    sp::split(INFINITY, 3, parts);
    EXPECT_EQ(sp::bf16_value(parts[0]), INFINITY);
    EXPECT_EQ(parts[1], 0);
    EXPECT_EQ(parts[2], 0);
    sp::split(-INFINITY, 3, parts);
    EXPECT_EQ(sp::bf16_value(parts[0]), -INFINITY);
    const uint32_t quiet_nan_low_payload = 0x7f800001u; // truncated, these bits would read as +infinity
    float nan;
    std::memcpy(&nan, &quiet_nan_low_payload, sizeof nan);
    sp::split(nan, 3, parts);
    EXPECT_TRUE(std::isnan(sp::bf16_value(parts[0])));
    EXPECT_EQ(parts[1], 0);
}

TEST(SplitProductLogic, TwoSlicesHoldEveryF16AndQ4_0Weight) {
    for (uint32_t h = 0; h < 65536; ++h) {
        const float w = winnow::fp16_to_fp32(static_cast<uint16_t>(h));
        if (!std::isfinite(w)) continue;
        ASSERT_EQ(sum_of_slices(w, 2), static_cast<double>(w)) << "f16 bits " << h;
        // Q4_0: (q - 8) * d, d an f16 scale, as the CPU and the device decode it (one fp32 product)
        for (int q = 0; q < 16; ++q) {
            const float v = static_cast<float>(q - 8) * w;
            if (std::isfinite(v)) {
                ASSERT_EQ(sum_of_slices(v, 2), static_cast<double>(v)) << "q4_0 scale bits " << h << " q " << q;
            }
        }
    }
}

TEST(SplitProductLogic, Q8_0AndDecodedQ4_1WeightsWouldNeedThreeSlices) {
    // why Q8_0 stays on the fp32 sgemm, and why Q4_1 is split as d q and m apart: these decoded values have more than 16
    // significant bits
    const float d = winnow::fp16_to_fp32(0x3555); // 0.33325195...
    const float q8 = 127.0f * d, q4_1 = 13.0f * d + winnow::fp16_to_fp32(0x1e66);
    EXPECT_NE(sum_of_slices(q8, 2), static_cast<double>(q8));
    EXPECT_NE(sum_of_slices(q4_1, 2), static_cast<double>(q4_1));
}

TEST(SplitProductLogic, TwoSlicesHoldEveryQ4_1Part) {
    // Q4_1's augmented columns: d q for every f16 scale d and q in 0..15 (at most 15 significant bits), and m, an f16
    // value (TwoSlicesHoldEveryF16AndQ4_0Weight)
    for (uint32_t h = 0; h < 65536; ++h) {
        const float d = winnow::fp16_to_fp32(static_cast<uint16_t>(h));
        if (!std::isfinite(d)) continue;
        for (int q = 0; q < 16; ++q) {
            const float v = static_cast<float>(q) * d;
            ASSERT_EQ(static_cast<double>(v), static_cast<double>(q) * d) << "d q rounded: scale bits " << h << " q " << q;
            ASSERT_EQ(sum_of_slices(v, 2), static_cast<double>(v)) << "q4_1 scale bits " << h << " q " << q;
        }
    }
}

TEST(SplitProductLogic, TermsAreEveryPairOnceSmallestFirst) {
    for (int ws = 1; ws <= sp::kMaxWeightSlices; ++ws) {
        ASSERT_EQ(sp::terms(ws), ws * 3);
        std::set<std::pair<int, int>> seen;
        int last_order = 1 << 30;
        for (int k = 0; k < sp::terms(ws); ++k) {
            const sp::Term t = sp::term(k, ws);
            ASSERT_TRUE(t.w >= 0 && t.w < ws && t.x >= 0 && t.x < 3);
            ASSERT_TRUE(seen.insert({t.w, t.x}).second) << "term " << k << " repeats";
            ASSERT_LE(t.w + t.x, last_order) << "term " << k << " is larger than the one before";
            last_order = t.w + t.x;
        }
        const sp::Term last = sp::term(sp::terms(ws) - 1, ws);
        EXPECT_EQ(last.w + last.x, 0);
    }
}

// Adds the exact slice products of w (ws slices) and x (xs slices) to products, laid out as the device's GEMM writes
// them for rows = n = 1 (index (x * 1 + 0) * ws + w): fp32 accumulation in column order, as cuBLAS's reference order.
void add_slice_products(float w, int ws, float x, int xs, std::vector<float>& products) {
    uint16_t wp[2], xp[3];
    sp::split(w, ws, wp);
    sp::split(x, xs, xp);
    for (int i = 0; i < ws; ++i)
        for (int j = 0; j < xs; ++j) {
            const float p = sp::bf16_value(wp[i]) * sp::bf16_value(xp[j]);
            EXPECT_EQ(static_cast<double>(p), static_cast<double>(sp::bf16_value(wp[i])) * sp::bf16_value(xp[j])) << "a slice product rounded";
            products[sp::product_index({i, j}, 0, 0, 1, 1, ws)] += p;
        }
}

// y = W x for one row of F16 weights and one token, three ways: the device's split products (exact slice products,
// each slice pair accumulated in fp32 in k order as cuBLAS's reference order, then combine()), an fp32 dot product,
// and with two activation slices; each against a double reference.
struct Errors {
    double split3 = 0, fp32 = 0, split2 = 0;
};

Errors row_errors(int cols, std::mt19937& rng) {
    std::normal_distribution<float> nd;
    std::vector<float> w(cols), x(cols);
    for (auto& v : w) v = winnow::fp16_to_fp32(winnow::fp32_to_fp16(nd(rng)));
    for (auto& v : x) v = nd(rng) * 3.0f;
    double ref = 0, scale = 0;
    float fp32 = 0;
    for (int c = 0; c < cols; ++c) {
        ref += static_cast<double>(w[c]) * x[c];
        scale += std::fabs(static_cast<double>(w[c]) * x[c]);
        fp32 = std::fma(w[c], x[c], fp32);
    }
    auto split_product = [&](int x_slices) {
        constexpr int ws = 2;
        std::vector<float> products(ws * 3, 0.0f);
        for (int c = 0; c < cols; ++c) add_slice_products(w[c], ws, x[c], x_slices, products);
        return sp::combine(products.data(), 0, 0, 1, 1, ws, nullptr);
    };
    Errors e;
    e.split3 = std::fabs(split_product(3) - ref) / scale;
    e.fp32 = std::fabs(fp32 - ref) / scale;
    e.split2 = std::fabs(split_product(2) - ref) / scale;
    return e;
}

TEST(SplitProductLogic, SplitProductsAreAsCloseAsAnFp32Product) {
    std::mt19937 rng(3);
    double worst3 = 0, worst_fp32 = 0, worst2 = 0;
    for (int trial = 0; trial < 200; ++trial) {
        const Errors e = row_errors(1536, rng);
        worst3 = std::max(worst3, e.split3);
        worst_fp32 = std::max(worst_fp32, e.fp32);
        worst2 = std::max(worst2, e.split2);
    }
    // relative to sum |w x|: fp32 accumulation over 1,536 terms is bounded by ~1536 * 2^-24 (9e-5); both stay far below
    EXPECT_LT(worst3, 4.0 * worst_fp32 + 1e-9) << "split " << worst3 << " fp32 " << worst_fp32;
    EXPECT_LT(worst3, 1536 * std::ldexp(1.0, -24));
    // two activation slices carry a relative truncation of up to 2^-15 per value: visibly worse
    EXPECT_GT(worst2, 4.0 * worst3) << "split2 " << worst2 << " split3 " << worst3;
}

// One row of Q4_1 weights (cols a multiple of 32) times one token through the augmented columns, as the device splits
// and multiplies them (split_product.cu's Q4_1Augmented, here from the same bytes): the relative error against the
// double product of the decoded weights, with the block sums and, to show they carry the m terms, without them.
struct Q4_1Errors {
    double augmented = 0, fp32 = 0, without_sums = 0;
};

Q4_1Errors q4_1_row_errors(int cols, std::mt19937& rng) {
    std::normal_distribution<float> nd;
    std::vector<float> w(cols), wd(cols), x(cols);
    for (auto& v : w) v = nd(rng) + 0.3f;
    for (auto& v : x) v = nd(rng) * 3.0f;
    std::vector<uint8_t> bytes(static_cast<size_t>(cols / 32) * 20);
    winnow::quantize_row_ref(winnow::GgmlType::Q4_1, w.data(), bytes.data(), cols);
    winnow::dequantize_row(winnow::GgmlType::Q4_1, bytes.data(), wd.data(), cols);
    const int64_t k = sp::augmented_cols(cols, true);
    auto weight = [&](int64_t c) { // d q, then each block's m
        const uint8_t* b = bytes.data() + (c < cols ? c / 32 : c - cols) * 20;
        if (c >= cols) return winnow::fp16_to_fp32(static_cast<uint16_t>(b[2] | b[3] << 8));
        const int j = static_cast<int>(c % 32), q = j < 16 ? (b[4 + j] & 0x0f) : (b[4 + j - 16] >> 4);
        return static_cast<float>(q) * winnow::fp16_to_fp32(static_cast<uint16_t>(b[0] | b[1] << 8));
    };
    double ref = 0, scale = 0;
    float fp32 = 0;
    for (int c = 0; c < cols; ++c) {
        ref += static_cast<double>(wd[c]) * x[c];
        scale += std::fabs(static_cast<double>(wd[c]) * x[c]);
        fp32 = std::fma(wd[c], x[c], fp32);
    }
    auto split_product = [&](int64_t columns) {
        std::vector<float> products(2 * 3, 0.0f);
        for (int64_t c = 0; c < columns; ++c) add_slice_products(weight(c), 2, sp::augmented_activation(x.data(), cols, c), 3, products);
        return sp::combine(products.data(), 0, 0, 1, 1, 2, nullptr);
    };
    return {std::fabs(split_product(k) - ref) / scale, std::fabs(fp32 - ref) / scale, std::fabs(split_product(cols) - ref) / scale};
}

TEST(SplitProductLogic, Q4_1ThroughBlockSumsIsAsCloseAsAnFp32Product) {
    EXPECT_EQ(sp::augmented_cols(576, true), 576 + 18);
    EXPECT_EQ(sp::augmented_cols(576, false), 576);
    const float x[64] = {1.0f, 2.0f, 3.0f};
    EXPECT_EQ(sp::augmented_activation(x, 64, 3), 0.0f);
    EXPECT_EQ(sp::augmented_activation(x, 64, 64), 6.0f); // block 0's sum
    EXPECT_EQ(sp::augmented_activation(x, 64, 65), 0.0f);
    std::mt19937 rng(5);
    double worst = 0, worst_fp32 = 0, mean_without = 0;
    for (int trial = 0; trial < 200; ++trial) {
        const Q4_1Errors e = q4_1_row_errors(1536, rng);
        worst = std::max(worst, e.augmented);
        worst_fp32 = std::max(worst_fp32, e.fp32);
        mean_without += e.without_sums / 200;
    }
    // the block sums' roundings (31 additions each, against m's share of sum |w x|) and the decoded weights' rounding,
    // which the augmented product does not have, are both of fp32's size: within a few times the fp32 product's error
    EXPECT_LT(worst, 8.0 * worst_fp32 + 1e-9) << "augmented " << worst << " fp32 " << worst_fp32;
    EXPECT_LT(worst, 1536 * std::ldexp(1.0, -24));
    EXPECT_GT(mean_without, 1e-2) << "without the block sums the m terms are missing";
    std::printf("Q4_1 through block sums: worst relative error %.3g (fp32 product %.3g); without them %.3g on average\n", worst, worst_fp32, mean_without);
}

} // namespace

namespace {

// finish() on one output, rows = n = 1, products made as the device makes them (exact slice products summed in fp32).
float one_output(float w, int w_slices, float x) {
    uint16_t wp[2] = {0, 0}, xp[3];
    sp::split(w, w_slices, wp);
    sp::split(x, 3, xp);
    std::vector<float> products(static_cast<size_t>(w_slices) * 3, 0.0f);
    for (int i = 0; i < w_slices; ++i)
        for (int j = 0; j < 3; ++j) products[sp::product_index({i, j}, 0, 0, 1, 1, w_slices)] = sp::bf16_value(wp[i]) * sp::bf16_value(xp[j]);
    return sp::finish(products.data(), [w](int64_t, int64_t) { return w; }, &x, 1, 0, 0, 1, 1, w_slices, nullptr);
}

TEST(SplitProductLogic, InfinitiesGiveTheFp32ProductNotNaN) {
    // an infinite input times the other side's zero slice is a NaN partial product; finish() recomputes it
    EXPECT_EQ(one_output(1.0f, 2, INFINITY), INFINITY);    // F16 / Q4_0 weight 1.0: its second slice is 0
    EXPECT_EQ(one_output(1.0f, 1, -INFINITY), -INFINITY);  // BF16 weight, an activation of -inf (its slices 2 and 3 are 0)
    EXPECT_EQ(one_output(INFINITY, 1, 1.0f), INFINITY);    // an infinite weight times 1.0 (whose slices 2 and 3 are 0)
    EXPECT_TRUE(std::isnan(one_output(0.0f, 1, INFINITY))); // 0 * inf is NaN in fp32 too
    EXPECT_TRUE(std::isnan(one_output(2.0f, 2, NAN)));
    EXPECT_EQ(one_output(3.0f, 2, 0.5f), 1.5f);            // finite: the slices' sum
}

} // namespace
