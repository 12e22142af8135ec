// The CUDA fused head's algorithm (backend/cuda/head_top_k_logic.cuh: tiles, the bitonic network, the candidate
// lists, the warp's k-way merge, the log-sum-exp parts) run on the host with the kernels' own functions, against the
// CPU backend's top_k on the same logits: the same ids and values bit for bit, the log-normalizer within rounding.
// On a machine without a GPU this is what proves the kernels' logic; the op harness (head_top_k cases) compares the
// CUDA build itself with linear + top_k and the double reference on the GPU machine.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cuda/head_top_k_logic.cuh"
#include "winnow/error.h"

namespace {

using namespace winnow;
namespace ht = winnow::cuda::head_top_k;

// Both kernels on the host: each tile as head_tiles_kernel does it (one thread), then the merge block (one thread for
// the sort of the tiles' maxima, the warp's 32 lanes one after another, the butterfly replaced by a fold with the
// same rule: the pick is a maximum in a total order, so the order of combination does not matter).
TopK emulate(const std::vector<float>& logits, int k, bool want_log_norm) {
    const int64_t n = static_cast<int64_t>(logits.size()), tiles = ht::n_tiles(n);
    const int kk = ht::per_tile(k);
    const ht::Layout lay = ht::layout(n, k);
    std::vector<uint8_t> ws(lay.bytes, 0xAB); // no initial contents are needed: poison it
    auto* vals = reinterpret_cast<float*>(ws.data() + lay.vals);
    auto* ids = reinterpret_cast<int32_t*>(ws.data() + lay.ids);
    auto* tmax = reinterpret_cast<float*>(ws.data() + lay.tile_max);
    auto* tsum = reinterpret_cast<double*>(ws.data() + lay.tile_sum);
    auto* head = reinterpret_cast<int32_t*>(ws.data() + lay.head);
    for (int64_t t = 0; t < tiles; ++t) {
        float v[ht::kTile];
        int32_t id[ht::kTile];
        for (int slot = 0; slot < ht::kTile; ++slot) {
            const int64_t r = ht::tile_row(t, slot);
            v[slot] = r < n ? logits[r] : -INFINITY;
            id[slot] = r < n ? static_cast<int32_t>(r) : ht::kPadId;
        }
        ht::sort_tile(v, id, 0, 1, [] {});
        for (int i = 0; i < kk; ++i) vals[t * kk + i] = v[i], ids[t * kk + i] = id[i];
        double s = 0;
        for (int i = 0; i < ht::kTile; ++i) s += ht::lse_term(v[i], id[i], v[0]);
        tmax[t] = v[0];
        tsum[t] = s;
        head[t] = 0;
    }
    TopK r;
    if (want_log_norm) {
        float m = -INFINITY;
        for (int64_t t = 0; t < tiles; ++t) m = std::fmax(m, tmax[t]);
        double s = 0;
        for (int64_t t = 0; t < tiles; ++t) s += tsum[t] * ht::lse_scale(tmax[t], m);
        r.log_norm = ht::log_norm(m, s);
    }
    // the merge block: with few enough tiles, the tiles sorted by their best entry and the best min(k, tiles) kept
    int64_t n_lists = tiles;
    std::vector<float> sv;
    std::vector<int32_t> sid, shead;
    const int32_t* list_tile = nullptr;
    if (ht::merge_sorts_tiles(tiles)) {
        const int p = ht::pow2_at_least(tiles);
        sv.resize(p), sid.resize(p);
        for (int i = 0; i < p; ++i) {
            sv[i] = i < tiles ? vals[static_cast<int64_t>(i) * kk] : -INFINITY;
            sid[i] = i < tiles ? ids[static_cast<int64_t>(i) * kk] : ht::kPadId;
        }
        ht::sort_entries(sv.data(), sid.data(), p, 0, 1, [] {});
        n_lists = ht::kept_tiles(tiles, k);
        shead.assign(static_cast<size_t>(n_lists), 0);
        for (int64_t j = 0; j < n_lists; ++j) sid[j] = ht::tile_of(sid[j]);
        list_tile = sid.data();
        head = shead.data();
    }
    std::vector<ht::LaneBest> mine(32);
    for (int lane = 0; lane < 32; ++lane) mine[lane] = ht::lane_rescan(vals, ids, head, list_tile, n_lists, kk, lane);
    for (int round = 0; round < k; ++round) {
        ht::LaneBest b = mine[0];
        int bl = 0;
        for (int lane = 1; lane < 32; ++lane)
            if (ht::lane_wins(mine[lane], lane, b, bl)) b = mine[lane], bl = lane;
        r.ids.push_back(b.id);
        r.logits.push_back(b.v);
        if (b.list >= 0) {
            head[b.list] += 1;
            mine[bl] = ht::lane_rescan(vals, ids, head, list_tile, n_lists, kk, bl);
        }
    }
    return r;
}

void expect_same_as_top_k(const std::vector<float>& l, int k, const std::string& what) {
    auto cpu = make_cpu_backend(1);
    Tensor t = cpu->alloc(GgmlType::F32, 1, static_cast<int64_t>(l.size()));
    cpu->upload(l.data(), t);
    const TopK want = cpu->top_k(t, k, true);
    const TopK got = emulate(l, k, true);
    ASSERT_EQ(got.ids, want.ids) << what << " k " << k;
    ASSERT_EQ(got.logits, want.logits) << what << " k " << k;
    // every logit -inf: the log of an empty sum, -inf on the device and on the twin
    if (std::all_of(l.begin(), l.end(), [](float v) { return v == -INFINITY; })) {
        EXPECT_EQ(got.log_norm, -INFINITY) << what;
        EXPECT_EQ(want.log_norm, -INFINITY) << what << ": the CPU twin";
    } else if (std::isinf(want.log_norm)) EXPECT_EQ(got.log_norm, want.log_norm) << what;
    else EXPECT_NEAR(got.log_norm, want.log_norm, 1e-12 * std::max(1.0, std::fabs(want.log_norm))) << what << " k " << k;
}

// The ids of the top_k kernel's order (sample_chain::top_k_key, backend/cuda/top_k.cu), the best k.
std::vector<int32_t> by_top_k_key(const std::vector<float>& l, int k) {
    std::vector<int32_t> ids(l.size());
    std::iota(ids.begin(), ids.end(), 0);
    auto key = [&](int32_t i) { return winnow::cuda::sample_chain::top_k_key(l[static_cast<size_t>(i)], static_cast<uint32_t>(i)); };
    std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return key(a) < key(b); });
    ids.resize(static_cast<size_t>(k));
    return ids;
}

