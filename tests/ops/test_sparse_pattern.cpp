// SPION patterns: block scores, selection (C and the CF walk), the extension rule, the pattern file (round trip and
// corrupt files), deterministic calibration through the attention capture on a real (tiny) model.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "backend/cpu/attention_tiles_cpu.h"
#include "decode/forward.h"
#include "io/quant.h"
#include "model/model.h"
#include "sparse/calibrate.h"
#include "sparse/key_summary.h"
#include "sparse/pattern.h"
#include "winnow/error.h"
#include "fixture_dir.h"

namespace {

using namespace winnow;
using namespace winnow::sparse;


// conv(i, j) = sum over k in [-1, 1] of A[i+k][j+k]; 4x4 causal map, blocks of 2.
TEST(SparsePattern, BlockScoresConvolveAlongTheDiagonalThenPool) {
    const float A[16] = {1, 0, 0, 0,  //
                         2, 3, 0, 0,  //
                         4, 5, 6, 0,  //
                         7, 8, 9, 10};
    const auto s = block_scores(A, 4, 4, 2, 3);
    ASSERT_EQ(s.size(), 4u);
    // diagonal d = 0: 1 3 6 10 -> conv 4 10 19 16; d = 1: 2 5 9 -> 7 16 14; d = 2: 4 8 -> 12 12; d = 3: 7 -> 7
    // block (0,0): (0,0)=4 (1,1)=10 (1,0)=7 -> 21 / 4; block (1,0): (2,0)=12 (3,1)=12 (2,1)=16 (3,0)=7 -> 47 / 4
    // block (1,1): (2,2)=19 (3,3)=16 (3,2)=14 -> 49 / 4; block (0,1) is above the diagonal: 0
    EXPECT_DOUBLE_EQ(s[0], 21.0 / 4);
    EXPECT_DOUBLE_EQ(s[1], 0.0);
    EXPECT_DOUBLE_EQ(s[2], 47.0 / 4);
    EXPECT_DOUBLE_EQ(s[3], 49.0 / 4);
}

std::vector<double> stripe_scores(int nb, int stripe_col) {
    std::vector<double> s(static_cast<size_t>(nb) * nb, 0.0);
    for (int q = 0; q < nb; ++q)
        for (int k = 0; k <= q; ++k) s[static_cast<size_t>(q) * nb + k] = k == stripe_col ? 5.0 : k == q ? 3.0 : 0.1 * ((q * 7 + k * 3) % 5);
    return s;
}

TEST(SparsePattern, TopKKeepsTheDensityAndTheForcedBlocks) {
    const int nb = 16;
    PatternOptions o;
    o.method = Method::c;
    o.density = 0.4;
    const auto keep = select_blocks(stripe_scores(nb, 5), nb, o);
    int kept = 0;
    for (int q = 0; q < nb; ++q)
        for (int k = 0; k < nb; ++k) {
            const bool on = keep[static_cast<size_t>(q) * nb + k];
            kept += on;
            if (k > q) {
                EXPECT_FALSE(on) << q << "," << k;
            }
            if (k == 0 || k == q || k + 1 == q) {
                EXPECT_TRUE(on) << q << "," << k;
            }
            if (k == 5 && q >= 5) {
                EXPECT_TRUE(on) << "the high-score stripe is kept first";
            }
        }
    EXPECT_EQ(kept, static_cast<int>(std::lround(0.4 * nb * (nb + 1) / 2)));
}

TEST(SparsePattern, WalkFollowsAVerticalStripe) {
    const int nb = 16;
    PatternOptions o;
    o.method = Method::cf;
    o.quantile = 0.8;
    const auto keep = select_blocks(stripe_scores(nb, 5), nb, o);
    int stripe = 0;
    for (int q = 6; q < nb; ++q) stripe += keep[static_cast<size_t>(q) * nb + 5];
    EXPECT_GE(stripe, 8) << "the walk from the left column climbs the stripe";
}

// Relative scores: row i's entries count (i + 1) times, so a long row's uniform attention scores as high as a short
// row's; raw probabilities would favour the short row 3 : 1.
TEST(SparsePattern, RelativeScoresPutRowsOfEveryLengthOnEqualTerms) {
    const int n = 4;
    std::vector<float> A(n * n, 0.0f);
    for (int i = 0; i < n; ++i)
        for (int j = 0; j <= i; ++j) A[i * n + j] = 1.0f / (i + 1); // uniform causal attention
    const auto raw = block_scores(A.data(), n, n, 1, 1, false), rel = block_scores(A.data(), n, n, 1, 1, true);
    EXPECT_DOUBLE_EQ(raw[0 * n + 0], 1.0);
    EXPECT_DOUBLE_EQ(raw[3 * n + 0], 0.25);
    for (int i = 0; i < n; ++i)
        for (int j = 0; j <= i; ++j) EXPECT_NEAR(rel[i * n + j], 1.0, 1e-7) << i << "," << j;
}

TEST(SparsePattern, BlockMassSumsEachRowsProbabilities) {
    const float A[16] = {1, 0, 0, 0,  //
                         .5f, .5f, 0, 0,  //
                         .25f, .25f, .5f, 0,  //
                         .1f, .2f, .3f, .4f};
    const auto m = block_mass(A, 4, 4, 2);
    EXPECT_DOUBLE_EQ(m[0], 2.0);                 // rows 0-1, keys 0-1
    EXPECT_DOUBLE_EQ(m[1], 0.0);                 // above the diagonal
    EXPECT_NEAR(m[2], .25 + .25 + .1 + .2, 1e-7); // rows 2-3, keys 0-1
    EXPECT_NEAR(m[3], .5 + .3 + .4, 1e-7);
    std::vector<uint8_t> keep = {1, 0, 0, 1};
    // row block 0 keeps all of its 2; row block 1 keeps 1.2 of 2
    EXPECT_NEAR(kept_mass_share(m, keep, 2), (1.0 + 1.2 / 2) / 2, 1e-7);
}

// Coverage: per query block row, the forced blocks, then the heaviest until the kept mass reaches the target; a row
// whose mass sits far from the diagonal keeps that far block, a local row keeps nothing more.
TEST(SparsePattern, CoverageKeepsEachRowsHeaviestBlocksUpToTheTarget) {
    const int nb = 8;
    std::vector<double> mass(nb * nb, 0.0);
    for (int q = 0; q < nb; ++q) {
        mass[q * nb + q] = 1.0; // local
        if (q >= 4) mass[q * nb + 2] = 3.0, mass[q * nb + 1] = 0.5; // rows 4..7 look back at block 2, a little at block 1
    }
    PatternOptions o;
    o.method = Method::coverage;
    o.coverage = 0.9;
    o.window = 1;
    const auto keep = select_blocks(mass, nb, o);
    for (int q = 0; q < nb; ++q) {
        EXPECT_TRUE(keep[q * nb + q] && keep[q * nb]) << "forced: diagonal and sink, row " << q;
        if (q >= 4) {
            EXPECT_TRUE(keep[q * nb + 2]) << "the far heavy block, row " << q;
            EXPECT_FALSE(keep[q * nb + 3]) << "massless, row " << q;
            EXPECT_TRUE(keep[q * nb + 1]) << "needed to pass 90% (4 / 4.5 = 0.89), row " << q;
        } else {
            for (int k = 1; k < q; ++k) EXPECT_FALSE(keep[q * nb + k]) << "a local row keeps only its forced blocks " << q << "," << k;
        }
    }
    EXPECT_NEAR(kept_mass_share(mass, keep, nb), 1.0, 1e-12);
    o.coverage = 0.5; // 1 + 3 of 4.5 > 0.5: block 1 is no longer needed
    const auto lean = select_blocks(mass, nb, o);
    for (int q = 4; q < nb; ++q) EXPECT_FALSE(lean[q * nb + 1]) << q;
}

TEST(SparsePattern, WindowForcesTheBlocksLeftOfTheDiagonal) {
    const int nb = 10;
    PatternOptions o;
    o.method = Method::c;
    o.density = 0.01; // nothing beyond the forced blocks
    o.window = 4;
    const auto keep = select_blocks(stripe_scores(nb, 5), nb, o);
    for (int q = 0; q < nb; ++q)
        for (int k = 0; k <= q; ++k) EXPECT_EQ(keep[q * nb + k] != 0, k == 0 || q - k < 4) << q << "," << k;
}

SparsePattern small_pattern() {
    SparsePattern p;
    p.model = "tiny";
    p.n_layer = 2;
    p.n_embd = 8;
    p.n_head = 2;
    p.n_vocab = 10;
    p.block = 4;
    p.calib_ctx = 16;
    p.relative = true;
    p.coverage = 0.75;
    for (int l = 0; l < 2; ++l) {
        PatternOptions o;
        o.method = Method::c;
        o.density = 0.5 + 0.2 * l;
        p.layers.push_back({select_blocks(stripe_scores(4, 2), 4, o), {}, {}, 0.8 + 0.1 * l});
    }
    p.derive_profiles();
    return p;
}

TEST(SparsePattern, FileRoundTripAndExtensionRule) {
    const SparsePattern p = small_pattern();
    const std::string path = testing::TempDir() + "/pattern.json";
    p.save(path);
    const SparsePattern q = SparsePattern::load(path);
    ASSERT_EQ(q.layers.size(), 2u);
    for (int l = 0; l < 2; ++l) EXPECT_EQ(q.layers[l].keep, p.layers[l].keep);
    for (int l = 0; l < 2; ++l) EXPECT_DOUBLE_EQ(q.layers[l].kept_mass, p.layers[l].kept_mass);
    EXPECT_EQ(q.window, p.window);
    EXPECT_EQ(q.relative, p.relative);
    EXPECT_DOUBLE_EQ(q.coverage, p.coverage);
    // at the calibrated length the mask is the pattern; beyond it the rows follow the slash / vertical profiles
    const BlockMask m = q.mask(0, 40);
    ASSERT_EQ(m.n_blocks, 10);
    EXPECT_NO_THROW(m.validate());
    for (int qb = 0; qb < 4; ++qb)
        for (int kb = 0; kb < 4; ++kb) EXPECT_EQ(m.keep[qb * 10 + kb], q.layers[0].keep[qb * 4 + kb]);
    for (int qb = 4; qb < 10; ++qb) {
        EXPECT_TRUE(m.keep[qb * 10]) << "sink";
        EXPECT_TRUE(m.keep[qb * 10 + qb]) << "diagonal";
        EXPECT_TRUE(m.keep[qb * 10 + qb - 1]) << "left neighbour";
        // key block 2 beyond the calibrated rows: kept by the window, the slash profile (offsets < 4) or the vertical one
        const bool expect2 = qb - 2 < q.window || (qb - 2 < 4 && q.layers[0].slash[qb - 2]) || q.layers[0].vertical[2];
        EXPECT_EQ(m.keep[qb * 10 + 2] != 0, expect2) << qb;
        for (int kb = qb + 1; kb < 10; ++kb) EXPECT_FALSE(m.keep[qb * 10 + kb]);
    }
    const double d = SparsePattern::density_of(m);
    EXPECT_GT(d, 0.0);
    EXPECT_LE(d, 1.0);
}

void expect_rejected(const std::string& body, const std::string& needle) {
    const std::string path = testing::TempDir() + "/bad-pattern.json";
    std::ofstream(path) << body;
    try {
        SparsePattern::load(path);
        ADD_FAILURE() << "accepted: " << body.substr(0, 80);
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(path), std::string::npos) << msg;
        EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
}

TEST(SparsePattern, CorruptFilesAreRejectedByName) {
    const SparsePattern p = small_pattern();
    const std::string good_path = testing::TempDir() + "/good.json";
    p.save(good_path);
    std::ifstream in(good_path);
    const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto replace = [&](const std::string& a, const std::string& b) {
        std::string s = good;
        const size_t at = s.find(a);
        EXPECT_NE(at, std::string::npos) << a;
        return s.replace(at, a.size(), b);
    };
    expect_rejected("{not json", "invalid JSON");
    expect_rejected("[]", "not a winnow sparse pattern");
    expect_rejected(replace("\"version\": 1", "\"version\": 7"), "version 7");
    expect_rejected(replace("\"block\": 4", "\"block\": 0"), "out of range");
    expect_rejected(replace("\"n_layer\": 2", "\"n_layer\": 3"), "layers for n_layer 3");
    expect_rejected(replace("\"1000\"", "\"1100\""), "above the causal diagonal");
    expect_rejected(replace("\"1000\"", "\"0000\""), "must be kept");
    expect_rejected(replace("\"1000\"", "\"10x0\""), "is not a bit");
    expect_rejected(replace("\"1000\"", "\"100\""), "expected 4 bits");
    expect_rejected(replace("\"method\": \"cf\"", "\"method\": \"z\""), "must be c, f, cf or coverage");
    expect_rejected(replace("\"window\": 2", "\"window\": 0"), "out of range");
    expect_rejected(replace("\"scores\": \"relative\"", "\"scores\": \"loud\""), "scores must be relative or absolute");
    EXPECT_THROW(SparsePattern::load(testing::TempDir() + "/nonexistent.json"), Error);
}

// The capture's head-mean probabilities are a distribution per row; calibration is deterministic and refuses another
// model's pattern.
// The calibration capture is the head mean of each row's softmax, against a double-precision reference (grouped
// heads, rows after a cached prefix), over each KV cache type (the reference sees the keys the cache holds).
TEST(SparsePattern, CaptureIsTheHeadMeanOfTheSoftmax) {
    const int n = 5, pos0 = 70, n_head = 6, n_kv = 2, hd = 16, ctx = pos0 + n;
    auto be = make_cpu_backend(2);
  for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16}) {
    std::vector<float> q(n * n_head * hd), k(ctx * n_kv * hd), v(k.size());
    for (size_t i = 0; i < q.size(); ++i) q[i] = std::sin(0.37 * i);
    for (size_t i = 0; i < k.size(); ++i) k[i] = std::cos(0.11 * i), v[i] = std::sin(0.05 * i);
    Tensor qt = be->alloc(GgmlType::F32, n, n_head * hd), kt = be->alloc(type, ctx, n_kv * hd), vt = be->alloc(type, ctx, n_kv * hd),
           ot = be->alloc(GgmlType::F32, n, n_head * hd), k32 = be->alloc(GgmlType::F32, ctx, n_kv * hd),
           v32 = be->alloc(GgmlType::F32, ctx, n_kv * hd);
    be->upload(q.data(), qt);
    be->upload(k.data(), k32);
    be->upload(v.data(), v32);
    be->copy_rows(k32, kt, 0); // the cache write rounds to the cache's type
    be->copy_rows(v32, vt, 0);
    if (type != GgmlType::F32) { // the reference's keys: rounded on the host as the cache rounds them
        std::vector<uint16_t> half(k.size());
        quantize_row_ref(type, k.data(), half.data(), k.size());
        dequantize_row(type, half.data(), k.data(), k.size());
    }
  for (bool per_group : {false, true}) {
    const int groups = per_group ? n_kv : 1;
    std::vector<float> cap(static_cast<size_t>(groups) * n * ctx, -1.0f);
    AttentionParams p;
    p.pos0 = pos0;
    p.n_head = n_head;
    p.n_head_kv = n_kv;
    p.head_dim = hd;
    p.capture = cap.data();
    p.capture_stride = ctx;
    p.capture_per_group = per_group;
    be->attention(qt, kt, vt, ot, p);
    for (int g = 0; g < groups; ++g)
    for (int t = 0; t < n; ++t) {
        std::vector<double> ref(pos0 + t + 1, 0.0);
        for (int h = 0; h < n_head; ++h) {
            if (per_group && h / (n_head / n_kv) != g) continue;
            std::vector<double> sc(pos0 + t + 1);
            double mx = -1e300, sum = 0;
            for (int j = 0; j <= pos0 + t; ++j) {
                double d = 0;
                for (int i = 0; i < hd; ++i) d += static_cast<double>(q[(t * n_head + h) * hd + i]) * k[(j * n_kv + h / (n_head / n_kv)) * hd + i];
                mx = std::max(mx, sc[j] = d / std::sqrt(static_cast<double>(hd)));
            }
            for (double& x : sc) sum += (x = std::exp(x - mx));
            for (int j = 0; j <= pos0 + t; ++j) ref[j] += sc[j] / sum / (n_head / groups);
        }
        for (int j = 0; j <= pos0 + t; ++j)
            EXPECT_NEAR(cap[(static_cast<size_t>(g) * n + t) * ctx + j], ref[j], 1e-6) << ggml_type_name(type) << " " << g << "," << t << "," << j;
    }
  }
  }
}

