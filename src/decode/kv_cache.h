#pragma once
// Per-layer key/value cache, fp32, [position][n_head_kv * head_dim].
#include <cstddef>
#include <vector>

namespace winnow {

class KvCache {
public:
    KvCache(int n_layer, int n_ctx, int kv_dim)
        : n_ctx_(n_ctx), kv_dim_(kv_dim), k_(n_layer, std::vector<float>(static_cast<size_t>(n_ctx) * kv_dim)),
          v_(n_layer, std::vector<float>(static_cast<size_t>(n_ctx) * kv_dim)) {}

    int n_ctx() const { return n_ctx_; }
    float* k(int layer, int pos) { return k_[layer].data() + static_cast<size_t>(pos) * kv_dim_; }
    float* v(int layer, int pos) { return v_[layer].data() + static_cast<size_t>(pos) * kv_dim_; }

private:
    int n_ctx_;
    int kv_dim_;
    std::vector<std::vector<float>> k_, v_;
};

} // namespace winnow
