#pragma once
// AdaptiveSoftmax (Baharav et al., NeurIPS 2024), reference implementation following the authors' code step by
// step (../shared/specs/adaptive-softmax.md §2-§4): per-query Gumbel-top-T column order over w_j·|x_j|,
// Horvitz-Thompson estimates with threshold inclusion probabilities (prefix recomputed whenever T grows, as the
// reference does, and counted), PullToVar's geometric schedule, capped warm-up, successive elimination, the exact
// winner, the adaptive normalizer. Departures from the reference code's defects (spec §8): the Gumbel noise comes
// from a per-query stream (seed, query counter) instead of re-seeding 42 for every query; re-reads are counted.
#include <cstdint>
#include <span>
#include <vector>

#include "head/adaptive_algorithm.h"
#include "head/row_clusters.h"

namespace winnow::head {

// Departures from the paper's method that issue 14 measures; the defaults are the reference.
struct FaithfulOptions {
    // Columns every arm reads exactly before any sampling: the m largest w_j |x_j| of the query
    // (lead_with_exact_prefix). The estimate is then exact prefix + Horvitz-Thompson estimate of the tail, whose
    // variance is the tail's alone. Charged like any read: m samples per arm.
    int exact_prefix = 0;
    // With an exact prefix: tail columns every arm reads in the warm-up before its variance estimate is used. An arm
    // that has read no tail column has a Horvitz-Thompson variance of 0 although its tail is unknown; a handful of
    // tail reads make the estimate informative. No arm is ever left between 0 and exact_prefix + tail_pilot reads.
    int tail_pilot = 16;
    // PullToVar's two modes (spec §2.4) for the warm-up and the elimination rounds. The reference pulls every arm of
    // the set to the same prefix while any arm misses its variance target (batched), so one slow arm drives all n
    // arms to the warm-up's cap. Per arm (false): only the arms above the target are pulled on, each stopping when
    // its own variance estimate is under the target, so the warm-up's length follows each arm's variance.
    bool batched_warmup = true;
    bool batched_elimination = true;
    // The warm-up's variance target (1 / (17 L)) serves the normalizer, so it is pursued only for arms that may carry
    // softmax mass: after the exact prefix and pilot (or a first 16 columns), an arm whose upper confidence bound
    // mu_i + C_i lies more than ln(16 n / eps) below the best lower bound max_j (mu_j - C_j) is left at the pulls it
    // has (C_i = sqrt(2 L f_ln var_i), the normalizer's own width): all such arms together hold under eps / 16 of the
    // normalizer when the bounds hold. Elimination and the normalizer phase still see and may pull every arm.
    bool warmup_skips_negligible = false;
    // How f_ln enters the normalizer phase. The reference (false) multiplies every variance by f_ln, the lower bounds
    // alpha_i = exp(mu_i - sqrt(2 L f_ln var_i)) included, and divides the targets V1_i by it. V1_i grows as 1 / alpha_i,
    // so past some f_ln a larger factor loosens the targets instead of tightening them (on SmolLM2 at f_ln = 1000 the
    // normalizer read nothing): f_ln is then no monotone knob, and its calibration's binary search is ill-posed.
    // true: the alpha_i use the variances as estimated and f_ln only divides the targets, so a larger f_ln never
    // reads less (and f_ln > 1 reads more than the theory constants).
    bool norm_factor_on_targets_only = false;
    // How the normalizer sums the arms' estimates. The reference (false) takes logsumexp(mu_i). exp is convex, so an
    // arm estimated with variance var_i adds exp(mu_i + var_i / 2) on average, not exp(mu_i): on a flat softmax, where
    // hundreds of arms carry the mass, that bias pushes the normalizer up and p_top down in every run, and only more
    // reads (a larger f_ln) shrink it. true: each arm counts as exp(mu_i - var_i / 2), which is unbiased for an arm
    // whose estimate is normal with the estimated variance (the lognormal mean correction). Exact arms (var 0), the
    // best arm among them, are unchanged.
    bool debiased_normalizer = false;
    // The normalizer phase first computes exactly every arm whose upper bound mu_i + z sd_i (next option) could hold at
    // least this share of the estimated normalizer exp(logsumexp(mu)) (0: none, the reference). A variance target bounds an
    // arm's error only as far as its variance estimate is right, and an estimate from a few columns can miss the one
    // column that moves the arm by nats; on a peaked softmax the handful of arms that carry the normalizer are where
    // such a miss becomes a failure. At most about 1 / share arms qualify when the bounds are tight, each charged its
    // unread columns.
    double normalizer_exact_share = 0;
    // The width of that upper bound in standard deviations of each arm's estimate; negative: the elimination's width
    // sqrt(2 L var_i), which on SmolLM2 lets most of the vocabulary qualify (85% of n d' read at share 0.01).
    double normalizer_exact_sds = 0;
    // k > 0: cluster-centred rows (head/row_clusters.h). The head's rows are clustered by k-means when the head is
    // built; every query computes the k centroid logits exactly (k d' samples charged, before the warm-up) and samples
    // columns of the residuals a_i - c_k(i) only, whose column weights and variance proxy replace A's. Exact rows
    // stay A's. 0: the reference (sample A itself).
    int row_clusters = 0;
    // The warm-up pulls every arm to variance 1 / (17 L) divided by f_ln (the reference), so a calibration of the
    // normalizer's factor also changes the warm-up, and with it the arms the elimination starts from: f_b is searched
    // with f_ln = 1, then the full runs that calibrate f_ln see another warm-up. true: the warm-up's target is the theory
    // constant 1 / (17 L) whatever f_ln is, so f_ln is a knob of the normalizer phase alone and f_b is tuned on the
    // warm-up that runs at test time.
    bool warmup_without_norm_factor = false;
};

// The per-matrix preprocessing (column L1 weights and the variance-proxy atom term), done once per A.
class AdaptiveSoftmax final : public AdaptiveAlgorithm {
public:
    // A: row-major [n][d] fp32, kept by reference (must outlive this object).
    AdaptiveSoftmax(std::span<const float> A, int n, int d, FaithfulOptions options = {});
    AdaptiveResult run(std::span<const float> x, const AdaptiveParams& p) override;
    std::vector<int32_t> best_arms_only(std::span<const float> x, const AdaptiveParams& p) override;
    int n() const override { return n_; }
    int d() const override { return d_; }
    const char* name() const override {
        return options_.exact_prefix > 0 || !options_.batched_warmup || !options_.batched_elimination || options_.warmup_skips_negligible || options_.debiased_normalizer ||
                           options_.normalizer_exact_share > 0 || options_.row_clusters > 0 || options_.warmup_without_norm_factor
                   ? "faithful-departures"
                                                                                                                                           : "faithful";
    }
    const FaithfulOptions& options() const { return options_; }
    double max_fudge_norm() const override { return options_.norm_factor_on_targets_only ? kMaxFudgeNorm : 1.0; }

private:
    struct Query;
    void check_query_length(std::span<const float> x) const;
    std::span<const float> A_;   // row-major, for exact rows
    std::vector<float> AT_;      // column-major copy of the sampled matrix (A, or its residual rows): a sampled
                                 // column is contiguous across arms
    RowClusters clusters_;       // FaithfulOptions::row_clusters (k = 0: none)
    int n_, d_;
    FaithfulOptions options_;
    ColumnStatistics stats_; // column L1 norms and the variance-proxy atom term
    uint64_t queries_ = 0;   // per-query noise stream counter
};

} // namespace winnow::head
