#pragma once
// Prefill attention in tiles of query rows: flash attention's shape on the CPU.
//
// attention_cpu.cpp's row walk scores each query row against its keys on its own. Every key is widened and multiplied
// once per row, at ~50 GFLOP/s on 2 cores, so at 2K context it took 60% of a pp512 of SmolLM2. Here a tile of
// consecutive rows (with every head of one KV group) meets each chunk of keys together:
//   - the chunk's K and V rows are widened to fp32 once;
//   - the scores and the value sums are two OpenBLAS sgemm calls a chunk (Q K^T, then P V), with an online softmax
//     between them.
// The rows of a tile share their keys up to their own positions: the causal diagonal is cut per row. With a static
// block mask, a tile's rows lie in one mask block row, so they share its kept blocks. Query-aware selection picks
// further keys per row: each row adds its selected units afterwards with the row walk's code (attend_selected_units).
//
// The results are the row walk's within fp32 rounding (another summation order), not its bits.
#include <vector>

#include "backend/backend.h"

namespace winnow::cpu {

struct RowTile {
    int t0 = 0, t1 = 0; // query rows [t0, t1) of the call
};

// The call's tiles: consecutive rows, at most rows_per_tile each, cut where a mask block row ends (mask_block 0: no
// mask). The rows are at positions pos0 + t.
std::vector<RowTile> plan_row_tiles(int n_tokens, int pos0, int mask_block, int rows_per_tile);

// Rows per tile: about 96 query vectors a tile (the sgemms' M), fewer rows when that leaves fewer than two tasks
// (tile x KV head) per thread, never fewer than 8.
int tile_rows_for(int n_tokens, int pos0, int mask_block, int group_heads, int n_head_kv, int n_threads);

// Whether attention() hands this call to attention_tiles: at least 16 rows, and the tiles switched on. Throws
// winnow::Error for a WINNOW_CPU_ATTENTION_TILES other than 0 or 1.
bool attention_tiles_apply(int n_tokens);

// As cpu::attention (attention_cpu.h), for a call that attention_tiles_apply accepts.
void attention_tiles(GgmlType kv_type, const float* q, const void* k_cache, const void* v_cache, float* out, int n_tokens, const AttentionParams& p,
                     int n_threads);

// The tiles are on unless the environment sets WINNOW_CPU_ATTENTION_TILES=0 (A/B runs). Tests choose with this: 1 on,
// 0 off, -1 the environment's choice again.
void attention_tiles_force(int on);

} // namespace winnow::cpu
