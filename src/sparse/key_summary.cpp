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

void summarize_rows(GgmlType type, const void* k_cache, int kv_dim, int n_head_kv, int64_t r0, int64_t r1, uint16_t* kmax, uint16_t* kmin,
                    size_t head_stride) {
    if (type != GgmlType::F32 && type != GgmlType::F16 && type != GgmlType::BF16)
        throw Error(ErrorKind::unsupported, std::string("key block summary: no KV cache of ") + ggml_type_name(type));
    const size_t row_bytes = static_cast<size_t>(kv_dim) * tensor_type_size(type);
    // one cache row widened to fp32 (each row is read once: no need for vector code), and the rows' fp32 extremes
    std::vector<float> row(kv_dim), mx(kv_dim, -INFINITY), mn(kv_dim, INFINITY);
    for (int64_t r = r0; r < r1; ++r) {
        dequantize_row(type, static_cast<const uint8_t*>(k_cache) + static_cast<size_t>(r) * row_bytes, row.data(), kv_dim);
        for (int d = 0; d < kv_dim; ++d) mx[d] = std::max(mx[d], row[d]), mn[d] = std::min(mn[d], row[d]);
    }
    const int hd = kv_dim / n_head_kv;
    for (int d = 0; d < kv_dim; ++d) {
        const size_t at = static_cast<size_t>(d / hd) * head_stride + d % hd;
        kmax[at] = fp16_round_up(mx[d]), kmin[at] = fp16_round_down(mn[d]);
    }
}

} // namespace winnow::sparse
