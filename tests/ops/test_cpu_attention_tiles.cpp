// The CPU's prefill attention in tiles of rows (backend/cpu/attention_tiles_cpu.h): how a call is cut into tiles, and
// the tiles against the row walk they replace (attention_cpu.cpp), which they must equal within fp32 rounding. The op
// harness holds both paths to the double reference (tests/ops/op_cases.cpp: prefill shapes of 16 rows or more take the
// tiles, the others the row walk).
#include <cmath>
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

struct Shape {
    int n, pos0, n_head, n_head_kv, hd, mask_block; // mask_block < 0: the SPION denominator
};

class TilesAgainstRowWalk : public ::testing::TestWithParam<Shape> {
protected:
    void TearDown() override { attention_tiles_force(-1); }
};

// Rows past a 256-key chunk, a tile that starts inside a chunk's keys (the causal diagonal cut per row), an F16 cache,
// and masks whose blocks cut the tiles.
TEST_P(TilesAgainstRowWalk, EqualWithinFp32Rounding) {
    const Shape s = GetParam();
    const int ctx = s.pos0 + s.n, kv_dim = s.n_head_kv * s.hd;
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> q(static_cast<size_t>(s.n) * s.n_head * s.hd);
    for (float& x : q) x = 2.0f * nd(rng);
    std::vector<uint16_t> k(static_cast<size_t>(ctx) * kv_dim), v(k.size());
    for (auto& x : k) x = fp32_to_fp16(nd(rng));
    for (auto& x : v) x = fp32_to_fp16(nd(rng));
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
    std::vector<float> tiles(q.size()), rows(q.size());
    attention_tiles_force(1);
    attention(GgmlType::F16, q.data(), k.data(), v.data(), tiles.data(), s.n, p, 2);
    attention_tiles_force(0);
    attention(GgmlType::F16, q.data(), k.data(), v.data(), rows.data(), s.n, p, 2);
    double worst = 0;
    for (size_t i = 0; i < q.size(); ++i) {
        ASSERT_TRUE(std::isfinite(tiles[i])) << i;
        worst = std::max(worst, std::abs(static_cast<double>(tiles[i]) - rows[i]));
    }
    // outputs are convex combinations of values of size ~1: a few fp32 ulps of the scores and sums
    EXPECT_LT(worst, 2e-5) << "largest difference";
    EXPECT_GT(worst, 0.0) << "the two paths sum in different orders; equal bits would mean the tiles did not run";
}

INSTANTIATE_TEST_SUITE_P(Shapes, TilesAgainstRowWalk,
                         ::testing::Values(Shape{48, 600, 9, 3, 64, 0}, Shape{100, 20, 9, 3, 64, 0}, Shape{40, 0, 12, 12, 64, 0},
                                           Shape{33, 5, 5, 1, 48, 0}, Shape{80, 400, 9, 3, 64, 64}, Shape{80, 400, 9, 3, 64, -64},
                                           Shape{70, 300, 4, 2, 6, 16}));

} // namespace
} // namespace winnow::cpu
