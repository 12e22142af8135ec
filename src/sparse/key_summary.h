#pragma once
// The per-block key maxima and minima that query-aware block selection bounds scores with (AttentionParams::
// select_blocks): the selection unit's defaults, the outward fp16 rounding, and the CPU's summary of cache rows. The
// summaries themselves live on the backend (Backend::summarize_keys keeps them current after each cache write).
#include <cstdint>

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
// elementwise max rounded up and the min rounded down, KV head h's head_dim = kv_dim / n_head_kv values at kmax +
// h * head_stride and kmin + h * head_stride (KeyBlockSummary's planes). NaN keys are passed over (as std::max passes
// them over). Another type throws winnow::Error(unsupported). The CPU backend's summarize_keys op summarises with it;
// the CUDA kernel is its device twin.
void summarize_rows(GgmlType type, const void* k_cache, int kv_dim, int n_head_kv, int64_t r0, int64_t r1, uint16_t* kmax, uint16_t* kmin,
                    size_t head_stride);

} // namespace winnow::sparse
