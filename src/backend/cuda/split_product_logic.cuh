#pragma once
// Prefill's products on bf16 tensor cores without giving up fp32 (split_product.cu): the arithmetic, the same on the
// host and the device, so that tests/ops/test_split_product_logic.cpp checks on a machine without a GPU what the
// kernels compute.
//
// Why it is exact. A float's 24-bit significand is three 8-bit slices, and each slice is a bf16 value: `hi` keeps the
// top 16 bits of the float (sign, exponent and 7 stored mantissa bits), the remainder v - hi is exact in fp32 and
// holds the next bits, and so on, so v == hi + mid + lo for every finite v with |v| >= 2^-110 (the slices are
// truncations, so the remainders never round and never overflow; below 2^-110 the last slice's bits fall under bf16's
// smallest subnormal, 2^-133, which is all that is lost). A product of two bf16 values has at most 16 significant bits, so the
// tensor cores form it exactly, and they accumulate in fp32. So W x computed as the sum over slices of W_i x_j equals
// an fp32 product up to the order and rounding of the accumulation (Hopper's tensor cores add in fp32 but do not
// promise round-to-nearest inside an MMA; the op harness's fp32 tolerance is the check). Weights: BF16 is one slice;
// F16 (11 significant bits) and Q4_0 (an 11-bit scale times a 4-bit integer: at most 14 bits) are two, exactly;
// Q4_1 is two through block sums (below); F32 and Q8_0 (an 11-bit scale times an 8-bit integer) would need three,
// nine products, and stay on the fp32 sgemm. Non-finite inputs: an infinity times the other operand's zero slice is a
// NaN partial product where the fp32 product is an infinity, so finish() recomputes any NaN output as the plain fp32
// dot product of the decoded weights (finite inputs never pay for it).
//
// Q4_1's weight is d q + m in each block of 32 columns (d, m f16 scales, q in 0..15). d q has at most 15 significant
// bits and m 11, so each is exact in two slices, while their sum can need 24. So the weights are split as an
// augmented matrix of cols + cols / 32 columns: the first cols hold d q, and one more column per block holds its m; the
// activations get the matching extra columns, each the fp32 sum of that block's 32 values (block_sum). One GEMM over
// the augmented columns gives sum_b (sum_k d_b q_k x_k + m_b S_b) = sum_k (d_b q_k + m_b) x_k with exact slice
// products as before. The block sums' additions are the one rounding the fp32 path does not have; in exchange the
// weights are not rounded to fp32 (the fp32 path decodes d q + m to 24 bits). 3% more columns.
#include <cmath>
#include <cstdint>

#include "backend/cuda/float_bits.cuh"

#ifdef __CUDACC__
#define WINNOW_SPLIT_FN __host__ __device__ __forceinline__
#else
#define WINNOW_SPLIT_FN inline
#endif

