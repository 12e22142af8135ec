#pragma once
// The fast CPU AdaptiveSoftmax. The same phases, constants, Gumbel column order and calibration as the faithful
// reference (adaptive_softmax.h, spec §2.5), with three changes that turn saved multiplications into saved time:
//  1. The incremental Des Raj estimator for ordered sampling without replacement with probability proportional to
//     size (Des Raj 1956; Cochran, Sampling Techniques, §9A.7). Columns come in the query's Gumbel-top-k order
//     (draw probabilities p_m proportional to w_j |x_j|); with y_m = A_{i,j_m} x_{j_m},
//         z_1 = y_1 / p_1,   z_m = (y_1 + .. + y_{m-1}) + y_m (1 - p_1 - .. - p_{m-1}) / p_m,
//     each z_m is unbiased for <A_i, x> and uncorrelated with the others; the estimate is their mean, its variance
//     is estimated, unbiasedly, by sum_m (z_m - mean)^2 / (T (T - 1)). A new column updates three running sums per
//     arm; no prefix is ever re-read (the reference's Horvitz-Thompson weights depend on the current threshold and
//     force a full re-read whenever T grows). bench/head_estimator_study.py compares the two on SmolLM2 states.
//  2. Access by cost. A round that advances many arms streams the new columns of every arm from a column-major copy
//     of the head in its stored values (column_major_head.h; int8 + block scales for Q8_0), SIMD across arms, both
//     cores; a round that advances few arms computes them exactly instead, one stored row each (612 bytes for
//     SmolLM2, the cost of ~10 scattered column reads). An exact value is a valid estimate with variance 0, so the
//     guarantee is untouched; the paper's sample count charges such an arm its full d'.
//  3. Lean bookkeeping: per-arm state is fp32 in flat arrays; elimination widths are compared without square
//     roots; the normalizer weights and the log-sum-exp use an 8-lane exp (relative error 2e-7).
//  4. f_ln divides the normalizer's variance targets only; the lower bounds alpha_i the targets grow with use the
//     variances as estimated (the reference scales those by f_ln too, which makes a larger f_ln read less past ~1:
//     FaithfulOptions::norm_factor_on_targets_only). So f_ln is a monotone knob, calibrated in (0, kMaxFudgeNorm].
//  5. Optionally (FastOptions::exact_prefix, issue 14) the m heaviest columns of the query (lead_with_exact_prefix)
//     are read by every arm first and summed exactly (S_P); Des Raj then runs on the rest of the order alone (its
//     shares renormalised over the tail, which leaves the coefficients' ratios as they are), so the estimate is S_P +
//     the tail's estimate and its variance the tail's only. The warm-up reads the prefix and a pilot of kTailPilot
//     tail columns before any check.
//  6. Cluster-centred columns (a ColumnMajorHead made with RowClusters, issue 14): the columns hold each row less its
//     cluster's centroid; every query computes the k centroid logits exactly (charged k d' samples, to the warm-up) and
//     each arm's estimate is its centroid's logit plus the residual's estimate, the residual's variance only. Exact
//     rows are still the model's.
#include <memory>

#include "head/adaptive_algorithm.h"
#include "head/column_major_head.h"

namespace winnow::head {

struct FastArmState;

struct FastOptions {
    int threads = 0;      // <= 0: every available core
    int exact_prefix = 0; // columns of each query's order read exactly by every arm (0: the reference's estimator)
    // A round advances its arms by streaming the new columns when that looks cheaper in time than their exact rows,
    // with a streamed element taken as this many times an exact row's element. Larger: more exact rows, so fewer
    // samples saved (an exact arm is charged d') and, on SmolLM2 on the 2-core VM, less wall-clock (bench/reports/
    // adaptive-head-rotation-smollm2.md, last section). 3 is what the committed tables ran with.
    double stream_cost = 3;
    // The normalizer counts each estimated arm as exp(mu_i - var_i / 2), the lognormal mean, instead of exp(mu_i):
    // exp is convex, so the plain sum is biased up and p^ down (FaithfulOptions::debiased_normalizer, the same rule).
    // Exact arms are unchanged. The GPU head has no such option yet.
    bool debiased_normalizer = false;
};

class FastAdaptiveSoftmax final : public AdaptiveAlgorithm {
public:
    static constexpr int kTailPilot = 16; // with an exact prefix: tail columns every arm reads before its variance is used

    // threads <= 0: every available core.
    explicit FastAdaptiveSoftmax(std::shared_ptr<const ColumnMajorHead> head, int threads = 0);
    FastAdaptiveSoftmax(std::shared_ptr<const ColumnMajorHead> head, FastOptions options);
    ~FastAdaptiveSoftmax() override;
    AdaptiveResult run(std::span<const float> x, const AdaptiveParams& p) override;
    std::vector<int32_t> best_arms_only(std::span<const float> x, const AdaptiveParams& p) override;
    int n() const override { return h_->n(); }
    int d() const override { return h_->d(); }
    const char* name() const override { return "fast"; }
    double max_fudge_norm() const override { return kMaxFudgeNorm; } // f_ln divides the normalizer's targets only
    const ColumnMajorHead& head() const { return *h_; }
    // Runs the portable scalar path that a build without AVX2 takes, on this build too (tests hold the two paths to the
    // same bits). Off by default.
    void use_portable_path(bool on) { portable_ = on; }
    // Tests: the per-arm logit estimates (beta <A_i, x>) and columns read that the last query ended with (an arm
    // read in full holds its exact value and d').
    std::span<const float> last_estimates() const;
    std::span<const int32_t> last_columns_read() const;

private:
    struct Query;
    std::shared_ptr<const ColumnMajorHead> h_;
    FastOptions options_; // threads resolved (> 0)
    bool portable_ = false;
    std::unique_ptr<FastArmState> state_; // per-arm arrays, reused by every query
    uint64_t queries_ = 0;
    bool warmup_ended_early_ = false; // the last query's warm-up ended before its cap: the next runs pass by pass
};

} // namespace winnow::head
