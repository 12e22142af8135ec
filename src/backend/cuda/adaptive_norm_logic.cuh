#pragma once
// The GPU AdaptiveSoftmax's normalizer phase and the elimination rounds' set tests (issue #15 item 2), per arm, written
// once for the device and the host (host twins: the *_host functions below, tests/ops/test_adaptive_norm_logic.cpp;
// the CUDA build: adaptive_head_gpu.cu). What the CPU fast path computes (head/fast_adaptive_softmax.cpp):
//   normalize():  la_i = mu_i - sqrt(c2 var_i) (log alpha_i), la_max = max_i la_i, e_i = exp(la_i - la_max),
//                 sum_e = sum e_i, sum_g = sum sqrt(e_i); a, b from the sums (host); then
//                 fails(i) = T_i < d' && e_i > 0 && (f var_i sqrt(e_i) > a || f var_i e_i > b)   (in double)
//   pull_to_var:  "failing" = some arm of the set has var > thr && T < d'; the shortest prefix of the set (min T)
//   eliminate():  the largest variance of the set's arms short of d' (the "nothing moved" skip)
//   run():        log_norm = max mu + log sum exp(mu_i - max mu)
//
// Which results are bit-exact between host and device, and which are not:
//   * la_i, the maxima, the flags, counts and min T: exact (single float operations rounded as the CPU rounds them,
//     mul_rn etc.; integer or max reductions, whose order does not matter). fails() is exact given the same e_i,
//     var_i, T_i, a and b: its products are rounded separately in double (__dmul_rn: nvcc would fuse them).
//   * e_i = exp(..): the device's expf (<= 2 ulp) is not the host's std::exp, nor the CPU fast path's 8-lane exp
//     (relative error 2e-7): equal within a few ulp, not in bits.
//   * The sums are order-dependent. The device order, which the host twins reproduce exactly (so equal e_i give
//     equal sums, bit for bit): blocks of kNormThreads consecutive arms; in each warp of 32 arms an xor butterfly
//     (v += shfl_xor(v, o) for o = 16, 8, 4, 2, 1; lane 0's value), in double; the block's 8 warp values added in
//     warp order by one thread (that is the block's partial); the partials copied to the host and added there in
//     block order, starting from 0. The CPU path sums in 8-lane fp32 runs of 4096 arms, then in double: the two
//     differ by rounding (relative ~1e-7 at SmolLM2's n), which tests bound with a tolerance.
//   NaN: the maxima pass NaN arms over (as the CPU's std::max(la_max, la_i) does; its log_sum_exp's max_element would
//   return a NaN first element instead, an edge this does not reproduce), and a NaN e_i fails nothing.
#include <cmath>
#include <cstdint>

#include "backend/cuda/adaptive_rounds_logic.cuh" // sub_rn, sqrt_rn, mul_rn, WINNOW_WARMUP_FN
#include "backend/cuda/float_bits.cuh"