TEST(SparsePattern, CalibrationOnATinyModelIsDeterministic) {
    auto m = LoadedModel::load(kDir + "/tiny-llama.gguf");
    auto be = make_cpu_backend(2);
    Forward f(*m, *be, 32);
    std::vector<double> row_sums;
    f.set_attention_capture([&](int layer, int, const float* P, int n, int64_t stride) {
        if (layer != 0) return;
        for (int t = 0; t < n; ++t) {
            double s = 0;
            for (int j = 0; j <= t; ++j) s += P[t * stride + j];
            row_sums.push_back(s);
        }
    });
    std::vector<int32_t> ids;
    for (int i = 0; i < 96; ++i) ids.push_back((i * 37 + 5) % m->config().n_vocab);
    f.eval(std::span(ids).first(32), false);
    ASSERT_EQ(row_sums.size(), 32u);
    for (double s : row_sums) EXPECT_NEAR(s, 1.0, 1e-5);

    CalibrationOptions o;
    o.ctx = 32;
    o.max_chunks = 3;
    o.pattern.block = 8;
    o.pattern.method = Method::cf;
    o.pattern.quantile = 0.5;
    const SparsePattern a = calibrate(*m, ids, o), b = calibrate(*m, ids, o);
    ASSERT_EQ(a.layers.size(), static_cast<size_t>(m->config().n_layer));
    {
        // one pattern per KV head group: groups x nb x nb per layer, masks with those groups, a file that round-trips
        CalibrationOptions og = o;
        og.pattern.method = Method::coverage;
        og.pattern.coverage = 0.6;
        og.pattern.per_group = true;
        const SparsePattern pg = calibrate(*m, ids, og);
        const int groups = m->config().n_head_kv, nb = pg.n_blocks();
        EXPECT_EQ(pg.groups, groups);
        ASSERT_EQ(pg.layers[0].keep.size(), static_cast<size_t>(groups) * nb * nb);
        const BlockMask mk = pg.mask(0, 64);
        EXPECT_EQ(mk.groups, groups);
        EXPECT_NO_THROW(mk.validate());
        EXPECT_NO_THROW(mk.check_heads(m->config().n_head_kv));
        EXPECT_GT(pg.layers[0].kept_mass, 0.6 - 1e-9) << "coverage is reached in every group";
        const std::string path = testing::TempDir() + "/grouped.json";
        pg.save(path);
        const SparsePattern back = SparsePattern::load(path);
        EXPECT_EQ(back.groups, groups);
        for (size_t l = 0; l < pg.layers.size(); ++l) EXPECT_EQ(back.layers[l].keep, pg.layers[l].keep);
        EXPECT_NO_THROW(back.check_model(m->config(), path));
        // a forward pass runs with the grouped masks
        Forward fg(*m, *be, 32);
        const auto masks = back.masks(32, SparseDenominator::standard, 0);
        fg.set_attention_masks(masks);
        EXPECT_NO_THROW(fg.eval(std::span(ids).first(32), false));
    }
    EXPECT_EQ(a.calib_chunks, 3);
    for (size_t l = 0; l < a.layers.size(); ++l) EXPECT_EQ(a.layers[l].keep, b.layers[l].keep);
    EXPECT_NO_THROW(a.check_model(m->config(), "x"));
    ModelConfig other = m->config();
    other.n_layer += 1;
    EXPECT_THROW(a.check_model(other, "x"), Error);
}

