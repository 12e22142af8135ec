#pragma once
// An orthogonal change of basis for the output head (issue 14): with R orthogonal (d x d), the rotated head A R and
// the rotated query R^T x give the same logits as A and x in exact arithmetic, since (A R)(R^T x) = A x. Column
// sampling works coordinate by coordinate, so the basis decides how many columns carry a logit: in the principal
// axes of the hidden states (PCA on calibration queries), a query's energy sits in its leading coordinates, and the
// column order, which follows |x_j| times the column's weight, reads those first.
#include <memory>
#include <span>
#include <vector>

#include "head/adaptive_algorithm.h"

namespace winnow::head {

struct HeadRotation {
    int d = 0;
    std::vector<float> R;              // [d][d] row-major; column k is the k-th principal axis (orthonormal)
    std::vector<double> variance;      // E[(axis_k . x)^2] over the calibration states, descending
    // The share of the calibration states' second moment in the first k axes.
    double energy_in_leading(int k) const;
};

// The principal axes of the uncentred second moment E[x x^T] of `states` (each of length d), by decreasing
// eigenvalue (LAPACK dsyevd in double). Throws winnow::Error for no states or inconsistent lengths.
HeadRotation pca_rotation(const std::vector<std::vector<float>>& states, int d);

// A R: the head [n][d] row-major, rotated (fp32, accumulated in fp32 by sgemm).
std::vector<float> rotate_head(std::span<const float> A, int n, const HeadRotation& r);
// R^T x, accumulated in double.
std::vector<float> rotate_query(std::span<const float> x, const HeadRotation& r);

// y = R^T x for a stream of queries, the way a timed query does it: fp32 dot products on the calling thread against R
// transposed (row k is axis k, a contiguous row), into a buffer reused by the next call. (rotate_query above is the
// double-precision reference, for preparing query sets; an sgemm would open a parallel region over every core.)
class QueryRotator {
public:
    explicit QueryRotator(const HeadRotation& r);
    int d() const { return d_; }
    // Valid until the next call. Throws winnow::Error for a query not of length d.
    std::span<const float> rotate(std::span<const float> x);

private:
    int d_ = 0;
    std::vector<float> Rt_;
    std::vector<float> y_;
};

// An adaptive head run in a rotated basis, taking queries in the model's basis: each query is rotated (R^T x, fp32
// dot products on the calling thread) and handed to `inner`, which holds the rotated head A R. The rotation is part
// of every query's time, as it would be in generation, and of its multiply-adds (d^2; a ColumnMajorHead whose exact
// rows are the model's turns the query back for them and counts another d^2 in the inner head: together about 2.3%
// of SmolLM2's n d); the sample metric is the inner head's.
class RotatedAlgorithm final : public AdaptiveAlgorithm {
public:
    RotatedAlgorithm(std::unique_ptr<AdaptiveAlgorithm> inner, const HeadRotation& rotation);
    AdaptiveResult run(std::span<const float> x, const AdaptiveParams& p) override;
    std::vector<int32_t> best_arms_only(std::span<const float> x, const AdaptiveParams& p) override;
    int n() const override { return inner_->n(); }
    int d() const override { return inner_->d(); }
    const char* name() const override { return inner_->name(); }
    double max_fudge_norm() const override { return inner_->max_fudge_norm(); }
    // The reads are the inner head's, in the rotated head's columns.
    void set_read_recorder(ReadRecorder* r) override { inner_->set_read_recorder(r); }

private:
    std::unique_ptr<AdaptiveAlgorithm> inner_;
    int d_ = 0;
    QueryRotator rotator_;
};

} // namespace winnow::head
