#pragma once
// What every AdaptiveSoftmax implementation offers: the full (eps, delta)-PAC head, and the arm selection alone
// (warm-up + successive elimination) that the calibration of f_b judges. Two implementations exist:
//   AdaptiveSoftmax       — the faithful reference (column sampling, Horvitz-Thompson, prefix re-reads), for the
//                           paper comparison;
//   TiledAdaptiveSoftmax  — the fast CPU path (tiles of adjacent columns on the stored weight format, the
//                           incremental Des Raj estimator, SIMD, both cores).
#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "head/exact_head.h"
#include "winnow/params.h"

namespace winnow::head {

using winnow::AdaptiveParams; // winnow/params.h (public)

// What one query cost, in the paper's metric and in real work.
struct AdaptiveCost {
    int64_t samples = 0;        // distinct (i, j) products: sum of final prefix lengths (the paper's metric)
    int64_t baseline = 0;       // n * d'
    int64_t multiply_adds = 0;  // every product computed, including prefix re-reads and the zero columns of a tile
    int64_t bytes_read = 0;     // bytes of the head matrix (in the layout the implementation reads) touched
    int64_t warmup = 0, best_arm = 0, normalizer = 0; // samples added by each phase (they add up to `samples`)
    int d_prime = 0;
    // Wall-clock per phase in ms (the fast head; 0 where a head does not time them): the query's column order and
    // prepared input, the warm-up, best-arm elimination with its exact finish, and the normalizer with the softmax.
    double setup_ms = 0, warmup_ms = 0, best_arm_ms = 0, normalizer_ms = 0;
    double fraction() const { return baseline ? static_cast<double>(samples) / baseline : 0; }
};

struct AdaptiveResult {
    HeadResult head;
    AdaptiveCost cost;
};

// A test hook that recounts the paper's sample metric independently of the cost counters: the head records every
// (arm, column) product where its loops read it, and distinct_samples() counts the distinct pairs whose column is
// one of the query's sampled columns (a product with a column outside them, e.g. the rest of an exact row, is not a
// sample). Re-reads of a prefix count once. Threads record disjoint arms, so concurrent records touch distinct bytes.
class ReadRecorder {
public:
    // Called by the head when a query starts: forgets the previous query's reads.
    void begin_query(int n, int d, std::span<const int32_t> sampled_columns);
    void record(int32_t arm, int32_t column) { read_[static_cast<size_t>(arm) * d_ + column] = 1; }
    void record_row(int32_t arm) { std::fill_n(read_.begin() + static_cast<ptrdiff_t>(arm) * d_, d_, uint8_t{1}); }
    // Samples charged for products outside the arm x column grid (a head's centroid logits, FaithfulOptions::
    // row_clusters): counted as the head states them, on top of the distinct pairs.
    void record_side_samples(int64_t count) { side_samples_ += count; }
    int64_t distinct_samples() const;
    int queries() const { return queries_; }

private:
    int d_ = 0, queries_ = 0;
    int64_t side_samples_ = 0;
    std::vector<uint8_t> read_;    // [n][d]: 1 where the product was read this query
    std::vector<uint8_t> sampled_; // [d]: 1 for the query's sampled columns
};

class AdaptiveAlgorithm {
public:
    virtual ~AdaptiveAlgorithm() = default;
    virtual AdaptiveResult run(std::span<const float> x, const AdaptiveParams& p) = 0;
    // Phases A and B only (warm-up, then best arm by successive elimination), for the calibration of f_b. Unlike the
    // reference code (spec §8 item 4) the warm-up is included, so f_b is tuned on the procedure that runs at test time.
    virtual std::vector<int32_t> best_arms_only(std::span<const float> x, const AdaptiveParams& p) = 0;
    virtual int n() const = 0;
    virtual int d() const = 0;
    virtual const char* name() const = 0;
    // The largest f_ln whose effect is to read at least as much as any smaller one, the top of the calibration's
    // f_ln range: 1 for the reference's normalizer (f_ln also shrinks the lower bounds alpha_i its targets grow with,
    // so a larger factor can read less: FaithfulOptions::norm_factor_on_targets_only), kMaxFudgeNorm where f_ln only
    // divides the targets.
    virtual double max_fudge_norm() const { return 1.0; }
    // Tests only: every later query records its reads into `r` (nullptr: off; the hot loops then test one pointer
    // per stream chunk or per pull, never per product). `r` must outlive the queries. Virtual: a wrapper (RotatedAlgorithm)
    // passes it to the head that reads.
    virtual void set_read_recorder(ReadRecorder* r) { recorder_ = r; }

protected:
    ReadRecorder* recorder_ = nullptr;
};

// Per-matrix preprocessing shared by both implementations (spec §2.1): the column L1 norms w_j = sum_i |A_ij| (the
// atom importance weights) and the variance-proxy atom term sigma2_A = max_i sum_j q_j (A_ij / (q_j d))^2, q = w / sum w.
struct ColumnStatistics {
    std::vector<double> l1;
    double sigma2_atoms = 0;
};
ColumnStatistics column_statistics(std::span<const float> A, int n, int d); // A row-major fp32 [n][d]

// The per-query column order (spec §2.2), the same for both implementations: s_j = w_j |x_j|, keys
// log(s_j / sum s) + Gumbel noise (one draw per column with s_j > 0, in column order), sorted descending. Every
// prefix of `column` is a weighted sample without replacement; columns with s_j = 0 are left out (d' = size()).
struct ColumnOrder {
    std::vector<int32_t> column; // the m-th sampled column
    std::vector<double> key;     // its key (descending)
    std::vector<double> share;   // its s_j / sum s, the probability of drawing it first
    double mean_abs_x = 0;       // mean |x_j| over the sampled columns
    int exact_prefix = 0;        // the first this many columns are read exactly by every arm (lead_with_exact_prefix)
    int size() const { return static_cast<int>(column.size()); }
    // The sub-Gaussian proxy of one pull: sigma2_A mean|x|^2 d'^2 beta^2.
    double sigma2(double sigma2_atoms, double beta) const {
        return sigma2_atoms * mean_abs_x * mean_abs_x * static_cast<double>(size()) * size() * beta * beta;
    }
};
ColumnOrder gumbel_column_order(const std::vector<double>& l1, std::span<const float> x, uint64_t noise_seed);

// What the fast head streams a query's columns with (and the GPU head uploads), per position m of the order: the
// column, its quant block (column / 32), x at it, and its Des Raj coefficient (1 - p_1 - .. - p_{m-1}) / p_m, the
// shares summed from the end so the difference has no cancellation.
struct DesRajColumns {
    std::vector<int32_t> col, blk;
    std::vector<float> xs, coef;
};
DesRajColumns des_raj_columns(const ColumnOrder& order, std::span<const float> x);

// A departure from the reference (issue 14): moves the m columns with the largest s_j = w_j |x_j| (ties: lower
// column first) to the front of the order, largest first, to be read exactly by every arm; the other columns keep
// their Gumbel order. The choice depends on x only, so the rest of the order is still a weighted sample without
// replacement of the remaining columns (their keys are untouched), and a Horvitz-Thompson estimate of the tail uses
// the tail's threshold key only. In a basis where a few coordinates carry most of each logit (the PCA basis of
// head/rotation.h) the estimate is then exact on them, and its variance comes from the tail alone.
// m is clamped to [0, order.size()]; sets order.exact_prefix.
void lead_with_exact_prefix(ColumnOrder& order, int m);

// sum_i exp(v[i] - shift) with the 8-lane exp of backend/cpu/simd.h (relative error 2e-7 per term) in fp32 lanes and a
// double total; the terms are written to `terms` when not null. The fast head's normalizer weights and log-normalizer
// use it, and so does the exact head's timing in `bench head`, so both heads pay for the same exp.
double sum_exp(const float* v, size_t n, float shift, float* terms);
// log sum_i exp(v_i) by sum_exp, shifted by the maximum.
double log_sum_exp(std::span<const float> v);

// The answer when x is zero on every column the head uses: all n logits tie at 0, the first k arms are returned.
AdaptiveResult all_logits_tied(int n, int k);

// Throws winnow::Error unless epsilon > 0, 0 < delta < 1, 1 <= k <= n and the factors and the cap are in (0, 1].
void check_params(const AdaptiveParams& p, int n);

// The per-query noise seed: a splitmix64 mix of the caller's seed and a per-object query counter, so that every
// query gets fresh Gumbel noise (the reference code re-seeds 42 for every query, spec §8 item 5).
uint64_t query_noise_seed(uint64_t seed, uint64_t query_counter);

} // namespace winnow::head