namespace winnow::cuda::split_product {

constexpr int kActivationSlices = 3; // an fp32 activation, whole
constexpr int kMaxWeightSlices = 2;

// The bf16 value (its bits) that truncates v to its top 16 bits, and that value as a float.
WINNOW_SPLIT_FN uint16_t truncated_bf16(float v) { return static_cast<uint16_t>(float_bits(v) >> 16); }
WINNOW_SPLIT_FN float bf16_value(uint16_t b) { return float_from_bits(static_cast<uint32_t>(b) << 16); }

WINNOW_SPLIT_FN bool finite(float v) { return (float_bits(v) & 0x7f800000u) != 0x7f800000u; }

// v as `slices` bf16 values, largest first, out[s] the s-th. For 3 slices and 2^-110 <= |v| < inf the sum is v exactly; with
// fewer slices the last one carries the truncation. An infinity or NaN is the first slice alone (a NaN kept a NaN:
// truncating its payload could leave the bits of an infinity).
WINNOW_SPLIT_FN void split(float v, int slices, uint16_t* out) {
    if (!finite(v)) {
        out[0] = v != v ? static_cast<uint16_t>(0x7fc0u) : truncated_bf16(v);
        for (int s = 1; s < slices; ++s) out[s] = 0;
        return;
    }
    for (int s = 0; s < slices; ++s) {
        out[s] = truncated_bf16(v);
        v -= bf16_value(out[s]); // exact: v and its truncation share their exponent, the difference is v's lower bits
    }
}

// The augmented columns (Q4_1 above): `cols` plus one per block of kBlockSumWidth when the weights carry block sums.
constexpr int64_t kBlockSumWidth = 32;
WINNOW_SPLIT_FN int64_t augmented_cols(int64_t cols, bool block_sums) { return block_sums ? cols + cols / kBlockSumWidth : cols; }

// Column c of a token's augmented activations (x: its cols values): x[c], or past cols the sum of block c - cols's
// values, added in column order.
WINNOW_SPLIT_FN float augmented_activation(const float* x, int64_t cols, int64_t c) {
    if (c < cols) return x[c];
    const float* b = x + (c - cols) * kBlockSumWidth;
    float s = 0.0f;
    for (int i = 0; i < kBlockSumWidth; ++i) s += b[i];
    return s;
}

// The order the partial products are added in, smallest first, so that each addition rounds at most the weight of the
// terms already summed: terms (weight slice i, activation slice j), of size about 2^-8(i+j) of the whole.
// term(k, w_slices) gives the k-th term's (i, j) for k in [0, terms(w_slices)).
WINNOW_SPLIT_FN int terms(int w_slices) { return w_slices * kActivationSlices; }
struct Term {
    int w, x;
};
WINNOW_SPLIT_FN Term term(int k, int w_slices) {
    // by descending i + j, then descending i: for one weight slice (0,2) (0,1) (0,0); for two
    // (1,2) (1,1) (0,2) (1,0) (0,1) (0,0)
    int seen = 0;
    for (int order = w_slices - 1 + kActivationSlices - 1; order >= 0; --order)
        for (int i = w_slices - 1; i >= 0; --i) {
            const int j = order - i;
            if (j < 0 || j >= kActivationSlices) continue;
            if (seen++ == k) return {i, j};
        }
    return {0, 0};
}

// Where the product of weight slice i and activation slice j for token t, output row r lands in the cuBLAS result: a
// column-major (w_slices * rows) x (kActivationSlices * n) matrix, weight slices stacked by rows, activation slices
// by columns.
WINNOW_SPLIT_FN int64_t product_index(Term tm, int64_t r, int64_t t, int64_t rows, int64_t n, int w_slices) {
    return (static_cast<int64_t>(tm.x) * n + t) * (w_slices * rows) + static_cast<int64_t>(tm.w) * rows + r;
}

// y[t][r] from the partial products: their sum, smallest first, then the bias (as the fp32 path adds it after the
// product).
WINNOW_SPLIT_FN float combine(const float* products, int64_t r, int64_t t, int64_t rows, int64_t n, int w_slices, const float* bias) {
    float s = 0.0f;
    for (int k = 0; k < terms(w_slices); ++k) s += products[product_index(term(k, w_slices), r, t, rows, n, w_slices)];
    return bias ? s + bias[r] : s;
}

// y[t][r] as combine() gives it, except where that is NaN: an infinite input times a zero slice of the other operand
// makes a NaN partial product where the fp32 product is an infinity, so a NaN is recomputed as the plain fp32 dot
// product of the decoded weights (weight(r, k), as the fp32 path decodes them) and the token's values (x: the token
// rows, cols each). Finite inputs never take it; NaN inputs take it and stay NaN.
template <class Weight>
WINNOW_SPLIT_FN float finish(const float* products, const Weight& weight, const float* x, int64_t cols, int64_t r, int64_t t, int64_t rows, int64_t n,
                             int w_slices, const float* bias) {
    const float y = combine(products, r, t, rows, n, w_slices, bias);
    if (y == y) return y;
    float s = 0.0f;
    for (int64_t k = 0; k < cols; ++k) s = fmaf(weight(r, k), x[t * cols + k], s);
    return bias ? s + bias[r] : s;
}

} // namespace winnow::cuda::split_product
