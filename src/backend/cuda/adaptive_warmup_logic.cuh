#pragma once
// The GPU AdaptiveSoftmax's first kernel (issue #15 item 2): the warm-up pass, written once for the device and the
// host (the host run is the CPU twin: tests/ops/test_adaptive_warmup_logic.cpp; the CUDA build: adaptive_warmup.cu).
//
// Design (the layout and the passes the later kernels will share):
//   * Layout: head::ColumnMajorHead's column-major copy, unchanged, uploaded once: for a Q8_0/Q4_0 head int8 quants
//     [d][stride] plus fp16 block scales [d/32][stride], else fp32 [d][stride]; stride = n rounded up to 32. One
//     thread per arm, consecutive arms in consecutive lanes: a warp reading one sampled column reads 32 arms x 1 byte
//     = one 32-byte sector of quants (plus 64 bytes of scales, shared by the 32 columns of a block), or 128 bytes =
//     4 sectors of fp32. That is the "tile": 32 arms x 1 column, a whole number of sectors, no byte of it wasted, and
//     a round that advances only the surviving arms reads only their warps' sectors. (A rotated copy, head/rotation.h,
//     is the same layout of A R.)
//   * Column order and coefficients: computed on the host per query as the CPU path does (gumbel_column_order and
//     the Des Raj coefficients (1 - p_1 - .. - p_{m-1}) / p_m of fast_adaptive_softmax.cpp), uploaded with the query:
//     col[m], blk[m] = col[m] / 32, xs[m] = x[col[m]], coef[m] for m < d'.
//   * Warm-up (this kernel): every arm through columns [from, to) of the order, updating the incremental Des Raj
//     sums (K: the sum of the products read, Z: the sum of the z_m, Z2: the sum of their squares), then its estimate
//     mu = beta mean(z) and variance beta^2 S^2 / (t (t - 1)). The CPU path's warm-up is repeated calls of exactly
//     this (stream(cur, target, masked = false, fresh = cur == 0)) with targets 16, 24, 36, ... up to the cap, until
//     every variance is under its threshold; that check is a reduction the next kernel (or the host) does.
//   * Elimination rounds' streaming (stream_masked_arm below): the same step over a masked set of arms, those the CPU
//     path's stream(from, to, masked = true) advances (T == from and active != 0), every other arm left untouched.
//     A round's reduction (best arm, its floor, the keep flags) is adaptive_rounds_logic.cuh.
//   * Later (not written yet): the survivors' mask and the next target computed on the device (a persistent kernel
//     driving pull_to_var and the rounds), and the exact finish as linear's warp dot product on the survivors' rows.
// The arithmetic is the CPU fast path's AVX2 lanes, operation for operation: y = q * (scale * x_m) (or a * x_m),
// z = fma(y, coef_m, K), K += y, Z += z, Z2 = fma(z, z, Z2), and its finalize; products and sums rounded
// separately (__fmul_rn / __fadd_rn on the device, where nvcc would otherwise fuse them), so the twin and the kernel
// agree bit for bit.
#include <cmath>
#include <cstdint>

#include "backend/cuda/float_bits.cuh" // half_to_float

#ifdef __CUDACC__
#define WINNOW_WARMUP_FN __host__ __device__ __forceinline__
#else
#define WINNOW_WARMUP_FN inline
#endif

namespace winnow::cuda::adaptive {

WINNOW_WARMUP_FN float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b; // the project compiles with -ffp-contract=off
#endif
}
WINNOW_WARMUP_FN float add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}
WINNOW_WARMUP_FN float div_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}
WINNOW_WARMUP_FN float fma_rn(float a, float b, float c) {
#ifdef __CUDA_ARCH__
    return __fmaf_rn(a, b, c);
#else
    return std::fma(a, b, c);
#endif
}

// The head in the column-major layout (device or host pointers): q8 quants + scales, or fp32.
struct ColumnLayout {
    const int8_t* quants = nullptr;    // [d][stride] (q8 storage)
    const uint16_t* scales = nullptr;  // [d / 32][stride] fp16 (q8 storage)
    const float* values = nullptr;     // [d][stride] (f32 storage)
    int64_t stride = 0;
    WINNOW_WARMUP_FN bool q8() const { return quants != nullptr; }
};

// The query's order as the kernels read it: column, quant block, x there, Des Raj coefficient; d' entries each.
struct QueryOrder {
    const int32_t* col = nullptr;
    const int32_t* blk = nullptr;
    const float* xs = nullptr;
    const float* coef = nullptr;
    int dp = 0; // d'
};

