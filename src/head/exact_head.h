#pragma once
// The exact output head: all n logits (beta * A x), softmax statistics and the top-k. The oracle for the
// adaptive head and the fallback where it cannot serve.
#include <cstdint>
#include <span>
#include <vector>

namespace winnow::head {

struct HeadResult {
    std::vector<int32_t> top;  // the k best arms, best first
    std::vector<float> top_logits; // their logits (exact for the adaptive head too: phase C computes them exactly)
    float p_top = 0;           // probability of top[0]
    double log_norm = 0;       // log S = logsumexp of the logits
};

// A is row-major [n][d] fp32.
HeadResult exact_softmax(std::span<const float> A, int n, int d, std::span<const float> x, float beta = 1.0f, int k = 1);

} // namespace winnow::head