namespace winnow::cuda::adaptive {

constexpr int kNormThreads = 256; // arms per block of the reductions (a multiple of 32)
constexpr int kNormWarps = kNormThreads / 32;

WINNOW_WARMUP_FN double dmul_rn(double a, double b) {
#ifdef __CUDA_ARCH__
    return __dmul_rn(a, b);
#else
    return a * b;
#endif
}
WINNOW_WARMUP_FN double dsqrt_rn(double a) {
#ifdef __CUDA_ARCH__
    return __dsqrt_rn(a);
#else
    return std::sqrt(a);
#endif
}
// Not bit-equal between host and device (see above): only e_i and the log-sum-exp terms use it.
WINNOW_WARMUP_FN float exp_f(float x) {
#ifdef __CUDA_ARCH__
    return expf(x);
#else
    return std::exp(x);
#endif
}

// log alpha_i = mu_i - sqrt(c2 var_i), the CPU's float operations.
WINNOW_WARMUP_FN float log_alpha(float mu, float var, float c2) { return sub_rn(mu, sqrt_rn(mul_rn(c2, var))); }

// A max reduction's key: ordered_bits (unsigned order = float order, -0 = +0), 0 for NaN ("none": no number maps to 0,
// only the NaN 0xffffffff would). The max of keys decodes to the max of the non-NaN values, -inf when there is none.
WINNOW_WARMUP_FN uint32_t max_key(float v) { return v != v ? 0u : ordered_bits(v); }
WINNOW_WARMUP_FN float max_from_key(uint32_t k) {
    if (k == 0) return -INFINITY;
    return float_from_bits((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

// The normalizer weight e_i = alpha_i / max alpha = exp(la_i - la_max) (la_max = -inf or +inf gives NaN, as the CPU's).
WINNOW_WARMUP_FN float norm_weight(float la, float la_max) { return exp_f(sub_rn(la, la_max)); }

// FastAdaptiveSoftmax::Query::normalize's fails(i): arm i's estimate is too loose for its softmax weight.
WINNOW_WARMUP_FN bool norm_fails(float e, float var, int32_t T, int dp, double f, double a, double b) {
    if (!(T < dp && e > 0.0f)) return false; // exact arms, zero weights and NaN weights need nothing
    const double ed = e, fv = dmul_rn(f, static_cast<double>(var));
    return dmul_rn(fv, dsqrt_rn(ed)) > a || dmul_rn(fv, ed) > b;
}

// pull_to_var's test (k = 1): arm i still needs columns.
WINNOW_WARMUP_FN bool pull_failing(float var, int32_t T, float thr, int dp) { return var > thr && T < dp; }

// A set's statistics for the host's decisions (also the device scratch the kernel's atomics update).
struct SetStats {
    int32_t count = 0;         // arms in the set
    int32_t min_T = kNoArm;    // their shortest prefix (kNoArm: empty set)
    int32_t failing = 0;       // 1: some arm is pull_failing(thr)
    uint32_t max_var_key = 0;  // max_key of var over the arms with T < d' (NaN passed over; none: 0)
    // std::max(0.0f, var) folded over the arms, as the CPU's loop: 0 when there is none (or none above 0)
    WINNOW_WARMUP_FN float max_var() const {
        const float v = max_from_key(max_var_key);
        return v > 0.0f ? v : 0.0f;
    }
};

// One arm's part in SetStats (its combination is integer min / max / or: any order gives the same result).
WINNOW_WARMUP_FN void set_stats_arm(float var, int32_t T, float thr, int dp, SetStats& s) {
    s.count += 1;
    s.min_T = T < s.min_T ? T : s.min_T;
    s.failing |= pull_failing(var, T, thr, dp) ? 1 : 0;
    if (T < dp) {
        const uint32_t k = max_key(var);
        s.max_var_key = k > s.max_var_key ? k : s.max_var_key;
    }
}

inline SetStats set_stats_host(const uint8_t* in_set, const float* var, const int32_t* T, int64_t n, float thr, int dp) {
    SetStats s;
    for (int64_t i = 0; i < n; ++i)
        if (in_set[i]) set_stats_arm(var[i], T[i], thr, dp, s);
    return s;
}

// advance()'s next group: the arms of the set with the smallest prefix below `target` (from), and how many (count).
struct Group {
    int32_t from = kNoArm; // kNoArm: no arm of the set is below target
    int32_t count = 0;
};

// The device's order of a block's sum (see the header comment): v holds kNormThreads values (zeros past the end).
inline double block_sum_host(const double* v) {
    double block = 0;
    for (int w = 0; w < kNormWarps; ++w) {
        double lane[32], next[32];
        for (int l = 0; l < 32; ++l) lane[l] = v[w * 32 + l];
        for (int o = 16; o > 0; o >>= 1) {
            for (int l = 0; l < 32; ++l) next[l] = lane[l] + lane[l ^ o];
            for (int l = 0; l < 32; ++l) lane[l] = next[l];
        }
        block = w == 0 ? lane[0] : block + lane[0];
    }
    return block;
}

// The host's addition of the blocks' partials, in block order (the device path copies them back and calls this).
WINNOW_WARMUP_FN double add_partials(const double* partials, int64_t blocks) {
    double total = 0;
    for (int64_t b = 0; b < blocks; ++b) total += partials[b];
    return total;
}

WINNOW_WARMUP_FN int64_t norm_blocks(int64_t n) { return (n + kNormThreads - 1) / kNormThreads; }

struct NormSums {
    float la_max = -INFINITY;
    double sum_e = 0, sum_g = 0;
};

// The CPU twin of the normalizer weights' kernels: la_max, every e_i (written to e), and the two sums in the device's
// order. partials (2 * norm_blocks(n) entries, or null): the blocks' sums of e, then of sqrt(e), as the device writes them.
inline NormSums norm_weights_host(const float* mu, const float* var, int64_t n, float c2, float* e, double* partials = nullptr) {
    uint32_t key = 0;
    for (int64_t i = 0; i < n; ++i) {
        const uint32_t k = max_key(log_alpha(mu[i], var[i], c2));
        key = k > key ? k : key;
    }
    NormSums s;
    s.la_max = max_from_key(key);
    const int64_t blocks = norm_blocks(n);
    double ve[kNormThreads], vg[kNormThreads];
    for (int64_t b = 0; b < blocks; ++b) {
        for (int t = 0; t < kNormThreads; ++t) {
            const int64_t i = b * kNormThreads + t;
            ve[t] = vg[t] = 0;
            if (i >= n) continue;
            e[i] = norm_weight(log_alpha(mu[i], var[i], c2), s.la_max);
            ve[t] = e[i];
            vg[t] = sqrt_rn(e[i]);
        }
        const double pe = block_sum_host(ve), pg = block_sum_host(vg);
        s.sum_e += pe; // in block order from 0: add_partials' sum
        s.sum_g += pg;
        if (partials) partials[b] = pe, partials[blocks + b] = pg;
    }
    return s;
}

// The CPU twin of the normalizer's filter: todo_i = (first ? i < n : todo_i) && norm_fails(i); returns the count.
inline int32_t norm_filter_host(bool first, const float* e, const float* var, const int32_t* T, int64_t n, int dp, double f, double a, double b,
                                uint8_t* todo) {
    int32_t count = 0;
    for (int64_t i = 0; i < n; ++i) {
        todo[i] = (first || todo[i]) && norm_fails(e[i], var[i], T[i], dp, f, a, b);
        count += todo[i];
    }
    return count;
}

struct SumExp {
    float max = -INFINITY; // max of the non-NaN values (-inf: none)
    double sum = 0;        // sum exp(v_i - max), in the device's order
    double log_sum_exp() const { return max + std::log(sum); }
};

// The CPU twin of the log-sum-exp kernels (of mu, at the end of a query).
inline SumExp sum_exp_host(const float* v, int64_t n) {
    uint32_t key = 0;
    for (int64_t i = 0; i < n; ++i) {
        const uint32_t k = max_key(v[i]);
        key = k > key ? k : key;
    }
    SumExp s;
    s.max = max_from_key(key);
    double vals[kNormThreads];
    for (int64_t b = 0; b < norm_blocks(n); ++b) {
        for (int t = 0; t < kNormThreads; ++t) {
            const int64_t i = b * kNormThreads + t;
            vals[t] = i < n ? static_cast<double>(exp_f(sub_rn(v[i], s.max))) : 0.0;
        }
        s.sum += block_sum_host(vals);
    }
    return s;
}

} // namespace winnow::cuda::adaptive