// Outward rounding to fp16: the result bounds x on its side and is the nearest fp16 that does (exact values stay), at
// the signs, the zeros, subnormals and beyond fp16's range.
TEST(KeyBlockSummaries, Fp16OutwardRoundingIsTheNearestBoundingHalf) {
    std::mt19937 rng(11);
    std::normal_distribution<float> nd;
    std::vector<float> xs = {0.0f, -0.0f, 1.0f, -1.0f, 1.0f + 1e-7f, -(1.0f + 1e-7f), 3e-8f, -3e-8f, 65504.0f, 65519.0f, 70000.0f, -70000.0f, 1e-5f, -1e-5f};
    for (int i = 0; i < 2000; ++i) xs.push_back(nd(rng) * std::pow(10.0f, static_cast<float>(i % 9) - 4.0f));
    for (float x : xs) {
        const uint16_t up = fp16_round_up(x), down = fp16_round_down(x);
        EXPECT_GE(fp16_to_fp32(up), x) << x;
        EXPECT_LE(fp16_to_fp32(down), x) << x;
        const uint16_t nearest = fp32_to_fp16(x);
        if (fp16_to_fp32(nearest) == x) { // representable: no widening
            EXPECT_EQ(fp16_to_fp32(up), x) << x;
            EXPECT_EQ(fp16_to_fp32(down), x) << x;
        } else if (std::isfinite(fp16_to_fp32(up)) && std::isfinite(fp16_to_fp32(down))) { // one fp16 step apart, x between
            EXPECT_LT(fp16_to_fp32(down), x) << x;
            EXPECT_GT(fp16_to_fp32(up), x) << x;
            EXPECT_TRUE(fp16_to_fp32(up) == fp16_to_fp32(nearest) || fp16_to_fp32(down) == fp16_to_fp32(nearest)) << x;
        }
    }
    EXPECT_EQ(fp16_to_fp32(fp16_round_up(70000.0f)), INFINITY);
    EXPECT_EQ(fp16_to_fp32(fp16_round_down(70000.0f)), 65504.0f);
    EXPECT_EQ(fp16_to_fp32(fp16_round_up(-70000.0f)), -65504.0f);
    EXPECT_EQ(fp16_to_fp32(fp16_round_down(-70000.0f)), -INFINITY);
}

