#pragma once
// Cluster-centred rows for the output head (issue 14): k-means on the head's rows, so that each row is its cluster's
// centroid plus a residual, a_i = c_{k(i)} + r_i, and each logit is <c_{k(i)}, x> + <r_i, x>. An adaptive head
// computes the k centroid logits exactly (k d products, a fraction k / n of the exact head's) and samples columns of
// the residuals only. A column sample's variance is the spread of its products across the columns, and an LM head's
// rows share a large common component (the embedding anisotropy: on SmolLM2 the mean row alone holds 45% of the rows'
// energy), so the residuals' products spread less and every phase needs fewer of them for the same confidence width.
// It is a control variate whose expectation is known exactly; the estimator and its PAC statement are unchanged,
// applied to the residual matrix.
#include <cstdint>
#include <span>
#include <vector>

namespace winnow::head {

struct RowClusters {
    int k = 0, d = 0;
    std::vector<float> centroids; // [k][d] row-major: the mean of each cluster's rows
    std::vector<int32_t> label;   // [n]: the cluster of each row
};

// Lloyd's k-means on the rows of A (row-major fp32 [n][d]) with k-means++ seeding from `seed`, `iterations` rounds
// (fewer once the labels stop changing): deterministic for fixed inputs. Each centroid is the mean of the rows its label
// holds (an empty cluster keeps its previous centroid); a label is the nearest centroid of the last assignment, which
// is the nearest one outright once the rounds converged. Any labelling serves the estimator; nearer centroids only
// leave smaller residuals. k is clamped to n.
// Throws winnow::Error for k < 1 or A not n x d.
RowClusters cluster_rows(std::span<const float> A, int n, int d, int k, uint64_t seed = 1, int iterations = 12);

// A - C[label]: each row less its centroid, row-major [n][d].
std::vector<float> residual_rows(std::span<const float> A, int n, const RowClusters& c);

// The share of the rows' energy (sum of squares) left in the residuals; 1 for a zero A.
double residual_energy_share(std::span<const float> A, std::span<const float> residual);

} // namespace winnow::head
