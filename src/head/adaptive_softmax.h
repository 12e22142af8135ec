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

#include "head/exact_head.h"

namespace winnow::head {

struct AdaptiveParams {
    double epsilon = 0.3;       // multiplicative error of p
    double delta = 0.01;        // failure probability
    float beta = 1.0f;          // temperature: logits are beta * <A_i, x>
    int k = 1;
    double fudge_best = 1.0;    // f_b in (0, 1]: 1 = the theory constants (uncalibrated)
    double fudge_norm = 1.0;    // f_ln in (0, 1]
    double warmup_cap = 0.1;    // warm-up pulls at most this fraction of d' per arm (experiments: 0.1)
    uint64_t seed = 42;
};

// What one query cost, in the paper's metric and in real work.
struct AdaptiveCost {
    int64_t samples = 0;        // distinct (i, j) products: sum of final prefix lengths (the paper's metric)
    int64_t baseline = 0;       // n * d'
    int64_t multiply_adds = 0;  // every product computed, including prefix re-reads when the threshold moves
    int64_t warmup = 0, best_arm = 0, normalizer = 0; // samples added by each phase (they add up to `samples`)
    int d_prime = 0;
    double fraction() const { return baseline ? static_cast<double>(samples) / baseline : 0; }
};

struct AdaptiveResult {
    HeadResult head;
    AdaptiveCost cost;
};

// The per-matrix preprocessing (column L1 weights and the variance-proxy atom term), done once per A.
class AdaptiveSoftmax {
public:
    // A: row-major [n][d] fp32, kept by reference (must outlive this object).
    AdaptiveSoftmax(std::span<const float> A, int n, int d);
    AdaptiveResult run(std::span<const float> x, const AdaptiveParams& p);
    // Phases A and B only (warm-up, then best arm by successive elimination), for the calibration of f_b. Unlike the
    // reference code (spec §8 item 4) the warm-up is included, so f_b is tuned on the procedure that runs at test time.
    std::vector<int32_t> best_arms_only(std::span<const float> x, const AdaptiveParams& p);
    int n() const { return n_; }
    int d() const { return d_; }

private:
    struct Query;
    std::span<const float> A_;   // row-major, for exact rows
    std::vector<float> AT_;      // column-major copy: a sampled column is contiguous across arms
    int n_, d_;
    std::vector<double> w_;  // column L1 norms
    double sigma2_atoms_ = 0;
    uint64_t queries_ = 0;   // per-query noise stream counter
};

} // namespace winnow::head