// A half cache's summary is the summary of the values it holds, widened exactly (F16 and BF16), which differs from the
// fp32 keys' summary; a cache type it cannot read is refused. (The backends' summarize_keys op, which summarises with
// it, is checked bit for bit against the rule in the op harness, rewinds included.)
TEST(KeyBlockSummaries, HalfCacheSummaryIsThatOfItsWidenedKeys) {
    const int kv_dim = 6, rows = 8;
    std::mt19937 rng(9);
    std::normal_distribution<float> nd;
    std::vector<float> k(static_cast<size_t>(rows) * kv_dim), widened(k.size());
    for (float& x : k) x = nd(rng);
    std::vector<uint16_t> hi(kv_dim), lo(kv_dim), ref_hi(kv_dim), ref_lo(kv_dim), raw_hi(kv_dim), raw_lo(kv_dim);
    for (GgmlType type : {GgmlType::F16, GgmlType::BF16}) {
        std::vector<uint16_t> half(k.size());
        quantize_row_ref(type, k.data(), half.data(), k.size());
        dequantize_row(type, half.data(), widened.data(), k.size());
        summarize_rows(type, half.data(), kv_dim, 2, 0, rows, hi.data(), lo.data(), kv_dim / 2);
        summarize_rows(GgmlType::F32, widened.data(), kv_dim, 2, 0, rows, ref_hi.data(), ref_lo.data(), kv_dim / 2);
        EXPECT_EQ(hi, ref_hi) << ggml_type_name(type);
        EXPECT_EQ(lo, ref_lo) << ggml_type_name(type);
        summarize_rows(GgmlType::F32, k.data(), kv_dim, 2, 0, rows, raw_hi.data(), raw_lo.data(), kv_dim / 2);
        EXPECT_NE(hi, raw_hi) << "the summaries really moved with the rounding";
    }
    EXPECT_THROW(summarize_rows(GgmlType::Q8_0, k.data(), kv_dim, 2, 0, 4, hi.data(), lo.data(), kv_dim / 2), Error);
}

