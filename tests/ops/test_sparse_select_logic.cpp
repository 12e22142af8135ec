// The CUDA selection kernel's arithmetic run on the host (backend/cuda/sparse_select_logic.cuh): the fp16 widening, the
// warp's bound, the key order and the k-th key search, each against an independent statement of the rule (io/quant's
// fp16 decoder, a double bound, the CPU kernel's comparator with std::sort). The kernel itself runs these functions,
// so on a GPU machine the op harness's selection cases check the rest (the block-wide passes) against the reference.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#ifdef __AVX__
#include <immintrin.h>
#endif

#include "backend/cuda/sparse_select_logic.cuh"
#include "io/quant.h"
#include "sparse/key_summary.h"

namespace winnow {
namespace {

namespace sl = cuda::select_logic;

TEST(SparseSelectLogic, HalfWideningEqualsTheProjectDecoderForEveryValue) {
    int mismatches = 0;
    for (uint32_t h = 0; h < 65536; ++h) {
        const float a = cuda::half_to_float(static_cast<uint16_t>(h)), b = fp16_to_fp32(static_cast<uint16_t>(h));
        if (std::isnan(a) != std::isnan(b) || (!std::isnan(a) && cuda::float_bits(a) != cuda::float_bits(b))) ++mismatches;
    }
    EXPECT_EQ(mismatches, 0);
}

// The warp's bound of a unit equals sum_d max(q_d kmax_d, q_d kmin_d) computed in double to fp32 rounding, bounds every
// key between the summaries, and the group bound is the largest head's.
TEST(SparseSelectLogic, GroupBoundIsTheWarpSumOfTheRule) {
    std::mt19937 rng(5);
    std::normal_distribution<float> nd;
    for (int hd : {64, 48, 128}) {
        const int heads = 3;
        std::vector<float> q(static_cast<size_t>(heads) * hd), key_a(hd), key_b(hd);
        std::vector<uint16_t> kmax(hd), kmin(hd);
        for (int trial = 0; trial < 50; ++trial) {
            for (float& x : q) x = nd(rng);
            for (int d = 0; d < hd; ++d) {
                key_a[d] = nd(rng), key_b[d] = nd(rng);
                kmax[d] = sparse::fp16_round_up(std::max(key_a[d], key_b[d]));
                kmin[d] = sparse::fp16_round_down(std::min(key_a[d], key_b[d]));
            }
            const float ub = sl::group_bound_host(q.data(), heads, kmax.data(), kmin.data(), hd);
            double best = -INFINITY, best_dot = -INFINITY;
            for (int g = 0; g < heads; ++g) {
                double sum = 0, dot_a = 0, dot_b = 0;
                for (int d = 0; d < hd; ++d) {
                    const double qd = q[static_cast<size_t>(g) * hd + d];
                    sum += std::max(qd * fp16_to_fp32(kmax[d]), qd * fp16_to_fp32(kmin[d]));
                    dot_a += qd * key_a[d], dot_b += qd * key_b[d];
                }
                best = std::max(best, sum), best_dot = std::max({best_dot, dot_a, dot_b});
            }
            EXPECT_NEAR(ub, best, 1e-5 * (1 + std::abs(best))) << "hd " << hd;
            EXPECT_GE(ub + 1e-4, best_dot) << "the bound must bound the keys it summarises";
        }
    }
}

// The butterfly is the warp's: lanes pair as l ^ 16, l ^ 8, ... (a mutant summing lanes in index order gives other bits
// for this input, so the test can tell).
TEST(SparseSelectLogic, ButterflyPairsLanesAsTheWarpShuffleDoes) {
    float partial[sl::kLanes];
    for (int l = 0; l < sl::kLanes; ++l) partial[l] = 1.0f + static_cast<float>(l) * 1e-7f * (l % 3 == 0 ? 1e4f : 1.0f);
    // the warp: after offset o, lane l holds v[l] + v[l ^ o]; written out for lane 0
    float v[sl::kLanes];
    std::copy(partial, partial + sl::kLanes, v);
    for (int o = 16; o > 0; o >>= 1) {
        float next[sl::kLanes];
        for (int l = 0; l < sl::kLanes; ++l) next[l] = v[l] + v[l ^ o];
        std::copy(next, next + sl::kLanes, v);
    }
    EXPECT_EQ(cuda::float_bits(sl::butterfly_sum(partial)), cuda::float_bits(v[0]));
    float sequential = 0.0f;
    for (float p : partial) sequential += p;
    EXPECT_NE(cuda::float_bits(sequential), cuda::float_bits(v[0])) << "the input must tell the two orders apart";
}

// The keys' unsigned order is the CPU kernel's selection order: a higher bound first, equal bounds (-0 == +0) the lower
// unit first; infinities included.
TEST(SparseSelectLogic, KeyOrderIsTheCpuComparator) {
    std::mt19937 rng(7);
    std::vector<float> pool = {0.0f, -0.0f, 1.0f, -1.0f, INFINITY, -INFINITY, 1e-40f, -1e-40f, 3.5f, 3.5f, -2.25f};
    std::uniform_real_distribution<float> ud(-10, 10);
    for (int i = 0; i < 200; ++i) pool.push_back(i % 4 == 0 ? pool[rng() % 11] : ud(rng));
    std::vector<std::pair<float, int>> cand;
    for (size_t u = 0; u < pool.size(); ++u) cand.emplace_back(pool[u], static_cast<int>(u));
    auto cpu_order = cand;
    std::sort(cpu_order.begin(), cpu_order.end(), [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    auto key_order = cand;
    std::sort(key_order.begin(), key_order.end(), [](const auto& a, const auto& b) {
        return sl::selection_key(a.first, a.second) > sl::selection_key(b.first, b.second);
    });
    for (size_t i = 0; i < cand.size(); ++i) ASSERT_EQ(key_order[i].second, cpu_order[i].second) << "at rank " << i;
    EXPECT_EQ(sl::unit_of_key(sl::selection_key(-3.0f, 1234)), 1234u);
    EXPECT_NE(sl::selection_key(-INFINITY, 0), 0u) << "0 marks a non-candidate";
}

// max_as_avx is the CPU kernel's _mm256_max_ps(q * kmax, q * kmin), operands in that order: the second unless the first
// is greater, so a NaN product on the kmin side makes the bound NaN (no candidate) and one on the kmax side does not.
TEST(SparseSelectLogic, MaxIsTheCpuKernelsMaxps) {
    const float vals[] = {NAN, -NAN, 0.0f, -0.0f, 1.0f, -1.0f, INFINITY, -INFINITY, 1e-45f, 2.5f};
    for (float a : vals)
        for (float b : vals) {
            const float want = a > b ? a : b;
            EXPECT_EQ(cuda::float_bits(sl::max_as_avx(a, b)), cuda::float_bits(want)) << a << " " << b;
#ifdef __AVX__
            alignas(32) float out[8];
            _mm256_store_ps(out, _mm256_max_ps(_mm256_set1_ps(a), _mm256_set1_ps(b)));
            EXPECT_EQ(cuda::float_bits(sl::max_as_avx(a, b)), cuda::float_bits(out[0])) << a << " " << b;
#endif
        }
    // q_d = 0 against kmin = -inf (a key below fp16's range): 0 * -inf is NaN on the kmin side, so the bound is NaN
    const float q[2] = {0.0f, 1.0f};
    const uint16_t kmax[2] = {0x3c00, 0x3c00}, kmin[2] = {0xfc00, 0x3c00}; // 1, 1 / -inf, 1
    EXPECT_TRUE(std::isnan(sl::lane_partial(q, kmax, kmin, 2, 0)));
}

// kth_largest_key finds the k-th key for every k, with non-candidates (0) among the keys, and the chosen set (keys >=
// it) is exactly the top k of the CPU's order.
TEST(SparseSelectLogic, KthLargestKeyChoosesTheTopK) {
    std::mt19937 rng(11);
    std::normal_distribution<float> nd;
    const int n = 300;
    std::vector<uint64_t> keys(n);
    std::vector<std::pair<float, int>> cand;
    for (int u = 0; u < n; ++u) {
        if (u % 5 == 0) continue; // not a candidate
        const float b = u % 7 == 0 ? 1.5f : nd(rng); // ties too
        keys[u] = sl::selection_key(b, u);
        cand.emplace_back(b, u);
    }
    std::sort(cand.begin(), cand.end(), [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    for (int k : {1, 2, 17, 64, static_cast<int>(cand.size())}) {
        const uint64_t t = sl::kth_largest_key(keys.data(), n, k);
        EXPECT_EQ(sl::kth_largest_key_radix(keys.data(), n, k), t) << "the kernel's radix select, k " << k;
        std::vector<int> chosen, expected;
        for (int u = 0; u < n; ++u)
            if (keys[u] >= t && keys[u] != 0) chosen.push_back(u);
        for (int i = 0; i < k; ++i) expected.push_back(cand[i].second);
        std::sort(expected.begin(), expected.end());
        EXPECT_EQ(chosen, expected) << "k " << k;
    }
}

// The kernel's radix select against the bitwise search on keys that share leading bytes (one bound, many units; bounds
// a few ulps apart; -inf bounds, whose keys have a zero top byte), for every k.
TEST(SparseSelectLogic, RadixSelectEqualsTheBitwiseSearch) {
    std::mt19937 rng(13);
    std::vector<uint64_t> keys;
    for (int u = 0; u < 700; ++u) {
        float b = 0.0f;
        switch (u % 5) {
        case 0: b = 3.0f; break;                                                   // a wide tie
        case 1: b = std::nextafter(3.0f, 10.0f) + static_cast<float>(u % 3) * 1e-6f; break; // just above it
        case 2: b = -INFINITY; break;
        case 3: b = std::normal_distribution<float>()(rng); break;
        default: keys.push_back(0); continue; // not a candidate
        }
        keys.push_back(sl::selection_key(b, static_cast<uint32_t>(u)));
    }
    const int n = static_cast<int>(keys.size()), candidates = static_cast<int>(std::count_if(keys.begin(), keys.end(), [](uint64_t k) { return k != 0; }));
    for (int k = 1; k <= candidates; ++k) ASSERT_EQ(sl::kth_largest_key_radix(keys.data(), n, k), sl::kth_largest_key(keys.data(), n, k)) << "k " << k;
}

} // namespace
} // namespace winnow