// A row holding NaNs: the ids of the top_k kernel's order, which for k = 1 are the CPU twin's (std::max_element: a NaN
// in row 0 wins, the others never do; its partial_sort for k > 1 is not defined on NaNs), the logits' bits, and a NaN
// log-normalizer, as the twin's.
void expect_nan_row_as_top_k(const std::vector<float>& l, int k, const std::string& what) {
    auto cpu = make_cpu_backend(1);
    Tensor t = cpu->alloc(GgmlType::F32, 1, static_cast<int64_t>(l.size()));
    cpu->upload(l.data(), t);
    const TopK got = emulate(l, k, true);
    const std::vector<int32_t> want = by_top_k_key(l, k);
    ASSERT_EQ(got.ids, want) << what << " k " << k;
    if (k == 1) {
        ASSERT_EQ(got.ids, cpu->top_k(t, 1, false).ids) << what;
    }
    for (int i = 0; i < k; ++i)
        ASSERT_EQ(std::memcmp(&got.logits[i], &l[static_cast<size_t>(want[i])], 4), 0) << what << " k " << k << " entry " << i;
    EXPECT_TRUE(std::isnan(got.log_norm)) << what << " k " << k;
    EXPECT_TRUE(std::isnan(cpu->top_k(t, 1, true).log_norm)) << what;
}

std::vector<float> normal(size_t n, uint64_t seed, float sd) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, sd);
    std::vector<float> v(n);
    for (auto& x : v) x = nd(rng);
    return v;
}

