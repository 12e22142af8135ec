#pragma once
// The output-head matrix laid out for column sampling: a column-major copy in the model's own values, so that one
// sampled column of every arm (the warm-up and the big elimination rounds) is one contiguous read, next to the
// stored row-major rows that serve exact dot products for the few arms the later phases need in full.
//   q8 storage (Q8_0, Q4_0 heads): int8 quants [d][n] plus the block scales [d/32][n] (fp16): value = scale * quant,
//     exactly the stored value, 1 byte per element and 2 bytes per 32 elements;
//   f32 storage (every other type): fp32 [d][n].
#include <cstdint>
#include <span>
#include <vector>

#include "backend/cpu/vec_dot.h"
#include "head/adaptive_algorithm.h"
#include "head/row_clusters.h"
#include "model/weights.h"

namespace winnow::head {

// A query prepared for ColumnMajorHead::row_dot (prepare_exact): the values prep points at live in x. Not copyable
// (a copy's prep would point into the original's x); a move keeps the buffer, so prep stays valid.
struct ExactQuery {
    ExactQuery() = default;
    ExactQuery(const ExactQuery&) = delete;
    ExactQuery& operator=(const ExactQuery&) = delete;
    ExactQuery(ExactQuery&&) = default;
    ExactQuery& operator=(ExactQuery&&) = default;
    std::vector<float> x;
    cpu::PreparedActivation prep;
};

class ColumnMajorHead {
public:
    enum class Storage { q8, f32 };

    // `stored` must outlive this object (its rows serve the exact dot products).
    explicit ColumnMajorHead(const Matrix& stored);
    // From row-major fp32 [n][d]; as_q8 stores the rows as Q8_0 first (ggml's reference quantizer), so tests can
    // exercise that storage. The object owns the rows.
    ColumnMajorHead(std::span<const float> A, int n, int d, bool as_q8);
    // A rotated head (head/rotation.h): the columns from AR = A R [n][d] (quantized to Q8_0 first when as_q8), the
    // exact rows from the model's stored head A (`model_rows`, which must outlive this object) in the model's basis.
    // Queries come rotated (y = R^T x); prepare_exact turns one back (x = R y) for the stored rows, so an exact value
    // is the exact head's and only the sampled columns carry AR's rounding. R: [d][d] row-major, orthonormal.
    ColumnMajorHead(std::span<const float> AR, int n, int d, bool as_q8, const Matrix& model_rows, std::vector<float> R);
    // Cluster-centred columns (head/row_clusters.h, issue 14): S is the head in the columns' basis (A R when R is
    // given, else A itself) and `clusters` a clustering of S's rows (cluster_rows). The columns and their statistics
    // hold the residual rows S - C[label] (quantized to Q8_0 first when as_q8); the centroids, fp32 in the columns'
    // basis, give each query the k exact logits <c_k, y> its arms start from. The exact rows are the model's stored
    // head (`model_rows`, which must outlive this object), in the model's basis when R is given (R empty: no rotation,
    // S must then be the model's head in fp32).
    ColumnMajorHead(std::span<const float> S, int n, int d, bool as_q8, const Matrix& model_rows, std::vector<float> R, RowClusters clusters);

    // Whether a stored head of this type gets the q8 storage (int8 quants + block scales), else f32.
    static bool stores_q8(GgmlType type) { return type == GgmlType::Q8_0 || type == GgmlType::Q4_0; }

    int n() const { return n_; }
    int d() const { return d_; }
    Storage storage() const { return storage_; }
    const Matrix& rows() const { return rows_; }

    // Columns are `stride()` = n rounded up to 32 long (zero padded), so a block of 32 arms never reads past one.
    int stride() const { return stride_; }
    const int8_t* quant_column(int j) const { return q_.data() + static_cast<size_t>(j) * stride_; }
    const uint16_t* scale_row(int block) const { return s_.data() + static_cast<size_t>(block) * stride_; }
    const float* float_column(int j) const { return f_.data() + static_cast<size_t>(j) * stride_; }

    // <A[row], x> on the stored format, exactly what the exact head computes for that row, with x from prepare_exact.
    float row_dot(int row, const ExactQuery& x) const;
    // The query y (in the columns' basis) prepared for row_dot: as it is, or turned back into the model's basis for a
    // rotated head.
    void prepare_exact(std::span<const float> y, ExactQuery& q) const;
    bool rotated() const { return !R_.empty(); }
    // Cluster-centred columns: k > 0, the centroids [k][d] in the columns' basis and each row's cluster. k = 0: none.
    const RowClusters& row_clusters() const { return clusters_; }
    // Each arm's cluster, padded to stride() with cluster 0 (so eight arms' labels load as one vector); nullptr for k = 0.
    const int32_t* padded_labels() const { return labels_.empty() ? nullptr : labels_.data(); }
    // Column L1 norms (the atom importance weights) and the variance-proxy atom term.
    const ColumnStatistics& statistics() const { return stats_; }
    // The values of the exact rows as row-major fp32 [n][d] (the truth tests and calibration compare with; for a
    // rotated head, the model's A, in the model's basis).
    std::vector<float> dense() const;

private:
    // Builds the columns from the residual rows when there are any (residual not empty), else from S.
    ColumnMajorHead(std::span<const float> S, const std::vector<float>& residual, int n, int d, bool as_q8);
    void build();
    Matrix rows_;
    std::vector<uint8_t> owned_rows_;
    int n_ = 0, d_ = 0, stride_ = 0;
    Storage storage_ = Storage::f32;
    std::vector<int8_t> q_;
    std::vector<uint16_t> s_;
    std::vector<float> f_;
    std::vector<float> R_; // a rotated head's basis (empty: none)
    RowClusters clusters_;
    std::vector<int32_t> labels_; // clusters_.label padded to stride_
    ColumnStatistics stats_;
};

} // namespace winnow::head
