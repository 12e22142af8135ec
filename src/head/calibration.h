#pragma once
// Offline calibration of AdaptiveSoftmax's two fudge factors (spec §2.7): binary search over f = 10^e, e in [-6, 0],
// for the smallest f whose failures on the tuning queries stay within floor(delta * |queries|); f_b first (best-arm
// phase alone, judged by the exact top-k), then f_ln with f_b fixed (full run, judged by arm and |p^ - p| <= eps p).
// Departure from the reference (spec §8 item 4): f_b is tuned with the warm-up in place, as it runs at test time.
#include <span>
#include <vector>

#include "head/adaptive_algorithm.h"

namespace winnow::head {

struct Calibration {
    double fudge_best = 1.0;
    double fudge_norm = 1.0;
    int runs = 0; // adaptive runs spent searching
};

// queries: each of length d; truth: the exact head's answer for each (exact_softmax with base.beta and base.k).
// The search tolerance is 0.01 in log10(f), as in the authors' final code.
Calibration calibrate(AdaptiveAlgorithm& head, const std::vector<std::vector<float>>& queries, const std::vector<HeadResult>& truth,
                      AdaptiveParams base);
// The exact answers for a set of queries (A row-major fp32 [n][d]).
std::vector<HeadResult> exact_answers(std::span<const float> A, int n, int d, const std::vector<std::vector<float>>& queries, const AdaptiveParams& p);

} // namespace winnow::head