TEST(HeadTopKLogic, BitonicNetworkSortsTilesBestFirstLowerIdOnTies) {
    std::mt19937_64 rng(5);
    for (int trial = 0; trial < 200; ++trial) {
        float v[ht::kTile];
        int32_t id[ht::kTile];
        std::vector<int32_t> perm(ht::kTile);
        std::iota(perm.begin(), perm.end(), 1000);
        std::shuffle(perm.begin(), perm.end(), rng);
        for (int i = 0; i < ht::kTile; ++i) {
            v[i] = static_cast<float>(static_cast<int>(rng() % (trial % 4 == 0 ? 3 : 50))); // many exact ties
            id[i] = perm[i];
        }
        if (trial % 7 == 0) v[3] = -INFINITY, id[3] = ht::kPadId;
        std::vector<std::pair<float, int32_t>> want;
        for (int i = 0; i < ht::kTile; ++i) want.push_back({v[i], id[i]});
        std::sort(want.begin(), want.end(), [](const auto& a, const auto& b) { return ht::better(a.first, a.second, b.first, b.second); });
        ht::sort_tile(v, id, 0, 1, [] {});
        for (int i = 0; i < ht::kTile; ++i) {
            ASSERT_EQ(v[i], want[i].first) << "trial " << trial << " slot " << i;
            ASSERT_EQ(id[i], want[i].second) << "trial " << trial << " slot " << i;
        }
    }
}

TEST(HeadTopKLogic, SameAsTopKOnRandomLogits) {
    for (int64_t n : {1, 2, 31, 127, 128, 129, 1000, 4096, 49152, 50257})
        for (int k : {1, 2, 40, 127, 128, 129, 300, 1000, 50257}) {
            if (k > n) continue;
            if (n > 5000 && k > 300) continue; // the CPU's partial sort of a whole large vocabulary: slow for no new path
            expect_same_as_top_k(normal(static_cast<size_t>(n), 17 + n, 4.0f), k, "n " + std::to_string(n));
        }
}

// Past kMaxSortTiles tiles the merge takes every tile's list (no sort of the maxima): the same answers.
TEST(HeadTopKLogic, SameAsTopKWithTooManyTilesToSort) {
    const int64_t n = static_cast<int64_t>(ht::kMaxSortTiles) * ht::kTile + 1000;
    ASSERT_FALSE(ht::merge_sorts_tiles(ht::n_tiles(n)));
    ASSERT_TRUE(ht::merge_sorts_tiles(ht::n_tiles(n - 1000)));
    auto l = normal(static_cast<size_t>(n), 23, 3.0f);
    l[5] = l[n - 1] = l[n / 2] = 40.0f; // ties in the first, the last and a middle tile
    for (int k : {1, 3, 40, 129}) expect_same_as_top_k(l, k, "n " + std::to_string(n));
    l.resize(static_cast<size_t>(n - 1000)); // exactly kMaxSortTiles tiles: the sorted path at its limit
    for (int k : {1, 40, 129}) expect_same_as_top_k(l, k, "n " + std::to_string(n - 1000));
}

TEST(HeadTopKLogic, TiesAcrossTilesAndDegenerateRows) {
    const int64_t n = 50257;
    auto l = normal(n, 3, 2.0f);
    // equal maxima in the first and the last tile, and in the middle of two others
    l[n - 1] = l[7] = l[128 * 200 + 5] = 30.0f;
    l[123] = l[45000] = 29.0f;
    for (int k : {1, 2, 3, 5, 40, 128, 129}) expect_same_as_top_k(l, k, "planted ties");
    // one tile holds the best 128 (the merge keeps k tiles, and this one's list is all of them), then another's
    auto one = normal(20000, 4, 1.0f);
    for (int i = 0; i < ht::kTile; ++i) one[3 * ht::kTile + i] = 50.0f + 0.001f * static_cast<float>(i % 7);
    for (int k : {1, 40, 128, 129, 300}) expect_same_as_top_k(one, k, "one tile holds the best");
    // every logit equal: the ids in order
    std::vector<float> flat(1000, 0.5f);
    for (int k : {1, 40, 128, 129, 1000}) expect_same_as_top_k(flat, k, "all equal");
    // -inf logits, a tile of them, and every logit -inf
    std::vector<float> inf = normal(1000, 9, 1.0f);
    for (int i = 128; i < 256; ++i) inf[i] = -INFINITY;
    inf[3] = inf[999] = -INFINITY;
    for (int k : {1, 40, 1000}) expect_same_as_top_k(inf, k, "-inf entries");
    std::vector<float> all_inf(300, -INFINITY);
    for (int k : {1, 300}) expect_same_as_top_k(all_inf, k, "all -inf");
}

