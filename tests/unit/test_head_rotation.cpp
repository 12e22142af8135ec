// The head's change of basis (head/rotation.h, issue 14): the PCA axes are orthonormal and ordered by the states'
// energy, the rotated head and query give the model's logits, and an adaptive head run through RotatedAlgorithm is
// the inner head run on the rotated query, with the rotation's products charged.
#include <algorithm>
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "planted_instances.h"

#include "head/column_major_head.h"
#include "head/exact_head.h"
#include "head/fast_adaptive_softmax.h"
#include "head/rotation.h"
#include "winnow/error.h"

namespace {

using namespace winnow::head;

// States whose energy lies mostly in two directions (u, v) plus a little isotropic noise.
std::vector<std::vector<float>> two_direction_states(int d, int count, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> u(d), v(d);
    for (int i = 0; i < d; ++i) u[i] = nd(rng), v[i] = nd(rng);
    std::vector<std::vector<float>> out;
    for (int s = 0; s < count; ++s) {
        const float a = 5 * nd(rng), b = 2 * nd(rng);
        std::vector<float> x(d);
        for (int i = 0; i < d; ++i) x[i] = a * u[i] + b * v[i] + 0.01f * nd(rng);
        out.push_back(std::move(x));
    }
    return out;
}

TEST(HeadRotation, PcaAxesAreOrthonormalAndOrderedByEnergy) {
    const int d = 24;
    const HeadRotation r = pca_rotation(two_direction_states(d, 200, 1), d);
    ASSERT_EQ(r.d, d);
    for (int a = 0; a < d; ++a)
        for (int b = 0; b < d; ++b) {
            double dot = 0;
            for (int i = 0; i < d; ++i) dot += static_cast<double>(r.R[static_cast<size_t>(i) * d + a]) * r.R[static_cast<size_t>(i) * d + b];
            EXPECT_NEAR(dot, a == b ? 1.0 : 0.0, 1e-5) << "axes " << a << ", " << b;
        }
    for (int k = 1; k < d; ++k) EXPECT_GE(r.variance[k - 1], r.variance[k]);
    EXPECT_GT(r.energy_in_leading(2), 0.999); // two directions carry the states
    EXPECT_LT(r.energy_in_leading(1), 0.99);
    EXPECT_THROW(pca_rotation({}, d), winnow::Error);
    EXPECT_THROW(pca_rotation({std::vector<float>(d - 1)}, d), winnow::Error);
}

TEST(HeadRotation, RotatedHeadAndQueryKeepTheLogits) {
    const auto in = winnow::test::planted(50, 24, 3);
    const HeadRotation r = pca_rotation(two_direction_states(in.d, 100, 2), in.d);
    const std::vector<float> AR = rotate_head(in.A, in.n, r), y = rotate_query(in.x, r);
    for (int i = 0; i < in.n; ++i) {
        double plain = 0, rotated = 0, scale = 0;
        for (int j = 0; j < in.d; ++j) {
            plain += static_cast<double>(in.A[static_cast<size_t>(i) * in.d + j]) * in.x[j];
            rotated += static_cast<double>(AR[static_cast<size_t>(i) * in.d + j]) * y[j];
            scale += std::abs(static_cast<double>(in.A[static_cast<size_t>(i) * in.d + j]) * in.x[j]);
        }
        EXPECT_NEAR(rotated, plain, 1e-5 * scale) << "row " << i;
    }
}

// A signed permutation: an orthogonal R whose products are exact in fp32, whatever kernel the sgemm picks.
HeadRotation signed_permutation(int d, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<int> perm(d);
    for (int i = 0; i < d; ++i) perm[i] = i;
    std::shuffle(perm.begin(), perm.end(), rng);
    HeadRotation r;
    r.d = d;
    r.R.assign(static_cast<size_t>(d) * d, 0.0f);
    r.variance.assign(d, 1.0);
    for (int k = 0; k < d; ++k) r.R[static_cast<size_t>(perm[k]) * d + k] = (rng() & 1) ? 1.0f : -1.0f;
    return r;
}

// RotatedAlgorithm hands the inner head R^T x: its answer and sample counts are the inner head's on that query, bit
// for bit (a signed permutation keeps every product exact), and it charges the rotation's d^2 products.
TEST(HeadRotation, RotatedAlgorithmRunsTheInnerHeadOnTheRotatedQuery) {
    const auto in = winnow::test::planted(300, 64, 5);
    const HeadRotation r = signed_permutation(in.d, 4);
    const std::vector<float> AR = rotate_head(in.A, in.n, r);
    auto head = std::make_shared<const ColumnMajorHead>(AR, in.n, in.d, false);
    RotatedAlgorithm rotated(std::make_unique<FastAdaptiveSoftmax>(head, 1), r);
    FastAdaptiveSoftmax plain(head, 1);
    EXPECT_EQ(rotated.n(), in.n);
    EXPECT_EQ(rotated.d(), in.d);
    EXPECT_STREQ(rotated.name(), plain.name());
    winnow::AdaptiveParams p;
    p.seed = 9;
    const std::vector<float> y = rotate_query(in.x, r);
    for (int q = 0; q < 3; ++q) { // each head counts its queries (the noise seed follows the count): the same sequence
        const AdaptiveResult a = rotated.run(in.x, p), b = plain.run(y, p);
        EXPECT_EQ(a.head.top, b.head.top);
        EXPECT_EQ(a.head.p_top, b.head.p_top);
        EXPECT_EQ(a.head.log_norm, b.head.log_norm);
        EXPECT_EQ(a.cost.samples, b.cost.samples);
        EXPECT_EQ(a.cost.multiply_adds, b.cost.multiply_adds + static_cast<int64_t>(in.d) * in.d);
    }
    EXPECT_EQ(rotated.best_arms_only(in.x, p), plain.best_arms_only(y, p));
    // a read recorder set on the wrapper reaches the head that reads: distinct reads == charged samples
    ReadRecorder rec;
    rotated.set_read_recorder(&rec);
    const AdaptiveResult recorded = rotated.run(in.x, p);
    EXPECT_EQ(rec.queries(), 1);
    EXPECT_EQ(rec.distinct_samples(), recorded.cost.samples);
    rotated.set_read_recorder(nullptr);
    EXPECT_THROW(rotated.run(std::vector<float>(in.d - 1), p), winnow::Error);
    EXPECT_THROW(RotatedAlgorithm(std::make_unique<FastAdaptiveSoftmax>(head, 1), signed_permutation(in.d - 1, 6)), winnow::Error);
}

// A rotated head's exact rows are the model's, in the model's basis: row_dot on a rotated query prepared by
// prepare_exact is the model head's row_dot on the query itself, bit for bit under a signed permutation (R y = x
// exactly); its columns are A R's. So a fast head whose every arm is exact (d' below the first pull) gives the model
// head's exact softmax even where A R's copy would round differently.
TEST(HeadRotation, RotatedHeadFinishesOnTheModelsRows) {
    const auto in = winnow::test::planted(64, 64, 7);
    const HeadRotation r = signed_permutation(in.d, 8);
    const std::vector<float> AR = rotate_head(in.A, in.n, r);
    const ColumnMajorHead model(in.A, in.n, in.d, true); // Q8_0 rows, as the model stores its head
    const ColumnMajorHead rotated(AR, in.n, in.d, false, model.rows(), r.R);
    EXPECT_TRUE(rotated.rotated());
    EXPECT_FALSE(model.rotated());
    EXPECT_EQ(rotated.dense(), model.dense()); // the exact rows' values
    const std::vector<float> y = rotate_query(in.x, r);
    ExactQuery px, py;
    model.prepare_exact(in.x, px);
    rotated.prepare_exact(y, py);
    for (int i = 0; i < in.n; ++i) EXPECT_EQ(rotated.row_dot(i, py), model.row_dot(i, px)) << "row " << i;
    // the columns are A R's, not the model's
    EXPECT_EQ(rotated.float_column(0)[0], AR[0]);
    EXPECT_THROW(ColumnMajorHead(AR, in.n, in.d, false, model.rows(), std::vector<float>(10)), winnow::Error);
    const ColumnMajorHead smaller(std::vector<float>(in.A.begin(), in.A.begin() + 32 * in.d), 32, in.d, true);
    EXPECT_THROW(ColumnMajorHead(AR, in.n, in.d, false, smaller.rows(), r.R), winnow::Error);
    EXPECT_THROW(rotated.prepare_exact(std::vector<float>(in.d - 1), py), winnow::Error);
}

// Every arm exact (d' = 8, below the first pull): the answer comes from the exact rows alone. The columns here are
// deliberately 2 A R, not A R, so a head that finished on its columns would double every logit; finishing on the
// model's rows it gives the model head's exact softmax.
TEST(HeadRotation, FastHeadOnARotatedHeadIsExactWhereEveryArmIs) {
    const auto in = winnow::test::planted(40, 8, 1);
    const HeadRotation r = signed_permutation(in.d, 2);
    std::vector<float> AR2 = rotate_head(in.A, in.n, r);
    for (float& v : AR2) v *= 2;
    const ColumnMajorHead model(in.A, in.n, in.d, false);
    auto rotated = std::make_shared<const ColumnMajorHead>(AR2, in.n, in.d, false, model.rows(), r.R);
    FastAdaptiveSoftmax fast(rotated, 1);
    const AdaptiveResult a = fast.run(rotate_query(in.x, r), winnow::AdaptiveParams{});
    const HeadResult ex = exact_softmax(in.A, in.n, in.d, in.x);
    ASSERT_EQ(a.cost.samples, a.cost.baseline); // every arm exact
    EXPECT_EQ(a.head.top, ex.top);
    ASSERT_EQ(a.head.top_logits.size(), 1u);
    EXPECT_NEAR(a.head.top_logits[0], ex.top_logits[0], 1e-6 * std::abs(ex.top_logits[0]));
    EXPECT_NEAR(a.head.p_top, ex.p_top, 1e-6);
    EXPECT_NEAR(a.head.log_norm, ex.log_norm, 1e-5);
}

} // namespace