// Per-arm state, arrays of `stride` entries (the padding arms are computed and never read).
struct ArmState {
    float* K = nullptr;
    float* Z = nullptr;
    float* Z2 = nullptr;
    float* mu = nullptr;
    float* var = nullptr;
    int32_t* T = nullptr;
};

// max(0, x) as the fast path's _mm256_max_ps(_mm256_setzero_ps(), x) gives it: MAXPS returns its second operand
// unless the first is greater, so a NaN x stays NaN (and -0 stays -0), where fmaxf(0, NaN) would give 0 and hide an
// arm's NaN estimate from the twin's comparison.
WINNOW_WARMUP_FN float max0_as_avx(float x) { return 0.0f > x ? 0.0f : x; }

// Arm i through columns [from, to) of the order (fresh: its sums start from zero), then its estimate.
WINNOW_WARMUP_FN void warm_up_arm(const ColumnLayout& h, const QueryOrder& o, const ArmState& s, int64_t i, int from, int to, bool fresh, float beta) {
    float K = fresh ? 0.0f : s.K[i], Z = fresh ? 0.0f : s.Z[i], Z2 = fresh ? 0.0f : s.Z2[i];
    for (int m = from; m < to; ++m) {
        const int64_t c = o.col[m];
        const float y = h.q8() ? mul_rn(static_cast<float>(h.quants[c * h.stride + i]), mul_rn(half_to_float(h.scales[static_cast<int64_t>(o.blk[m]) * h.stride + i]), o.xs[m]))
                               : mul_rn(h.values[c * h.stride + i], o.xs[m]);
        const float z = fma_rn(y, o.coef[m], K);
        K = add_rn(K, y);
        Z = add_rn(Z, z);
        Z2 = fma_rn(z, z, Z2);
    }
    s.K[i] = K;
    s.Z[i] = Z;
    s.Z2[i] = Z2;
    s.T[i] = to;
    if (to >= o.dp) {
        s.mu[i] = mul_rn(beta, K);
        s.var[i] = 0.0f;
    } else if (to >= 2) {
        const float t = static_cast<float>(to);
        const float mean = div_rn(Z, t);
        const float spread = max0_as_avx(Z2 - mul_rn(Z, mean));
        s.mu[i] = mul_rn(beta, mean);
        s.var[i] = div_rn(mul_rn(mul_rn(beta, beta), spread), mul_rn(t, t - 1.0f));
    } else {
        s.mu[i] = mul_rn(beta, Z);
        s.var[i] = INFINITY;
    }
}

// The CPU twin of the kernel: every arm of [0, n_arms) through warm_up_arm, one after another.
inline void warm_up_host(const ColumnLayout& h, const QueryOrder& o, const ArmState& s, int64_t n_arms, int from, int to, bool fresh, float beta) {
    for (int64_t i = 0; i < n_arms; ++i) warm_up_arm(h, o, s, i, from, to, fresh, beta);
}

// Whether the CPU path's masked stream(from, to, masked = true) advances arm i: it has read exactly the columns
// [0, from) and is marked active. advance() writes only -1 (selected) and 0; here any nonzero word selects, as in the
// CPU's scalar path (its AVX2 path ANDs the word into a lane mask, so it needs all bits set: -1).
WINNOW_WARMUP_FN bool stream_selects(const ArmState& s, const int32_t* active, int64_t i, int from) { return s.T[i] == from && active[i] != 0; }

// The elimination rounds' step: arm i through columns [from, to) when stream_selects it (its sums continue, T
// becomes `to`, its estimate is refreshed: warm_up_arm, non-fresh); any other arm is not written at all. (The AVX2
// path writes K + 0 etc. to the unselected lanes of a touched vector of 8, which turns a -0 sum into +0; the values,
// and so every comparison made on them, are the same.)
WINNOW_WARMUP_FN void stream_masked_arm(const ColumnLayout& h, const QueryOrder& o, const ArmState& s, const int32_t* active, int64_t i, int from, int to,
                                        float beta) {
    if (stream_selects(s, active, i, from)) warm_up_arm(h, o, s, i, from, to, false, beta);
}

// The CPU twin of the masked kernel: every arm of [0, n_arms) through stream_masked_arm.
inline void stream_masked_host(const ColumnLayout& h, const QueryOrder& o, const ArmState& s, const int32_t* active, int64_t n_arms, int from, int to,
                               float beta) {
    for (int64_t i = 0; i < n_arms; ++i) stream_masked_arm(h, o, s, active, i, from, to, beta);
}

} // namespace winnow::cuda::adaptive
