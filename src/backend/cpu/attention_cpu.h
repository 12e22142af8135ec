#pragma once
// The CPU backend's attention kernel: causal (optionally block-sparse) attention over an F32, F16 or BF16 KV cache,
// one pass with an online softmax (flash-attention style, no score matrix). A half cache is widened to fp32 8 lanes at
// a time inside the dot products and axpys (cpu/kv_elem.h), never copied whole: the point of it is reading half the
// bytes. Heads that share a KV head (GQA) are processed together so each cache row is loaded once for the group; a
// block mask is walked as runs of kept keys, so dropped blocks cost nothing. When there are too few (row, KV head)
// tasks to fill the cores (decode), each row's kept keys are split into parts whose partial (max, sum, output) are
// merged by log-sum-exp afterwards (flash-decoding). With p.select_blocks, each (row, KV head) adds its query-aware
// blocks to the mask's row first (AttentionParams). Prefill batches of 16 rows or more go to attention_tiles_cpu.h
// instead (tiles of rows against chunks of keys, through sgemm); this walk keeps decode and short batches.
#include "backend/backend.h"

namespace winnow::cpu {

// q [n_tokens][n_head * head_dim], caches [positions][n_head_kv * head_dim] of kv_type (F32, F16 or BF16; another
// type throws), out like q; p as for Backend::attention.
void attention(GgmlType kv_type, const float* q, const void* k_cache, const void* v_cache, float* out, int n_tokens, const AttentionParams& p,
               int n_threads);

// The row walk's score bound of one selection unit for the group's queries qg (KV head kvh): the highest over the
// group's heads of sum_d max(q_d kmax_d, q_d kmin_d).
float unit_score_bound(const AttentionParams& p, const float* qg, int kvh, int unit);

// For a row of attention_tiles (attention_tiles_cpu.h) with query-aware selection: picks the row's units by the row
// walk's rule (the p.select_blocks highest of `bounds`: per selection unit, the group's score bound for a candidate, NaN
// for any other unit; the tiles compute them in another rounding), then adds the keys of the selected units the mask
// drops to the online-softmax state of the group's queries qg at q_pos, KV head kvh: per head g, running max m[g], sum
// l[g] and unnormalised output o[g * head_dim]. Returns how many keys it added.
int attend_selected_units(GgmlType kv_type, const float* qg, const void* k_cache, const void* v_cache, int q_pos, int kvh, const AttentionParams& p,
                          const float* bounds, float* m, float* l, float* o);

// Calibration (SPION pattern capture): the attention probabilities of each query row averaged over the heads (or over
// each KV group's heads, p.capture_per_group: group g at capture + g * n_tokens * stride), written to
// capture[t * stride + j] for keys j <= pos0 + t (dropped keys of a mask: 0; query-aware selection is not applied).
void attention_head_mean_probs(GgmlType kv_type, const float* q, const void* k_cache, int n_tokens, const AttentionParams& p, float* capture,
                               int64_t stride, int n_threads);

} // namespace winnow::cpu
