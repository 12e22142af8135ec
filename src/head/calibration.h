#pragma once
// Offline calibration of AdaptiveSoftmax's two fudge factors (spec §2.7): binary search over f = 10^e for the smallest
// f whose failures on the tuning queries stay within a budget; f_b first (best-arm phase alone, judged by the exact
// top-k), then f_ln with f_b fixed (full run, judged by arm and |p^ - p| <= eps p).
// Departures from the reference (spec §8 item 4), each because the reference's rule missed its budget on SmolLM2
// (bench/reports/adaptive-head-rotation-smollm2.md, diagnosis):
//   - f_b is tuned with the warm-up in place, as it runs at test time;
//   - f_b may spend only half the failure budget (rounded up), f_ln's full run the whole of it. With the whole budget
//     spent on wrong arms, any estimate failure broke the budget and f_ln had nothing to turn;
//   - f_b is searched in [1e-6, 1], f_ln in [1e-6, head.max_fudge_norm()]: the normalizer's theory constants assume
//     known variances, and with estimated ones f_ln = 1 failed 6.5% (delta 0.05) and 26% (delta 0.1) of tuning runs.
//     Above 1 only where f_ln is a monotone knob (the fast head; the faithful one with norm_factor_on_targets_only).
// The most conservative factor of each range is tried first: when even it exceeds the budget the result says so
// (met = false) instead of passing a factor off as calibrated, and returns the smallest factor that fails no more
// often than the bound (a run whose tuning failures are wrong arms gains nothing from f_ln's top reads).
#include <span>
#include <string>
#include <vector>

#include "head/adaptive_algorithm.h"

namespace winnow::head {

struct Calibration {
    double fudge_best = 1.0;
    double fudge_norm = 1.0;
    int runs = 0;       // factors tried (each over the tuning queries)
    int allowed = 0;      // tuning failures the full run may cause (f_ln's budget)
    int allowed_best = 0; // wrong arms f_b's search may cause: ceil(best_arm_share allowed), (allowed + 1) / 2 by default
    // false: even the most conservative factor (f_b = 1, f_ln = head.max_fudge_norm()) failed more than its budget on
    // the tuning queries, so the budget is not met on the tuning set; the factor is then the smallest that fails no
    // more often than that bound
    bool met_best = true, met_norm = true;
    bool met = true; // both
    // the tuning failures of the most conservative factor of each search (f_b = 1; f_ln = head.max_fudge_norm()), against
    // allowed_best and allowed: how far a missed budget was missed
    int failures_at_top_best = 0, failures_at_top_norm = 0;
    double best_arm_share = 0.5; // f_b's share of the budget this calibration ran with
};

// queries: each of length d; truth: the exact head's answer for each (exact_softmax with base.beta and base.k).
// The search tolerance is 0.01 in log10(f), as in the authors' final code. The budget is allowed_failures(repeats
// |queries|, delta, confidence) for f_ln's full run, half of it (rounded up) for f_b. repeats > 1 runs every tuning
// query that many times with fresh column-sampling noise: the search keeps the smallest factor that passes, so with
// one run per query it picks a factor that passed on one lucky draw of the noise (the held-out failure rate lands above
// the tuning rate); more draws per query measure the factor's failure rate with less of that selection.
// best_arm_share in (0, 1]: f_b's share of the budget, rounded up (0.5: half). The f_b search keeps the smallest factor
// whose failures fit its share on one noise draw, so its wrong-arm rate sits at the edge of that share; a smaller share
// leaves the full run room for that edge's noise and for estimate failures.
Calibration calibrate(AdaptiveAlgorithm& head, const std::vector<std::vector<float>>& queries, const std::vector<HeadResult>& truth,
                      AdaptiveParams base, double confidence = 0, int repeats = 1, double best_arm_share = 0.5);

// calibrate() at each of `best_arm_shares` in turn (each in (0, 1], at least one) until one meets both budgets, which it
// returns; when none does, the one whose full run missed its budget by the least (the earlier on a tie). A share too
// large leaves f_b's wrong arms at the edge of the whole budget (bench/reports/adaptive-head-rotation-smollm2.md, section
// "Cluster-centred rows": at 0.5 the full runs failed 16 of 1,600 at f_ln's top against 12 allowed, at 0.25 5), so
// {0.5, 0.25} keeps the reference's rule where it works and halves f_b's share where it does not. `runs` counts every
// calibration's searches.
Calibration calibrate_over_shares(AdaptiveAlgorithm& head, const std::vector<std::vector<float>>& queries, const std::vector<HeadResult>& truth,
                                  AdaptiveParams base, double confidence, int repeats, const std::vector<double>& best_arm_shares);

// The failures a factor may cause on n tuning queries. confidence <= 0: floor(delta n), the authors' rule, which picks
// the most aggressive factor whose tuning failure rate merely equals delta, so the held-out rate lands above delta
// (the search selects on noise). confidence c in (0, 1): the largest a with P(Binomial(n, delta) <= a) <= 1 - c, i.e.
// the tuning set must reject "failure rate >= delta" at confidence c (for n = 200, delta = 0.01: c = 0.5 allows 1,
// c = 0.8 allows 0).
int allowed_failures(int n, double delta, double confidence);
// Where the tuning and test queries come from: the text's tokens are split once, tuning windows in [0, boundary),
// test windows in [boundary, end), so the two sets share no token (overlapping windows split by a shuffle would put
// near-copies of the tuning states in the test set). tune_share in (0, 1), else winnow::Error.
size_t tuning_region_end(size_t tokens, double tune_share);
// The first token of each of `count` windows of `window` tokens spread evenly over tokens [begin, end), every window
// inside it. Throws winnow::Error naming `region` when it is too short (fewer than window + count / 8 tokens).
std::vector<size_t> window_starts(size_t begin, size_t end, int window, int count, const std::string& region);

// The exact answers for a set of queries (A row-major fp32 [n][d]).
std::vector<HeadResult> exact_answers(std::span<const float> A, int n, int d, const std::vector<std::vector<float>>& queries, const AdaptiveParams& p);

} // namespace winnow::head
