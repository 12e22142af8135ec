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
#include "model/weights.h"

namespace winnow::head {

class ColumnMajorHead {
public:
    enum class Storage { q8, f32 };

    // `stored` must outlive this object (its rows serve the exact dot products).
    explicit ColumnMajorHead(const Matrix& stored);
    // From row-major fp32 [n][d]; as_q8 stores the rows as Q8_0 first (ggml's reference quantizer), so tests can
    // exercise that storage. The object owns the rows.
    ColumnMajorHead(std::span<const float> A, int n, int d, bool as_q8);

    int n() const { return n_; }
    int d() const { return d_; }
    Storage storage() const { return storage_; }
    const Matrix& rows() const { return rows_; }

    // Columns are `stride()` = n rounded up to 32 long (zero padded), so a block of 32 arms never reads past one.
    int stride() const { return stride_; }
    const int8_t* quant_column(int j) const { return q_.data() + static_cast<size_t>(j) * stride_; }
    const uint16_t* scale_row(int block) const { return s_.data() + static_cast<size_t>(block) * stride_; }
    const float* float_column(int j) const { return f_.data() + static_cast<size_t>(j) * stride_; }

    // <A[row], x> on the stored format, exactly what the exact head computes for that row.
    float row_dot(int row, const cpu::PreparedActivation& x) const;
    // Column L1 norms (the atom importance weights) and the variance-proxy atom term.
    const ColumnStatistics& statistics() const { return stats_; }
    // The values as row-major fp32 [n][d] (the truth tests and calibration compare with).
    std::vector<float> dense() const;

private:
    void build();
    Matrix rows_;
    std::vector<uint8_t> owned_rows_;
    int n_ = 0, d_ = 0, stride_ = 0;
    Storage storage_ = Storage::f32;
    std::vector<int8_t> q_;
    std::vector<uint16_t> s_;
    std::vector<float> f_;
    ColumnStatistics stats_;
};

} // namespace winnow::head
