#pragma once
// The GPU AdaptiveSoftmax's elimination round (issue #15 item 2), its reduction: what one round of the CPU fast path's
// eliminate() (head/fast_adaptive_softmax.cpp) computes once pull_to_var has run, for k == 1:
//     b = S[0]; for (i : S) if (mu[i] > mu[b]) b = i;       floor_b = mu[b] - sqrt(width2 * var[b])
//     keep i of S when gap = floor_b - mu[i] <= 0 || width2 * var[i] >= gap * gap; all_exact: every kept T >= d'
// written once for the device and the host (the host run is the CPU twin: tests/ops/test_adaptive_rounds_logic.cpp;
// the CUDA build: adaptive_rounds.cu). S is a flag per arm (nonzero: a candidate), S's order the arms' order: the
// CPU's S starts as 0 .. n-1 and each round keeps its survivors in order, so it is always ascending.
// (k > 1, the k-th largest lower bound as the floor, is not written here.)
//
// The argmax as a reduction. The loop's b is, S[0]'s mu not being NaN, the first arm of S whose mu equals the
// largest non-NaN mu (b moves only on a strict increase, and a NaN never compares greater nor lets anything compare
// greater than it, so NaN arms are passed over); -0 and +0 are equal, so the first of them. When S[0]'s mu is NaN
// the loop never moves: b = S[0] (then floor_b is NaN and the round keeps nobody, as the CPU's does). Both parts are
// exact, order-free reductions, so a grid's blocks and atomics in any order give the host's sequential result:
//   * first: the smallest index in S (a min over ints);
//   * key: the max over the non-NaN arms of S of best_key(mu, i), a 64-bit integer ordered as the float mu (-0
//     folded onto +0), then by the lower index; 0 stands for "none" (no real key is 0).
// pick_best combines them. The keep decision is a pure function of the arm's (mu, var) and the round's floor_b, with
// the CPU's float operations rounded separately (mul_rn etc.: nvcc would fuse gap * gap into the comparison).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "backend/cuda/adaptive_warmup_logic.cuh" // mul_rn, add_rn, WINNOW_WARMUP_FN
#include "backend/cuda/float_bits.cuh"

namespace winnow::cuda::adaptive {

WINNOW_WARMUP_FN float sub_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}
WINNOW_WARMUP_FN float sqrt_rn(float a) {
#ifdef __CUDA_ARCH__
    return __fsqrt_rn(a);
#else
    return std::sqrt(a); // IEEE: correctly rounded, as the CPU path's std::sqrt(float)
#endif
}

constexpr int32_t kNoArm = 0x7fffffff; // `first` of an empty S (the identity of the min)

// One round's result (also the device kernels' scratch: first and key are the two reductions).
struct RoundResult {
    unsigned long long key = 0; // max best_key over S (0: no non-NaN arm)
    int32_t first = kNoArm;     // the smallest index in S
    int32_t best = -1;          // b (-1: S empty)
    float floor_b = 0.0f;       // mu[b] - sqrt(width2 var[b]) (0 when S is empty)
    int32_t kept = 0;           // arms kept
    int32_t all_exact = 1;      // every kept arm has T >= d'
};

// The kernels' 64-bit atomicMax updates `key` in place: it must lead the struct, and the struct be 8-byte aligned.
static_assert(alignof(RoundResult) == 8 && offsetof(RoundResult, key) == 0, "RoundResult::key must be an aligned 64-bit word");

// The argmax key of arm i (i < 2^31) with estimate mu: the float's bits mapped to an unsigned order (negatives
// flipped, positives above them), in the high half; ~i in the low half, so that of equal mu the lower index is larger.
WINNOW_WARMUP_FN unsigned long long best_key(float mu, int64_t i) {
    if (mu != mu) return 0; // NaN: passed over (pick_best handles a NaN S[0])
    const uint32_t u = ordered_bits(mu); // -0 == +0: one key, the index decides
    return (static_cast<unsigned long long>(u) << 32) | (0xffffffffu - static_cast<uint32_t>(i));
}

// b from the two reductions, as the CPU loop gives it.
WINNOW_WARMUP_FN int32_t pick_best(int32_t first, unsigned long long key, const float* mu) {
    if (first == kNoArm) return -1;
    if (mu[first] != mu[first] || key == 0) return first; // a NaN S[0]: the loop never leaves it
    return static_cast<int32_t>(0xffffffffu - static_cast<uint32_t>(key & 0xffffffffu));
}

WINNOW_WARMUP_FN float best_floor(float mu_b, float var_b, float width2) { return sub_rn(mu_b, sqrt_rn(mul_rn(width2, var_b))); }

// Whether arm (mu, var) of S survives the round: its upper bound mu + sqrt(width2 var) reaches floor_b, decided as
// the CPU does, without the square root. A NaN gap or var keeps nothing (both comparisons false).
WINNOW_WARMUP_FN bool keep_arm(float mu, float var, float floor_b, float width2) {
    const float gap = sub_rn(floor_b, mu);
    return gap <= 0.0f || mul_rn(width2, var) >= mul_rn(gap, gap);
}

// The CPU twin of the kernels: the two reductions as sequential folds, then the keep flags (keep[i] = 0 outside S).
inline RoundResult eliminate_round_host(const float* mu, const float* var, const int32_t* T, const uint8_t* in_S, uint8_t* keep, int64_t n_arms, int dp,
                                        float width2) {
    RoundResult r;
    for (int64_t i = 0; i < n_arms; ++i)
        if (in_S[i]) {
            if (r.first == kNoArm) r.first = static_cast<int32_t>(i);
            const unsigned long long k = best_key(mu[i], i);
            if (k > r.key) r.key = k;
        }
    r.best = pick_best(r.first, r.key, mu);
    if (r.best >= 0) r.floor_b = best_floor(mu[r.best], var[r.best], width2);
    for (int64_t i = 0; i < n_arms; ++i) {
        keep[i] = r.best >= 0 && in_S[i] && keep_arm(mu[i], var[i], r.floor_b, width2);
        if (keep[i]) {
            ++r.kept;
            if (T[i] < dp) r.all_exact = 0;
        }
    }
    return r;
}

} // namespace winnow::cuda::adaptive
