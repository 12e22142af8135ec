#pragma once
// The per-block key maxima and minima that query-aware block selection bounds scores with (AttentionParams::
// select_blocks), kept for one layer's KV cache and brought up to date after each cache write. Host memory: the CPU
// backend's cache is host memory; a device backend would keep its own.
#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace winnow::sparse {

// Tokens per query-aware selection unit when none is asked for: 8 where 8 divides the pattern's block, else the
// pattern's block. Finer units bound scores more tightly and spend the keys read where they count (Quest uses 16-token
// pages; at 8K on SmolLM2-135M, 64 units of 8 keys lose less perplexity than 64 of 16 while reading half the selected
// keys, and keep passkey recall at dense's: bench/reports/spion-attention-cpu.md, section 9).
constexpr int kSelectBlockSize = 8;
// Query-aware blocks per sparse row by default (generate, perplexity, the API): 64 units of 8 tokens.
constexpr int kSelectBlocks = 64;
inline int selection_unit(int requested, int pattern_block) {
    if (requested > 0) return requested;
    return pattern_block % kSelectBlockSize == 0 ? kSelectBlockSize : pattern_block;
}

// The fp16 value nearest x on the side away from the keys it bounds: the smallest fp16 >= x (round_up) and the largest
// fp16 <= x (round_down); beyond fp16's range, +-infinity. The summaries store these, so the bound stays a bound.
uint16_t fp16_round_up(float x);
uint16_t fp16_round_down(float x);

// The summary of cache rows [r0, r1) of k_cache ([rows][kv_dim] of `type`: F32, F16 or BF16, widened exactly): the
// elementwise max rounded up into kmax[kv_dim] and the min rounded down into kmin[kv_dim]. NaN keys are passed over (as
// std::max passes them over). Another type throws winnow::Error(unsupported). The CPU backend's summarize_keys op and
// KeyBlockSummaries both summarise with it; the CUDA kernel is its device twin.
void summarize_rows(GgmlType type, const void* k_cache, int kv_dim, int64_t r0, int64_t r1, uint16_t* kmax, uint16_t* kmin);

class KeyBlockSummaries {
public:
    // After cache rows [pos0, n_rows) were (re)written: drops the summaries of blocks that overlap rewritten rows
    // (a rewound context) and summarises every complete block of rows [0, n_rows). k_cache is [rows][kv_dim], F32.
    void update(const float* k_cache, int kv_dim, int block, int pos0, int n_rows);
    // The same for a host cache of `type` (F32, F16 or BF16: the values are widened exactly, so a half cache's summary
    // bounds exactly the keys attention reads); another type throws winnow::Error(unsupported).
    void update(GgmlType type, const void* k_cache, int kv_dim, int block, int pos0, int n_rows);
    KeyBlockSummary view() const { return {block_, n_blocks_, kmax_.data(), kmin_.data()}; }
    int n_blocks() const { return n_blocks_; }

private:
    int n_blocks_ = 0, kv_dim_ = 0, block_ = 0;
    std::vector<uint16_t> kmax_, kmin_; // fp16 [n_blocks][kv_dim], rounded outward
};

} // namespace winnow::sparse
