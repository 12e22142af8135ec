#pragma once
// Softmax output approximation (Lee & Lee, NeurIPS 2023; ../shared/specs/memory-lean.md §2), faithful to the
// authors' scheme with its defects left out: per attention row of n valid probabilities the forward keeps the m
// largest and the m smallest (sorted), one geometric decay rate lambda and the rank of every entry; the backward
// rebuilds the evicted middle as h exp(-lambda (p - m + 1)) over sorted positions p, renormalised so the row sums
// to 1. Rows with n <= 2m are kept exactly. Choices where the reference is inconsistent or wasteful:
//   n_eff = n - 2m + 1 (the reference's masked branch) in lambda = (ln(h / l) + 2 (h - g)) / (n_eff (1 - h));
//   no dead sum-of-exp slot, no +1e-8 on kept values; the per-row valid count n is explicit (causal rows);
//   ranks are uint8 when T <= 256, else uint16 (the reference's uint8 overflows beyond 256); the full T x T rank
//   square is kept as in the reference (only the causal triangle is ever read).
#include <cstddef>
#include <cstdint>
#include <vector>

namespace winnow::train {

class SoftmaxApproxStore {
public:
    void resize(int rows, int T, int m);
    // Row `row` with n valid probabilities p[0..n).
    void compress(int row, const float* p, int n);
    void compress(int row, const double* p, int n);
    // The rebuilt probabilities of row `row` (n valid entries) into out[0..n).
    template <typename F>
    void rebuild(int row, int n, F* out) const;
    size_t bytes() const { return slots_.size() * sizeof(float) + rank8_.size() + rank16_.size() * sizeof(uint16_t); }
    size_t slot_bytes() const { return slots_.size() * sizeof(float); }
    size_t rank_bytes() const { return rank8_.size() + rank16_.size() * sizeof(uint16_t); }

private:
    template <typename F>
    void compress_impl(int row, const F* p, int n);
    int m_ = 5, T_ = 0;
    std::vector<float> slots_;    // [rows][2m + 1]: top m, bottom m (descending), lambda
    std::vector<uint8_t> rank8_;  // [rows][T] when T <= 256
    std::vector<uint16_t> rank16_;
};

} // namespace winnow::train
