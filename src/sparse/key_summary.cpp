#include "sparse/key_summary.h"

#include <algorithm>

#include "winnow/error.h"

namespace winnow::sparse {

void KeyBlockSummaries::update(const float* k_cache, int kv_dim, int block, int pos0, int n_rows) {
    if (kv_dim <= 0 || block <= 0 || pos0 < 0 || n_rows < pos0) throw Error(ErrorKind::invalid_argument, "key block summary: bad shape or rows");
    if (kv_dim != kv_dim_ || block != block_) n_blocks_ = 0, kv_dim_ = kv_dim, block_ = block; // another layout: start over
    n_blocks_ = std::min(n_blocks_, pos0 / block); // blocks that hold a rewritten row are stale
    const int complete = n_rows / block;
    if (complete <= n_blocks_) return;
    kmax_.resize(static_cast<size_t>(complete) * kv_dim);
    kmin_.resize(static_cast<size_t>(complete) * kv_dim);
    for (int b = n_blocks_; b < complete; ++b) {
        float* mx = kmax_.data() + static_cast<size_t>(b) * kv_dim;
        float* mn = kmin_.data() + static_cast<size_t>(b) * kv_dim;
        const float* first = k_cache + static_cast<size_t>(b) * block * kv_dim;
        std::copy(first, first + kv_dim, mx);
        std::copy(first, first + kv_dim, mn);
        for (int r = 1; r < block; ++r) {
            const float* k = first + static_cast<size_t>(r) * kv_dim;
            for (int d = 0; d < kv_dim; ++d) mx[d] = std::max(mx[d], k[d]), mn[d] = std::min(mn[d], k[d]);
        }
    }
    n_blocks_ = complete;
}

} // namespace winnow::sparse
