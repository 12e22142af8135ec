#include "sparse/key_summary.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backend/tensor.h"
#include "io/quant.h"
#include "winnow/error.h"

namespace winnow::sparse {

void KeyBlockSummaries::update(const float* k_cache, int kv_dim, int block, int pos0, int n_rows) {
    update(GgmlType::F32, k_cache, kv_dim, block, pos0, n_rows);
}

void KeyBlockSummaries::update(GgmlType type, const void* k_cache, int kv_dim, int block, int pos0, int n_rows) {
    if (type != GgmlType::F32 && type != GgmlType::F16 && type != GgmlType::BF16)
        throw Error(ErrorKind::unsupported, std::string("key block summary: no KV cache of ") + ggml_type_name(type));
    if (kv_dim <= 0 || block <= 0 || pos0 < 0 || n_rows < pos0) throw Error(ErrorKind::invalid_argument, "key block summary: bad shape or rows");
    if (kv_dim != kv_dim_ || block != block_) n_blocks_ = 0, kv_dim_ = kv_dim, block_ = block; // another layout: start over
    n_blocks_ = std::min(n_blocks_, pos0 / block); // blocks that hold a rewritten row are stale
    const int complete = n_rows / block;
    if (complete <= n_blocks_) return;
    kmax_.resize(static_cast<size_t>(complete) * kv_dim);
    kmin_.resize(static_cast<size_t>(complete) * kv_dim);
    const size_t row_bytes = static_cast<size_t>(kv_dim) * tensor_type_size(type);
    std::vector<float> row(kv_dim); // one cache row widened to fp32 (each row is read once: no need for vector code)
    for (int b = n_blocks_; b < complete; ++b) {
        float* mx = kmax_.data() + static_cast<size_t>(b) * kv_dim;
        float* mn = kmin_.data() + static_cast<size_t>(b) * kv_dim;
        std::fill(mx, mx + kv_dim, -INFINITY);
        std::fill(mn, mn + kv_dim, INFINITY);
        for (int r = 0; r < block; ++r) {
            dequantize_row(type, static_cast<const uint8_t*>(k_cache) + (static_cast<size_t>(b) * block + r) * row_bytes, row.data(), kv_dim);
            for (int d = 0; d < kv_dim; ++d) mx[d] = std::max(mx[d], row[d]), mn[d] = std::min(mn[d], row[d]);
        }
    }
    n_blocks_ = complete;
}

} // namespace winnow::sparse
