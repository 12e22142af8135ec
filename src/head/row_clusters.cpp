#include "head/row_clusters.h"

#include <algorithm>
#include <limits>
#include <random>
#include <string>

#include "train/sgemm.h"
#include "winnow/error.h"

namespace winnow::head {

namespace {

double squared_norm(const float* v, size_t d) {
    double s = 0;
    for (size_t j = 0; j < d; ++j) s += static_cast<double>(v[j]) * v[j];
    return s;
}

// k-means++: the first centroid a uniformly drawn row, each next one a row drawn with probability proportional to
// its squared distance from the nearest centroid so far (exact distances, in double).
std::vector<float> seed_centroids(std::span<const float> A, int n, int d, int k, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<float> C(static_cast<size_t>(k) * d);
    std::vector<double> nearest(n, std::numeric_limits<double>::infinity());
    int pick = static_cast<int>(rng() % static_cast<uint64_t>(n));
    for (int c = 0; c < k; ++c) {
        std::copy_n(A.data() + static_cast<size_t>(pick) * d, d, C.data() + static_cast<size_t>(c) * d);
        double total = 0;
        for (int i = 0; i < n; ++i) {
            double dist = 0;
            for (int j = 0; j < d; ++j) {
                const double diff = static_cast<double>(A[static_cast<size_t>(i) * d + j]) - C[static_cast<size_t>(c) * d + j];
                dist += diff * diff;
            }
            nearest[i] = std::min(nearest[i], dist);
            total += nearest[i];
        }
        if (total <= 0) break; // every row coincides with a centroid: the remaining ones stay copies of this one
        double u = std::uniform_real_distribution<double>(0.0, total)(rng);
        pick = n - 1;
        for (int i = 0; i < n; ++i)
            if ((u -= nearest[i]) < 0) {
                pick = i;
                break;
            }
    }
    return C;
}

// Labels every row with its nearest centroid: argmin_c |c|^2 - 2 <a, c> (the row's own norm is common to all c), the
// dot products by one sgemm. Returns how many labels changed.
int64_t assign(std::span<const float> A, int n, int d, const std::vector<float>& C, int k, std::vector<int32_t>& label) {
    std::vector<float> dots(static_cast<size_t>(n) * k);
    train::sgemm(false, true, n, k, d, 1.0f, A.data(), d, C.data(), d, 0.0f, dots.data(), k);
    std::vector<double> norm(k);
    for (int c = 0; c < k; ++c) norm[c] = squared_norm(C.data() + static_cast<size_t>(c) * d, d);
    int64_t changed = 0;
    for (int i = 0; i < n; ++i) {
        int best = 0;
        double best_score = std::numeric_limits<double>::infinity();
        for (int c = 0; c < k; ++c) {
            const double score = norm[c] - 2.0 * dots[static_cast<size_t>(i) * k + c];
            if (score < best_score) best_score = score, best = c;
        }
        changed += label[i] != best;
        label[i] = best;
    }
    return changed;
}

void recentre(std::span<const float> A, int n, int d, const std::vector<int32_t>& label, int k, std::vector<float>& C) {
    std::vector<double> sum(static_cast<size_t>(k) * d, 0.0);
    std::vector<int64_t> count(k, 0);
    for (int i = 0; i < n; ++i) {
        ++count[label[i]];
        for (int j = 0; j < d; ++j) sum[static_cast<size_t>(label[i]) * d + j] += A[static_cast<size_t>(i) * d + j];
    }
    for (int c = 0; c < k; ++c)
        if (count[c] > 0)
            for (int j = 0; j < d; ++j) C[static_cast<size_t>(c) * d + j] = static_cast<float>(sum[static_cast<size_t>(c) * d + j] / count[c]);
}

} // namespace

RowClusters cluster_rows(std::span<const float> A, int n, int d, int k, uint64_t seed, int iterations) {
    if (n < 1 || d < 1 || A.size() != static_cast<size_t>(n) * d) throw Error(ErrorKind::invalid_argument, "row clusters: A must hold n x d values");
    if (k < 1) throw Error(ErrorKind::invalid_argument, "row clusters: k must be >= 1, got " + std::to_string(k));
    k = std::min(k, n);
    RowClusters r;
    r.k = k;
    r.d = d;
    r.centroids = seed_centroids(A, n, d, k, seed);
    r.label.assign(n, -1);
    for (int it = 0; it < std::max(1, iterations); ++it) {
        if (assign(A, n, d, r.centroids, k, r.label) == 0 && it > 0) break;
        recentre(A, n, d, r.label, k, r.centroids);
    }
    return r;
}

std::vector<float> residual_rows(std::span<const float> A, int n, const RowClusters& c) {
    std::vector<float> out(A.begin(), A.end());
    for (int i = 0; i < n; ++i) {
        const float* centre = c.centroids.data() + static_cast<size_t>(c.label[i]) * c.d;
        for (int j = 0; j < c.d; ++j) out[static_cast<size_t>(i) * c.d + j] -= centre[j];
    }
    return out;
}

double residual_energy_share(std::span<const float> A, std::span<const float> residual) {
    const double total = squared_norm(A.data(), A.size());
    return total > 0 ? squared_norm(residual.data(), residual.size()) / total : 1.0;
}

} // namespace winnow::head