// NaN logits (a NaN weight or activation) are ordered as the top_k op orders them, wherever they fall: row 0 (first),
// scattered over the tiles, ties with other values, a whole tile of them, a tile of -inf with one NaN, every row; on
// both merge paths. With `v > bv` alone a NaN was incomparable, and the network left it wherever the pairings fell.
TEST(HeadTopKLogic, NaNRowsOrderedAsTopK) {
    const float nan = NAN, inf = INFINITY;
    std::vector<std::vector<float>> rows{{nan}, {nan, 1, 2}, {1, nan, 2}, {nan, nan}, {1, nan}, {nan, -inf}, {-inf, nan, -inf}, {-0.0f, nan, 0.0f},
                                         {2, nan, 2}, {0, nan, 3, nan, 3}, {-inf, -inf, nan, 5, inf, nan, inf}, {-inf, nan, nan, nan, -1}};
    for (int64_t n : {1000, 50257}) {
        auto first = normal(static_cast<size_t>(n), 31 + n, 2.0f);
        first[0] = nan;
        first[n - 1] = nan;
        rows.push_back(first);
        auto scattered = normal(static_cast<size_t>(n), 37 + n, 2.0f);
        for (int64_t i = 5; i < n; i += 97) scattered[i] = nan;
        scattered[200] = scattered[201] = scattered[n / 2] = 30.0f; // ties among the best, NaNs around them
        rows.push_back(scattered);
        auto tiles = normal(static_cast<size_t>(n), 41 + n, 2.0f);
        for (int i = 2 * ht::kTile; i < 3 * ht::kTile; ++i) tiles[i] = nan;                     // a tile of NaNs
        for (int i = 4 * ht::kTile; i < 5 * ht::kTile; ++i) tiles[i] = i == 4 * ht::kTile + 9 ? nan : -inf; // -inf and a NaN
        rows.push_back(tiles);
        auto heads = normal(static_cast<size_t>(n), 47 + n, 2.0f); // a NaN in each tile's first row but the first tile's
        for (int64_t i = ht::kTile; i < n; i += ht::kTile) heads[i] = nan;
        rows.push_back(heads);
    }
    rows.push_back(std::vector<float>(1000, nan));
    for (const auto& l : rows) {
        const int n = static_cast<int>(l.size());
        const std::string what = "row of " + std::to_string(n) + " starting " + std::to_string(l[0]);
        for (int k : {1, 2, 40, 128, 129, 300, n})
            if (k <= n) expect_nan_row_as_top_k(l, k, what);
    }
    // past kMaxSortTiles tiles (the merge takes every list): a NaN in row 0, then one elsewhere only
    const int64_t big = static_cast<int64_t>(ht::kMaxSortTiles) * ht::kTile + 1000;
    auto l = normal(static_cast<size_t>(big), 43, 3.0f);
    for (int64_t i = 0; i < big; i += 4099) l[i] = nan;
    for (int k : {1, 40, 129}) expect_nan_row_as_top_k(l, k, "over kMaxSortTiles, NaN in row 0");
    l[0] = 1.0f;
    for (int k : {1, 40}) expect_nan_row_as_top_k(l, k, "over kMaxSortTiles, NaNs past row 0");
}

