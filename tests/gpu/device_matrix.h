#pragma once
// A weight matrix for the GPU tests: host floats quantized row by row to `type` (the reference quantizer) and placed on
// the backend's device; `storage` keeps the bytes alive for as long as the Matrix is used.
#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/quant.h"

namespace winnow::gpu_test {

inline Matrix place_matrix(Backend& be, GgmlType type, int64_t rows, int64_t cols, const std::vector<float>& w, Tensor& storage,
                           const char* name = "test") {
    const size_t rb = ggml_row_bytes(type, cols);
    std::vector<uint8_t> bytes(rb * static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) quantize_row_ref(type, w.data() + r * cols, bytes.data() + r * rb, cols);
    storage = be.place_readonly(GgmlType::I8, 1, static_cast<int64_t>(bytes.size()), bytes.data());
    Matrix m;
    m.type = type;
    m.rows = rows;
    m.cols = cols;
    m.row_bytes = rb;
    m.data = storage.data<uint8_t>();
    m.name = name;
    return m;
}

} // namespace winnow::gpu_test