// summarize_keys takes the summaries only in KeyBlockSummary's layout, a plane per KV head: F16 [KV heads][units x head
// dim] with exactly the cache's units, for the head count it is given. The old layout (a row per unit), even where its
// unit count divides the cache's columns (4 units of a 12-column cache would pass as 4 heads of 3 dims were the heads
// read from the tensor), and every other misfit are refused with a message naming the shape expected.
TEST(KeyBlockSummaries, SummariesMustBeAPlanePerKvHead) {
    auto be = make_cpu_backend(1);
    const int rows = 32, kv_dim = 12, unit = 8, units = rows / unit; // 3 KV heads of 4 dims
    const Tensor cache = be->alloc(GgmlType::F32, rows, kv_dim);
    const std::vector<float> keys(static_cast<size_t>(rows) * kv_dim, 0.5f);
    be->upload(keys.data(), cache);
    auto message = [&](const Tensor& kmax, const Tensor& kmin, int heads = 3) {
        try {
            be->summarize_keys(cache, kmax, kmin, heads, unit, 0, rows);
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    auto f16 = [&](int64_t r, int64_t c) { return be->alloc(GgmlType::F16, r, c); };
    const std::string expected = "expected F16 [3 KV heads][4 units x 4]";
    const Tensor planes = f16(3, units * 4);
    EXPECT_EQ(message(planes, f16(3, units * 4)), "accepted");
    EXPECT_NE(message(f16(units, kv_dim), f16(units, kv_dim)).find(expected), std::string::npos) << "a row per unit";
    EXPECT_NE(message(f16(3, (units - 1) * 4), f16(3, (units - 1) * 4)).find(expected), std::string::npos) << "a unit short";
    EXPECT_NE(message(planes, f16(2, units * 6)).find(expected), std::string::npos) << "kmin's planes differ from kmax's";
    EXPECT_NE(message(be->alloc(GgmlType::F32, 3, units * 4), f16(3, units * 4)).find(expected), std::string::npos) << "not F16";
    EXPECT_EQ(message(planes, planes, 5), "summarize_keys: 5 KV heads do not divide F32[32x12]@cpu") << "5 heads";
}

// Selecting every block a pattern drops is dense attention, bit for bit, in prefill and in KV-cache decode (where the
// summaries grow block by block) and after a rewind; without selection the same pattern changes the logits. With an
// F32 and with an F16 cache (Forward then summarises the half cache). Bit for bit on the CPU's row walk; its prefill
// tiles (attention_tiles_cpu.h) add a row's selected units after the tile's keys, another order: there within rounding.
class SelectionOnCacheType : public ::testing::TestWithParam<GgmlType> {
protected:
    void SetUp() override { cpu::attention_tiles_force(0); }
    void TearDown() override { cpu::attention_tiles_force(-1); }
};
TEST_P(SelectionOnCacheType, SelectingEveryDroppedBlockIsDenseOnATinyModel) {
    const GgmlType cache_type = GetParam();
    auto m = LoadedModel::load(kDir + "/tiny-llama.gguf");
    auto be = make_cpu_backend(2);
    const int ctx = 64, block = 8, nb = ctx / block;
    BlockMask local{block, nb, std::vector<uint8_t>(static_cast<size_t>(nb) * nb, 0)};
    for (int qb = 0; qb < nb; ++qb) local.keep[qb * nb] = local.keep[qb * nb + qb] = 1; // sink and diagonal only
    const std::vector<BlockMask> masks(m->config().n_layer, local);
    std::vector<int32_t> ids;
    for (int i = 0; i < ctx; ++i) ids.push_back((i * 53 + 11) % m->config().n_vocab);
    auto run = [&](const std::vector<BlockMask>* ms, int select, int n_prefill, int unit = 0) {
        Forward f(*m, *be, ctx, cache_type);
        if (ms) f.set_attention_masks(*ms), f.set_block_selection(select, unit);
        if (select > 0) { // dirty the summaries with other text first: the rewind must not reuse them
            std::vector<int32_t> other(ids.rbegin(), ids.rend());
            f.eval(other, false);
            f.reset();
        }
        std::vector<float> logits = f.eval(std::span(ids).first(n_prefill), true);
        for (int i = n_prefill; i < ctx; ++i) {
            const auto& row = f.eval(std::span(ids).subspan(i, 1), false);
            logits.insert(logits.end(), row.begin(), row.end());
        }
        return logits;
    };
    for (int n_prefill : {ctx, 20}) {
        const auto dense = run(nullptr, 0, n_prefill), all = run(&masks, nb, n_prefill), none = run(&masks, 0, n_prefill);
        ASSERT_EQ(dense.size(), static_cast<size_t>(ctx) * m->config().n_vocab);
        EXPECT_EQ(all, dense) << "prefill " << n_prefill;
        EXPECT_EQ(run(&masks, 2 * nb, n_prefill, 4), dense) << "every dropped 4-token unit, prefill " << n_prefill;
        EXPECT_NE(none, dense) << "the pattern drops blocks that matter";
        EXPECT_NE(run(&masks, 2, n_prefill), dense) << "two blocks per row are not all of them";
        EXPECT_NE(run(&masks, 2, n_prefill, 4), dense) << "two 4-token units per row are not all of them";
    }
    {
        cpu::attention_tiles_force(1);
        const auto dense = run(nullptr, 0, ctx), all = run(&masks, nb, ctx), none = run(&masks, 0, ctx);
        cpu::attention_tiles_force(0);
        float worst = 0, worst_none = 0;
        for (size_t i = 0; i < dense.size(); ++i)
            worst = std::max(worst, std::abs(all[i] - dense[i])), worst_none = std::max(worst_none, std::abs(none[i] - dense[i]));
        EXPECT_LT(worst, 1e-4f) << "prefill tiles: selecting every dropped block";
        EXPECT_GT(worst_none, 1e-2f) << "prefill tiles: the pattern alone";
    }
    {
        Forward f(*m, *be, ctx);
        f.set_attention_masks(masks);
        EXPECT_THROW(f.set_block_selection(2, 3), Error) << "3-token units do not divide 8-token blocks";
    }
}
INSTANTIATE_TEST_SUITE_P(KeyBlockSummaries, SelectionOnCacheType, ::testing::Values(GgmlType::F32, GgmlType::F16),
                         [](const auto& info) { return std::string(ggml_type_name(info.param)); });

} // namespace
