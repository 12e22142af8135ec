#include "head/column_major_head.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "io/quant.h"
#include "winnow/error.h"

namespace winnow::head {

ColumnMajorHead::ColumnMajorHead(const Matrix& stored) : rows_(stored), n_(static_cast<int>(stored.rows)), d_(static_cast<int>(stored.cols)) {
    if (n_ <= 0 || d_ <= 0 || stored.empty()) throw Error(ErrorKind::invalid_argument, "adaptive head: empty head matrix");
    build();
}

ColumnMajorHead::ColumnMajorHead(std::span<const float> A, int n, int d, bool as_q8) : n_(n), d_(d) {
    if (n <= 0 || d <= 0 || A.size() != static_cast<size_t>(n) * d) throw Error(ErrorKind::invalid_argument, "adaptive head: A must hold n x d values");
    if (as_q8 && d % kQuantBlock) throw Error(ErrorKind::invalid_argument, "adaptive head: Q8_0 rows need d to be a multiple of 32");
    rows_.type = as_q8 ? GgmlType::Q8_0 : GgmlType::F32;
    rows_.rows = n;
    rows_.cols = d;
    rows_.row_bytes = as_q8 ? static_cast<size_t>(d) / kQuantBlock * sizeof(BlockQ8_0) : static_cast<size_t>(d) * sizeof(float);
    rows_.name = "A";
    owned_rows_.resize(rows_.row_bytes * n);
    for (int i = 0; i < n; ++i) {
        const float* src = A.data() + static_cast<size_t>(i) * d;
        uint8_t* dst = owned_rows_.data() + rows_.row_bytes * i;
        if (as_q8) quantize_row_ref(GgmlType::Q8_0, src, dst, d);
        else std::memcpy(dst, src, rows_.row_bytes);
    }
    rows_.data = owned_rows_.data();
    build();
}

ColumnMajorHead::ColumnMajorHead(std::span<const float> AR, int n, int d, bool as_q8, const Matrix& model_rows, std::vector<float> R)
    : ColumnMajorHead(AR, n, d, as_q8, model_rows, std::move(R), RowClusters{}) {
    if (R_.empty()) throw Error(ErrorKind::invalid_argument, "adaptive head: a rotated head needs its rotation");
}

namespace {

// The clustering must fit S before its residual is taken (the delegating constructor takes it first).
std::vector<float> checked_residual(std::span<const float> S, int n, int d, const RowClusters& c) {
    if (c.k == 0) return {};
    if (n <= 0 || d <= 0 || S.size() != static_cast<size_t>(n) * d || c.k < 0 || c.d != d || c.centroids.size() != static_cast<size_t>(c.k) * d ||
        c.label.size() != static_cast<size_t>(n) || std::any_of(c.label.begin(), c.label.end(), [&](int32_t l) { return l < 0 || l >= c.k; }))
        throw Error(ErrorKind::invalid_argument, "adaptive head: the row clusters do not fit the head");
    return residual_rows(S, n, c);
}

} // namespace

ColumnMajorHead::ColumnMajorHead(std::span<const float> S, const std::vector<float>& residual, int n, int d, bool as_q8)
    : ColumnMajorHead(residual.empty() ? S : std::span<const float>(residual), n, d, as_q8) {}

ColumnMajorHead::ColumnMajorHead(std::span<const float> S, int n, int d, bool as_q8, const Matrix& model_rows, std::vector<float> R, RowClusters clusters)
    : ColumnMajorHead(S, checked_residual(S, n, d, clusters), n, d, as_q8) {
    if (model_rows.empty() || model_rows.rows != n || model_rows.cols != d || !(R.empty() || R.size() == static_cast<size_t>(d) * d))
        throw Error(ErrorKind::invalid_argument, "adaptive head: the model's rows or the rotation do not match the head's columns");
    // the columns and their statistics are built from S (or its residual rows); the exact rows are the model's from here on
    rows_ = model_rows;
    std::vector<uint8_t>().swap(owned_rows_);
    R_ = std::move(R);
    clusters_ = std::move(clusters);
    if (clusters_.k > 0) {
        labels_.assign(stride_, 0);
        std::copy(clusters_.label.begin(), clusters_.label.end(), labels_.begin());
    }
}

void ColumnMajorHead::prepare_exact(std::span<const float> y, ExactQuery& q) const {
    if (static_cast<int>(y.size()) != d_) throw Error(ErrorKind::invalid_argument, "adaptive head: the query is not of length d");
    q.x.resize(static_cast<size_t>(d_));
    if (R_.empty()) std::copy(y.begin(), y.end(), q.x.begin());
    else // x = R y, row by row on this thread: R (R^T x) is x up to fp32 rounding (~1e-7 relative)
        for (int i = 0; i < d_; ++i) q.x[i] = cpu::vec_dot_f32(R_.data() + static_cast<size_t>(i) * d_, y.data(), d_);
    cpu::prepare_activation(rows_.type, q.x.data(), d_, q.prep);
}

void ColumnMajorHead::build() {
    const size_t n = n_;
    stride_ = (n_ + 31) / 32 * 32;
    const size_t stride = stride_;
    if (stores_q8(rows_.type)) {
        storage_ = Storage::q8;
        q_.assign(static_cast<size_t>(d_) * stride, 0);
        s_.assign(static_cast<size_t>(d_ / kQuantBlock) * stride, 0);
        for (size_t i = 0; i < n; ++i) {
            const uint8_t* row = rows_.row(i);
            for (int b = 0; b < d_ / kQuantBlock; ++b) {
                int8_t block[32];
                uint16_t scale;
                if (rows_.type == GgmlType::Q8_0) {
                    BlockQ8_0 blk;
                    std::memcpy(&blk, row + b * sizeof(BlockQ8_0), sizeof blk);
                    std::memcpy(block, blk.qs, 32);
                    scale = blk.d;
                } else { // Q4_0: value = d * (nibble - 8)
                    BlockQ4_0 blk;
                    std::memcpy(&blk, row + b * sizeof(BlockQ4_0), sizeof blk);
                    for (int j = 0; j < 16; ++j) {
                        block[j] = static_cast<int8_t>((blk.qs[j] & 0x0f) - 8);
                        block[j + 16] = static_cast<int8_t>((blk.qs[j] >> 4) - 8);
                    }
                    scale = blk.d;
                }
                s_[b * stride + i] = scale;
                for (int j = 0; j < 32; ++j) q_[(static_cast<size_t>(b) * 32 + j) * stride + i] = block[j];
            }
        }
    } else {
        storage_ = Storage::f32;
        f_.assign(static_cast<size_t>(d_) * stride, 0.0f);
        std::vector<float> row(d_);
        for (size_t i = 0; i < n; ++i) {
            dequantize_row(rows_.type, rows_.row(i), row.data(), d_);
            for (int j = 0; j < d_; ++j) f_[static_cast<size_t>(j) * stride + i] = row[j];
        }
    }
    stats_ = column_statistics(dense(), n_, d_);
}

std::vector<float> ColumnMajorHead::dense() const {
    std::vector<float> A(static_cast<size_t>(n_) * d_);
    for (size_t i = 0; i < static_cast<size_t>(n_); ++i) dequantize_row(rows_.type, rows_.row(i), A.data() + i * d_, d_);
    return A;
}

float ColumnMajorHead::row_dot(int row, const ExactQuery& x) const { return cpu::vec_dot(rows_.type, rows_.row(row), x.prep, d_); }

} // namespace winnow::head
