#pragma once
// The per-block key maxima and minima that query-aware block selection bounds scores with (AttentionParams::
// select_blocks), kept for one layer's KV cache and brought up to date after each cache write. Host memory: the CPU
// backend's cache is host memory; a device backend would keep its own.
#include <vector>

#include "backend/backend.h"

namespace winnow::sparse {

class KeyBlockSummaries {
public:
    // After cache rows [pos0, n_rows) were (re)written: drops the summaries of blocks that overlap rewritten rows
    // (a rewound context) and summarises every complete block of rows [0, n_rows). k_cache is [rows][kv_dim], F32.
    void update(const float* k_cache, int kv_dim, int block, int pos0, int n_rows);
    KeyBlockSummary view() const { return {block_, n_blocks_, kmax_.data(), kmin_.data()}; }
    int n_blocks() const { return n_blocks_; }

private:
    int n_blocks_ = 0, kv_dim_ = 0, block_ = 0;
    std::vector<float> kmax_, kmin_; // [n_blocks][kv_dim]
};

} // namespace winnow::sparse
