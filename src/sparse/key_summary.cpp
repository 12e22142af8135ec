#include "sparse/key_summary.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "backend/tensor.h"
#include "io/quant.h"
#include "winnow/error.h"

namespace winnow::sparse {

uint16_t fp16_round_up(float x) {
    uint16_t h = fp32_to_fp16(x);
    if (std::isnan(x) || fp16_to_fp32(h) >= x) return h;
    // one step up: the next magnitude for a positive value, the previous one for a negative (-0 steps to the smallest
    // positive subnormal; -inf to -65504)
    if (h & 0x8000) return h == 0x8000 ? 0x0001 : static_cast<uint16_t>(h - 1);
    return static_cast<uint16_t>(h + 1);
}

uint16_t fp16_round_down(float x) { return static_cast<uint16_t>(fp16_round_up(-x) ^ 0x8000); }

void KeyBlockSummaries::update(const float* k_cache, int kv_dim, int block, int pos0, int n_rows) {
    update(GgmlType::F32, k_cache, kv_dim, block, pos0, n_rows);
}

void summarize_rows(GgmlType type, const void* k_cache, int kv_dim, int64_t r0, int64_t r1, uint16_t* kmax, uint16_t* kmin) {
    if (type != GgmlType::F32 && type != GgmlType::F16 && type != GgmlType::BF16)
        throw Error(ErrorKind::unsupported, std::string("key block summary: no KV cache of ") + ggml_type_name(type));
    const size_t row_bytes = static_cast<size_t>(kv_dim) * tensor_type_size(type);
    // one cache row widened to fp32 (each row is read once: no need for vector code), and the rows' fp32 extremes
    std::vector<float> row(kv_dim), mx(kv_dim, -INFINITY), mn(kv_dim, INFINITY);
    for (int64_t r = r0; r < r1; ++r) {
        dequantize_row(type, static_cast<const uint8_t*>(k_cache) + static_cast<size_t>(r) * row_bytes, row.data(), kv_dim);
        for (int d = 0; d < kv_dim; ++d) mx[d] = std::max(mx[d], row[d]), mn[d] = std::min(mn[d], row[d]);
    }
    for (int d = 0; d < kv_dim; ++d) kmax[d] = fp16_round_up(mx[d]), kmin[d] = fp16_round_down(mn[d]);
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
    for (int b = n_blocks_; b < complete; ++b)
        summarize_rows(type, k_cache, kv_dim, static_cast<int64_t>(b) * block, static_cast<int64_t>(b + 1) * block, kmax_.data() + static_cast<size_t>(b) * kv_dim,
                       kmin_.data() + static_cast<size_t>(b) * kv_dim);
    n_blocks_ = complete;
}

} // namespace winnow::sparse
