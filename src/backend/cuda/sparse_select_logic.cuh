#pragma once
// Query-aware block selection on the GPU (AttentionParams::select_blocks), the arithmetic the kernel and its host twin
// share: compiled for the device by sparse_attention.cu and for the host by the tests (tests/ops/
// test_sparse_select_logic.cpp), so the host run reproduces the kernel's bounds bit for bit.
//
// A unit's score bound for one query head, ub = sum_d max(q_d * kmax_d, q_d * kmin_d), is summed the way one warp sums
// it: lane l adds dims l, l + 32, ... in order (lane_partial), then the 32 partial sums meet in an xor butterfly
// (offsets 16, 8, 4, 2, 1; every lane ends with the same value because a + b == b + a in IEEE arithmetic). The group's
// bound is the largest over its query heads, folded as std::max folds it on the CPU (a NaN head bound is passed over).
// The CPU kernel sums in another order, so its bounds may differ from these in the last bits: the chosen units then
// differ only where two bounds tie to within that rounding.
//
// The row keeps the `select` candidates with the highest bounds, ties to the lower unit: selection_key maps (bound,
// unit) to a 64-bit key whose unsigned order is exactly that order, all keys distinct, so the chosen set is every key
// >= the select-th largest, which the kernel finds by radix select (kth_largest_key_radix: 8 passes of one byte, a
// 256-bin histogram each, no sort).
#include <cmath>
#include <cstdint>
#include <cstring>

#include "backend/cuda/float_bits.cuh"

#ifdef __CUDACC__
#define WINNOW_SELECT_FN __host__ __device__ inline
#else
#define WINNOW_SELECT_FN inline
#endif

namespace winnow::cuda::select_logic {

constexpr int kLanes = 32;

// max(a, b) as the CPU kernel's _mm256_max_ps(a, b) gives it: the second operand unless the first is greater, so a NaN
// product (0 * inf) makes the bound NaN, and the unit no candidate, on both sides.
WINNOW_SELECT_FN float max_as_avx(float a, float b) { return a > b ? a : b; }

// Lane `lane`'s share of sum_d max(q_d * kmax_d, q_d * kmin_d): dims lane, lane + 32, ... of hd, in that order.
WINNOW_SELECT_FN float lane_partial(const float* q, const uint16_t* kmax, const uint16_t* kmin, int hd, int lane) {
    float s = 0.0f;
    for (int d = lane; d < hd; d += kLanes) {
        const float hi = q[d] * half_to_float(kmax[d]), lo = q[d] * half_to_float(kmin[d]);
        s = s + max_as_avx(hi, lo);
    }
    return s;
}

// The xor butterfly over 32 partial sums as the warp runs it (the host twin of warp_sum): the value every lane holds.
WINNOW_SELECT_FN float butterfly_sum(const float* partial) {
    float v[kLanes], next[kLanes];
    for (int l = 0; l < kLanes; ++l) v[l] = partial[l];
    for (int o = 16; o > 0; o >>= 1) {
        for (int l = 0; l < kLanes; ++l) next[l] = v[l] + v[l ^ o];
        for (int l = 0; l < kLanes; ++l) v[l] = next[l];
    }
    return v[0];
}

// std::max(ub, head_bound): the CPU's fold over the group's heads (a NaN head bound leaves ub as it was).
WINNOW_SELECT_FN float fold_max(float ub, float head_bound) { return ub < head_bound ? head_bound : ub; }

// The host twin of one unit's group bound: the warp's arithmetic for each of the `heads` query heads qg[g * hd ...].
inline float group_bound_host(const float* qg, int heads, const uint16_t* kmax, const uint16_t* kmin, int hd) {
    float ub = -INFINITY;
    for (int g = 0; g < heads; ++g) {
        float partial[kLanes];
        for (int l = 0; l < kLanes; ++l) partial[l] = lane_partial(qg + static_cast<size_t>(g) * hd, kmax, kmin, hd, l);
        ub = fold_max(ub, butterfly_sum(partial));
    }
    return ub;
}

// Unsigned order of the keys = the selection's order: a higher bound first, then the lower unit. -0 counts as +0 (they
// compare equal on the CPU, so the lower unit wins there too). Never 0 for a unit below 2^32 - 1, so 0 can mark "not a
// candidate". The bound must not be NaN (the CPU never makes a NaN bound a candidate).
WINNOW_SELECT_FN uint64_t selection_key(float bound, uint32_t unit) {
    return (static_cast<uint64_t>(ordered_bits(bound)) << 32) | (0xffffffffu - unit);
}
WINNOW_SELECT_FN uint32_t unit_of_key(uint64_t key) { return 0xffffffffu - static_cast<uint32_t>(key); }

// The k-th largest of n distinct keys (1 <= k <= the number of nonzero keys), by setting its bits from the top: the
// result t is the largest value with at least k keys >= t, which is the k-th key itself. A plain statement of the rule
// the tests hold the kernel's radix select (below) to.
inline uint64_t kth_largest_key(const uint64_t* keys, int n, int k) {
    uint64_t t = 0;
    for (int bit = 63; bit >= 0; --bit) {
        const uint64_t c = t | (uint64_t{1} << bit);
        int at_least = 0;
        for (int i = 0; i < n; ++i) at_least += keys[i] >= c;
        if (at_least >= k) t = c;
    }
    return t;
}

// The same k-th largest key by radix select, as the kernel runs it: one byte per pass from the top; each pass counts
// the nonzero keys that share the bytes chosen so far in a 256-bin histogram of their next byte, then takes the byte
// where the count from the top reaches k (k then drops by the keys in the bins above it). This host run does the
// kernel's bin arithmetic serially (the kernel builds the histogram with shared atomics and scans it with one warp).
inline uint64_t kth_largest_key_radix(const uint64_t* keys, int n, int k) {
    uint64_t prefix = 0;
    for (int shift = 56; shift >= 0; shift -= 8) {
        const uint64_t above = shift == 56 ? 0 : ~uint64_t{0} << (shift + 8); // the bytes chosen so far
        int hist[256] = {};
        for (int i = 0; i < n; ++i)
            if (keys[i] != 0 && (keys[i] & above) == prefix) ++hist[(keys[i] >> shift) & 255];
        int digit = 255, count_above = 0;
        while (count_above + hist[digit] < k) count_above += hist[digit--];
        prefix |= static_cast<uint64_t>(digit) << shift;
        k -= count_above;
    }
    return prefix;
}

} // namespace winnow::cuda::select_logic
