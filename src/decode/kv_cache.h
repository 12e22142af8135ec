#pragma once
// Per-layer key/value cache, [position][n_head_kv * head_dim], in memory the backend owns, in the element type the
// caller chooses: F32 (the default), or F16/BF16 (half the bytes read per decoded token; both backends).
#include <vector>

#include "backend/backend.h"

namespace winnow {

class KvCache {
public:
    KvCache(Backend& be, int n_layer, int n_ctx, int kv_dim, GgmlType type = GgmlType::F32);

    int n_ctx() const { return n_ctx_; }
    GgmlType type() const { return type_; }
    const Tensor& k(int layer) const { return k_[layer]; }
    const Tensor& v(int layer) const { return v_[layer]; }

private:
    int n_ctx_;
    GgmlType type_;
    std::vector<Tensor> k_, v_;
};

} // namespace winnow