// The log-normalizer's terms as both kernels use them: a row of -inf is the log of an empty sum, -inf (not the NaN of
// exp(-inf - -inf)), in any number of tiles; a NaN anywhere makes it NaN, also inside an otherwise -inf tile; -inf
// entries of a finite row add nothing.
TEST(HeadTopKLogic, LogNormOfMinusInfAndNaNRows) {
    for (int64_t n : {1, 7, 128, 129, 1000}) {
        const std::vector<float> l(static_cast<size_t>(n), -INFINITY);
        EXPECT_EQ(emulate(l, 1, true).log_norm, -INFINITY) << "n " << n;
    }
    std::vector<float> one_nan(1000, -INFINITY);
    one_nan[700] = NAN;
    EXPECT_TRUE(std::isnan(emulate(one_nan, 1, true).log_norm));
    EXPECT_TRUE(std::isnan(emulate(one_nan, 5, true).log_norm));
    EXPECT_EQ(ht::exp_term(-INFINITY, -INFINITY), 0.0);
    EXPECT_EQ(ht::exp_term(-INFINITY, 3.0f), 0.0);
    EXPECT_EQ(ht::exp_term(3.0f, 3.0f), 1.0);
    EXPECT_TRUE(std::isnan(ht::exp_term(NAN, -INFINITY)));
    EXPECT_TRUE(std::isnan(ht::exp_term(1.0f, NAN)));
    EXPECT_EQ(ht::log_norm(-INFINITY, 0.0), -INFINITY);
    EXPECT_TRUE(std::isnan(ht::log_norm(-INFINITY, NAN)));
    EXPECT_EQ(ht::lse_term(5.0f, ht::kPadId, -INFINITY), 0.0);
}

TEST(HeadTopKLogic, WorkspacePartsAreAlignedAndDisjoint) {
    for (int64_t rows : {1, 128, 129, 50257, 131072})
        for (int k : {1, 3, 40, 128, 500}) {
            if (k > rows) continue;
            const ht::Layout l = ht::layout(rows, k);
            const size_t t = static_cast<size_t>(ht::n_tiles(rows)), c = t * ht::per_tile(k);
            for (size_t off : {l.vals, l.ids, l.tile_max, l.tile_sum, l.head, l.bytes}) EXPECT_EQ(off % 8, 0u);
            EXPECT_GE(l.ids, l.vals + 4 * c);
            EXPECT_GE(l.tile_max, l.ids + 4 * c);
            EXPECT_GE(l.tile_sum, l.tile_max + 4 * t);
            EXPECT_GE(l.head, l.tile_sum + 8 * t);
            EXPECT_GE(l.bytes, l.head + 4 * t);
        }
}

} // namespace

namespace {

// The op's argument checks (backend.cpp: check_head_top_k_args), as every backend makes them, on the CPU twin.
TEST(HeadTopKOp, CpuRefusesBadArguments) {
    auto cpu = winnow::make_cpu_backend(1);
    std::vector<float> w(300 * 64, 0.01f);
    winnow::Matrix m;
    m.type = winnow::GgmlType::F32;
    m.rows = 300;
    m.cols = 64;
    m.row_bytes = 64 * 4;
    m.data = reinterpret_cast<const uint8_t*>(w.data());
    const winnow::Tensor x = cpu->alloc(winnow::GgmlType::F32, 1, 64), wrong = cpu->alloc(winnow::GgmlType::F32, 1, 96),
                         two = cpu->alloc(winnow::GgmlType::F32, 2, 64);
    EXPECT_THROW(cpu->head_top_k(m, x, 0, false), winnow::Error);
    EXPECT_THROW(cpu->head_top_k(m, x, 301, false), winnow::Error);
    EXPECT_THROW(cpu->head_top_k(m, wrong, 5, false), winnow::Error);
    EXPECT_THROW(cpu->head_top_k(m, two, 5, false), winnow::Error);
    EXPECT_THROW(cpu->head_top_k(winnow::Matrix{}, x, 1, false), winnow::Error);
    const winnow::TopK all_equal = cpu->head_top_k(m, x, 300, true); // every logit 0: the ids in order
    EXPECT_EQ(all_equal.ids.front(), 0);
    EXPECT_EQ(all_equal.ids.back(), 299);
    EXPECT_NEAR(all_equal.log_norm, std::log(300.0), 1e-12);
}

} // namespace
