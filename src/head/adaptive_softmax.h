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

namespace winnow::head {

// The per-matrix preprocessing (column L1 weights and the variance-proxy atom term), done once per A.
class AdaptiveSoftmax final : public AdaptiveAlgorithm {
public:
    // A: row-major [n][d] fp32, kept by reference (must outlive this object).
    AdaptiveSoftmax(std::span<const float> A, int n, int d);
    AdaptiveResult run(std::span<const float> x, const AdaptiveParams& p) override;
    std::vector<int32_t> best_arms_only(std::span<const float> x, const AdaptiveParams& p) override;
    int n() const override { return n_; }
    int d() const override { return d_; }
    const char* name() const override { return "faithful"; }

private:
    struct Query;
    void check_query_length(std::span<const float> x) const;
    std::span<const float> A_;   // row-major, for exact rows
    std::vector<float> AT_;      // column-major copy: a sampled column is contiguous across arms
    int n_, d_;
    ColumnStatistics stats_; // column L1 norms and the variance-proxy atom term
    uint64_t queries_ = 0;   // per-query noise stream counter
};

} // namespace winnow::head
