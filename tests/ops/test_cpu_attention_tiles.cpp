// The CPU's prefill attention in tiles of rows (backend/cpu/attention_tiles_cpu.h): how a call is cut into tiles, and
// the tiles against the row walk they replace (attention_cpu.cpp), which they must equal within fp32 rounding. The op
// harness holds both paths to the double reference (tests/ops/op_cases.cpp: prefill shapes of 16 rows or more take the
// tiles, the others the row walk).
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cpu/attention_cpu.h"
#include "backend/cpu/attention_tiles_cpu.h"
#include "io/quant.h"

namespace winnow::cpu {
namespace {

std::vector<std::pair<int, int>> spans(const std::vector<RowTile>& tiles) {
    std::vector<std::pair<int, int>> out;
    for (const RowTile& t : tiles) out.emplace_back(t.t0, t.t1);
    return out;
}

TEST(CpuAttentionTiles, TilesCoverTheRowsAndStopAtMaskBlockRows) {
    using V = std::vector<std::pair<int, int>>;
    EXPECT_EQ(spans(plan_row_tiles(100, 20, 0, 32)), (V{{0, 32}, {32, 64}, {64, 96}, {96, 100}}));
    // positions 20..119 with 16-position mask blocks: a tile never holds rows of two block rows
    EXPECT_EQ(spans(plan_row_tiles(50, 20, 16, 32)), (V{{0, 12}, {12, 28}, {28, 44}, {44, 50}}));
    EXPECT_EQ(spans(plan_row_tiles(40, 0, 64, 16)), (V{{0, 16}, {16, 32}, {32, 40}}));
    EXPECT_TRUE(plan_row_tiles(0, 5, 0, 32).empty());
}

TEST(CpuAttentionTiles, RowsPerTileAimAtNinetySixQueriesAndFeedEveryThread) {
    EXPECT_EQ(tile_rows_for(512, 0, 0, 3, 3, 2), 32) << "SmolLM2: 3 heads a KV group";
    EXPECT_EQ(tile_rows_for(512, 0, 0, 1, 12, 2), 64) << "GPT-2's MHA: at most 64 rows";
    EXPECT_EQ(tile_rows_for(512, 0, 0, 4, 8, 2), 24) << "LLaMA-1B: 4 heads a group";
    EXPECT_EQ(tile_rows_for(64, 0, 0, 3, 3, 16), 8) << "16 threads: 8 tiles x 3 KV heads, the most there can be";
    EXPECT_EQ(tile_rows_for(64, 0, 0, 3, 3, 4), 16) << "4 threads want 8 tasks";
}

TEST(CpuAttentionTiles, PrefillBatchesTakeTheTiles) {
    attention_tiles_force(1);
    EXPECT_TRUE(attention_tiles_apply(16));
    EXPECT_FALSE(attention_tiles_apply(15)) << "decode and short batches keep the row walk";
    attention_tiles_force(0);
    EXPECT_FALSE(attention_tiles_apply(64));
    attention_tiles_force(-1);
}

struct TileShape {
    int n, pos0, n_head, n_head_kv, hd, mask_block; // mask_block < 0: the SPION denominator
    GgmlType cache = GgmlType::F16;
};

// n random cache rows of kv_dim values as the cache type holds them (F32 or F16)
std::vector<uint8_t> random_cache(GgmlType type, size_t values, std::mt19937& rng) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<uint8_t> bytes(values * (type == GgmlType::F32 ? 4 : 2));
    for (size_t i = 0; i < values; ++i) {
        const float x = nd(rng);
        if (type == GgmlType::F32) std::memcpy(bytes.data() + 4 * i, &x, 4);
        else {
            const uint16_t h = fp32_to_fp16(x);
            std::memcpy(bytes.data() + 2 * i, &h, 2);
        }
    }
    return bytes;
}

// The largest difference between the two paths' outputs (tiles, then the row walk)
double tiles_vs_rows(GgmlType type, const std::vector<float>& q, const void* k, const void* v, int n, const AttentionParams& p,
                     std::vector<float>* tiles_out = nullptr) {
    std::vector<float> tiles(q.size()), rows(q.size());
    attention_tiles_force(1);
    attention(type, q.data(), k, v, tiles.data(), n, p, 2);
    attention_tiles_force(0);
    attention(type, q.data(), k, v, rows.data(), n, p, 2);
    attention_tiles_force(-1);
    double worst = 0;
    for (size_t i = 0; i < q.size(); ++i)
        if (std::isfinite(rows[i])) {
            if (!std::isfinite(tiles[i])) return INFINITY;
            worst = std::max(worst, std::abs(static_cast<double>(tiles[i]) - rows[i]));
        } else if (!std::isnan(tiles[i]) && tiles[i] != rows[i]) {
            return INFINITY;
        }
    if (tiles_out) *tiles_out = tiles;
    return worst;
}

// fp16 key summaries of an fp32 cache [ctx][n_head_kv * hd] in KeyBlockSummary's layout, each a little outside the
// keys so that the fp16 rounding keeps them bounds; unit inf_unit (if any) gets +inf as every kmax.
struct Summaries {
    std::vector<uint16_t> kmax, kmin;
    KeyBlockSummary view(int unit) const { return KeyBlockSummary{unit, static_cast<int>(kmax.size() / hd_all), kmax.data(), kmin.data()}; }
    size_t hd_all = 1; // values per unit over the KV heads
};
Summaries summarise(const std::vector<float>& k, int ctx, int n_head_kv, int hd, int unit, int inf_unit = -1) {
    const int units = ctx / unit, kv_dim = n_head_kv * hd;
    Summaries s;
    s.hd_all = static_cast<size_t>(n_head_kv) * hd;
    s.kmax.resize(static_cast<size_t>(n_head_kv) * units * hd), s.kmin.resize(s.kmax.size());
    for (int h = 0; h < n_head_kv; ++h)
        for (int u = 0; u < units; ++u)
            for (int d = 0; d < hd; ++d) {
                float hi = -INFINITY, lo = INFINITY;
                for (int j = u * unit; j < (u + 1) * unit; ++j) {
                    const float x = k[static_cast<size_t>(j) * kv_dim + h * hd + d];
                    hi = std::max(hi, x), lo = std::min(lo, x);
                }
                const size_t at = (static_cast<size_t>(h) * units + u) * hd + d;
                s.kmax[at] = u == inf_unit ? 0x7c00 : fp32_to_fp16(hi + 0.01f);
                s.kmin[at] = fp32_to_fp16(lo - 0.01f);
            }
    return s;
}

class TilesAgainstRowWalk : public ::testing::TestWithParam<TileShape> {
protected:
    void TearDown() override { attention_tiles_force(-1); }
};

// Rows past a 256-key chunk, a tile that starts inside a chunk's keys (the causal diagonal cut per row), an F16 cache,
// and masks whose blocks cut the tiles.
TEST_P(TilesAgainstRowWalk, EqualWithinFp32Rounding) {
    const TileShape s = GetParam();
    const int ctx = s.pos0 + s.n, kv_dim = s.n_head_kv * s.hd;
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> q(static_cast<size_t>(s.n) * s.n_head * s.hd);
    for (float& x : q) x = 2.0f * nd(rng);
    const auto k = random_cache(s.cache, static_cast<size_t>(ctx) * kv_dim, rng), v = random_cache(s.cache, static_cast<size_t>(ctx) * kv_dim, rng);
    AttentionParams p;
    p.pos0 = s.pos0, p.n_head = s.n_head, p.n_head_kv = s.n_head_kv, p.head_dim = s.hd;
    BlockMask mask;
    if (s.mask_block != 0) {
        const int block = std::abs(s.mask_block), nb = (ctx + block - 1) / block;
        mask = BlockMask{block, nb, std::vector<uint8_t>(static_cast<size_t>(nb) * nb, 0)};
        for (int qb = 0; qb < nb; ++qb)
            for (int kb = 0; kb <= qb; ++kb) mask.keep[static_cast<size_t>(qb) * nb + kb] = kb == 0 || kb == qb || (qb + kb) % 3 == 0;
        if (s.mask_block < 0) mask.denominator = SparseDenominator::spion;
        p.mask = &mask;
    }
    std::vector<float> tiles;
    const double worst = tiles_vs_rows(s.cache, q, k.data(), v.data(), s.n, p, &tiles);
    for (float x : tiles) ASSERT_TRUE(std::isfinite(x));
    // outputs are convex combinations of values of size ~1: a few fp32 ulps of the scores and sums
    EXPECT_LT(worst, 2e-5) << "largest difference";
    EXPECT_GT(worst, 0.0) << "the two paths sum in different orders; equal bits would mean the tiles did not run";
}

INSTANTIATE_TEST_SUITE_P(Shapes, TilesAgainstRowWalk,
                         ::testing::Values(TileShape{48, 600, 9, 3, 64, 0}, TileShape{100, 20, 9, 3, 64, 0}, TileShape{40, 0, 12, 12, 64, 0},
                                           TileShape{33, 5, 5, 1, 48, 0}, TileShape{80, 400, 9, 3, 64, 64}, TileShape{80, 400, 9, 3, 64, -64},
                                           TileShape{70, 300, 4, 2, 6, 16}, TileShape{64, 200, 8, 2, 128, 0},
                                           // an fp32 cache: contiguous chunks read in place, a mask's runs widened
                                           TileShape{48, 600, 9, 3, 64, 0, GgmlType::F32}, TileShape{80, 400, 9, 3, 64, -64, GgmlType::F32}));

// The tiles' output for n rows at pos0 over an f16 cache whose value row `bad` (KV head 0, dimension 5) is +inf, after
// checking that it equals the row walk's (which reads each row's own keys only) wherever that is finite. 9 heads of
// 64 on 3 KV heads; window 0: none.
std::vector<float> tiles_with_infinite_value(int n, int pos0, int bad, int window, unsigned seed) {
    const int n_head = 9, n_head_kv = 3, hd = 64, ctx = pos0 + n, kv_dim = n_head_kv * hd;
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> q(static_cast<size_t>(n) * n_head * hd);
    for (float& x : q) x = nd(rng);
    auto k = random_cache(GgmlType::F16, static_cast<size_t>(ctx) * kv_dim, rng), v = random_cache(GgmlType::F16, static_cast<size_t>(ctx) * kv_dim, rng);
    const uint16_t inf = 0x7c00;
    std::memcpy(v.data() + (static_cast<size_t>(bad) * kv_dim + 5) * 2, &inf, 2);
    AttentionParams p;
    p.pos0 = pos0, p.n_head = n_head, p.n_head_kv = n_head_kv, p.head_dim = hd, p.window = window;
    std::vector<float> tiles;
    EXPECT_LT(tiles_vs_rows(GgmlType::F16, q, k.data(), v.data(), n, p, &tiles), 2e-5);
    return tiles;
}

// A later token's infinite value (an f16 cache's overflow) must not reach the rows before it: in a tile they weigh its
// key by 0, and 0 x inf is NaN. Rows from that token on are inf or NaN on either path.
TEST(CpuAttentionTiles, ALaterInfiniteValueLeavesEarlierRowsFinite) {
    const int n = 40, pos0 = 10, bad = pos0 + 25, row = 9 * 64;
    const auto tiles = tiles_with_infinite_value(n, pos0, bad, 0, 11);
    ASSERT_EQ(tiles.size(), static_cast<size_t>(n) * row);
    for (int t = 0; t < bad - pos0; ++t)
        for (int i = 0; i < row; ++i) ASSERT_TRUE(std::isfinite(tiles[static_cast<size_t>(t) * row + i])) << "row " << t << " value " << i;
}

// The same with a sliding window: an earlier token's infinite value must not reach the rows whose window has passed it
// (a tile's chunk holds keys before some rows' windows, which they weigh by 0). Rows from `bad` until the window
// passes it are inf or NaN on either path; the rows before it and after the window are finite, and equal.
TEST(CpuAttentionTiles, AnInfiniteValueBeforeTheWindowLeavesLaterRowsFinite) {
    const int n = 64, pos0 = 10, bad = pos0 + 5, window = 12, row = 9 * 64;
    const auto tiles = tiles_with_infinite_value(n, pos0, bad, window, 12);
    ASSERT_EQ(tiles.size(), static_cast<size_t>(n) * row);
    for (int t = 0; t < n; ++t) {
        if (pos0 + t >= bad && pos0 + t < bad + window) continue; // its window holds the infinity
        for (int i = 0; i < row; ++i) ASSERT_TRUE(std::isfinite(tiles[static_cast<size_t>(t) * row + i])) << "row " << t << " value " << i;
    }
}

// Query-aware selection with a key summary that holds an infinity: the row walk's bound is +inf there and always
// selects the unit; the tiles' centre-and-radius product would be NaN and rank it last, so they take the row walk's.
TEST(CpuAttentionTiles, AnInfiniteKeySummaryIsSelectedAsByTheRowWalk) {
    const int n = 32, pos0 = 64, n_head = 9, n_head_kv = 3, hd = 64, ctx = pos0 + n, kv_dim = n_head_kv * hd, block = 16, unit = 8;
    const int nb = ctx / block, inf_unit = 4; // keys 32..39, in mask block 2, which the mask drops
    std::mt19937 rng(13);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> q(static_cast<size_t>(n) * n_head * hd), k(static_cast<size_t>(ctx) * kv_dim), v(k.size());
    for (float& x : q) x = nd(rng);
    for (float& x : k) x = nd(rng);
    for (float& x : v) x = nd(rng);
    const Summaries sums = summarise(k, ctx, n_head_kv, hd, unit, inf_unit);
    BlockMask mask{block, nb, std::vector<uint8_t>(static_cast<size_t>(nb) * nb, 0)};
    for (int qb = 0; qb < nb; ++qb) mask.keep[static_cast<size_t>(qb) * nb] = mask.keep[static_cast<size_t>(qb) * nb + qb] = 1;
    AttentionParams p;
    p.pos0 = pos0, p.n_head = n_head, p.n_head_kv = n_head_kv, p.head_dim = hd, p.mask = &mask, p.select_blocks = 1;
    p.key_summary = sums.view(unit);
    const double with_inf = tiles_vs_rows(GgmlType::F32, q, k.data(), v.data(), n, p);
    EXPECT_LT(with_inf, 2e-5) << "the unit with the infinite summary, selected on both paths";
}

// Query-aware selection where the rows of a tile pick different units: the tiles run the union of their units through
// one product, and each row must weigh only its own (weighing the union would be close to dense attention here).
struct SelectShape {
    int n, pos0, n_head, n_head_kv, hd, mask_block, unit, select;
    GgmlType cache = GgmlType::F16;
};
class TilesSelectAgainstRowWalk : public ::testing::TestWithParam<SelectShape> {
protected:
    void TearDown() override { attention_tiles_force(-1); }
};

// The cache as fp32 keys and values of the cache type (an F16 cache holds the fp32 values rounded to fp16).
std::vector<uint8_t> cache_of(GgmlType type, const std::vector<float>& x) {
    std::vector<uint8_t> bytes(x.size() * (type == GgmlType::F32 ? 4 : 2));
    for (size_t i = 0; i < x.size(); ++i)
        if (type == GgmlType::F32) std::memcpy(bytes.data() + 4 * i, &x[i], 4);
        else {
            const uint16_t h = fp32_to_fp16(x[i]);
            std::memcpy(bytes.data() + 2 * i, &h, 2);
        }
    return bytes;
}

TEST_P(TilesSelectAgainstRowWalk, EachRowWeighsItsOwnUnits) {
    const SelectShape s = GetParam();
    const int ctx = s.pos0 + s.n, kv_dim = s.n_head_kv * s.hd, nb = (ctx + s.mask_block - 1) / s.mask_block;
    std::mt19937 rng(17);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> q(static_cast<size_t>(s.n) * s.n_head * s.hd), k(static_cast<size_t>(ctx) * kv_dim), v(k.size());
    for (float& x : q) x = 2.0f * nd(rng);
    for (float& x : k) x = s.cache == GgmlType::F16 ? fp16_to_fp32(fp32_to_fp16(nd(rng))) : nd(rng);
    for (float& x : v) x = nd(rng);
    const Summaries sums = summarise(k, ctx, s.n_head_kv, s.hd, s.unit);
    const auto kc = cache_of(s.cache, k), vc = cache_of(s.cache, v);
    BlockMask mask{s.mask_block, nb, std::vector<uint8_t>(static_cast<size_t>(nb) * nb, 0)}; // sink and diagonal
    for (int qb = 0; qb < nb; ++qb) mask.keep[static_cast<size_t>(qb) * nb] = mask.keep[static_cast<size_t>(qb) * nb + qb] = 1;
    mask.denominator = SparseDenominator::spion;
    AttentionParams p;
    p.pos0 = s.pos0, p.n_head = s.n_head, p.n_head_kv = s.n_head_kv, p.head_dim = s.hd, p.mask = &mask, p.select_blocks = s.select;
    p.key_summary = sums.view(s.unit);
    std::vector<float> tiles;
    const double worst = tiles_vs_rows(s.cache, q, kc.data(), vc.data(), s.n, p, &tiles);
    EXPECT_LT(worst, 2e-5) << "largest difference";
    EXPECT_GT(worst, 0.0) << "equal bits would mean the tiles did not run";
    // the selection matters: without it the outputs move far more than rounding
    p.select_blocks = 0;
    std::vector<float> unselected(q.size());
    attention(s.cache, q.data(), kc.data(), vc.data(), unselected.data(), s.n, p, 2);
    double moved = 0;
    for (size_t i = 0; i < q.size(); ++i) moved = std::max(moved, std::abs(static_cast<double>(unselected[i]) - tiles[i]));
    EXPECT_GT(moved, 1e-2);
}

INSTANTIATE_TEST_SUITE_P(Shapes, TilesSelectAgainstRowWalk,
                         ::testing::Values(SelectShape{80, 400, 9, 3, 64, 64, 8, 6}, SelectShape{64, 700, 4, 2, 48, 32, 8, 40},
                                           SelectShape{40, 300, 12, 12, 16, 16, 4, 3}, SelectShape{80, 400, 9, 3, 64, 64, 8, 6, GgmlType::F32}));

// An infinite value (an f16 cache's overflow) in a unit some rows of a tile select and others do not: the rows that do
// not select it must stay finite, as on the row walk (the union's P V product weighs it by 0 for them, and 0 x inf is
// NaN).
TEST(CpuAttentionTiles, AnInfiniteValueReachesOnlyTheRowsThatSelectItsUnit) {
    const int n = 32, pos0 = 480, n_head = 9, n_head_kv = 3, hd = 64, ctx = pos0 + n, kv_dim = n_head_kv * hd, block = 64, unit = 8;
    const int nb = ctx / block;
    std::mt19937 rng(19);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> q(static_cast<size_t>(n) * n_head * hd), k(static_cast<size_t>(ctx) * kv_dim), v(k.size());
    for (float& x : q) x = 2.0f * nd(rng);
    for (float& x : k) x = fp16_to_fp32(fp32_to_fp16(nd(rng)));
    for (float& x : v) x = nd(rng);
    const Summaries sums = summarise(k, ctx, n_head_kv, hd, unit);
    BlockMask mask{block, nb, std::vector<uint8_t>(static_cast<size_t>(nb) * nb, 0)};
    for (int qb = 0; qb < nb; ++qb) mask.keep[static_cast<size_t>(qb) * nb] = mask.keep[static_cast<size_t>(qb) * nb + qb] = 1;
    AttentionParams p;
    p.pos0 = pos0, p.n_head = n_head, p.n_head_kv = n_head_kv, p.head_dim = hd, p.mask = &mask, p.select_blocks = 4;
    p.key_summary = sums.view(unit);
    auto kc = cache_of(GgmlType::F16, k);
    // find a dropped unit whose infinite value the row walk passes to some rows of the tile and not to others
    for (int u = block / unit; u < (nb - 1) * block / unit; ++u) {
        auto vc = cache_of(GgmlType::F16, v);
        const uint16_t inf = 0x7c00;
        std::memcpy(vc.data() + (static_cast<size_t>(u * unit + 3) * kv_dim + 5) * 2, &inf, 2); // KV head 0, dimension 5
        std::vector<float> rows(q.size());
        attention_tiles_force(0);
        attention(GgmlType::F16, q.data(), kc.data(), vc.data(), rows.data(), n, p, 2);
        // head 0's dimension 5 per row; tiles of 16 rows here (two tasks per thread), so look for a mix within one
        int bad_rows = 0;
        bool mixed = false;
        for (int t0 = 0; t0 < n; t0 += 16) {
            int bad = 0;
            for (int t = t0; t < t0 + 16; ++t) bad += !std::isfinite(rows[static_cast<size_t>(t) * n_head * hd + 5]);
            mixed = mixed || (bad > 0 && bad < 16);
            bad_rows += bad;
        }
        ASSERT_EQ(tile_rows_for(n, pos0, block, n_head / n_head_kv, n_head_kv, 2), 16);
        if (!mixed) continue;
        EXPECT_LT(tiles_vs_rows(GgmlType::F16, q, kc.data(), vc.data(), n, p), 2e-5) << "unit " << u << ", " << bad_rows << " rows select it";
        attention_tiles_force(-1);
        return;
    }
    attention_tiles_force(-1);
    FAIL() << "no unit selected by some rows only: the test's data no longer exercises the case";
}

} // namespace
} // namespace winnow::cpu
