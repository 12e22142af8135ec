#pragma once
// Launchers of the CUDA backend's kernels, on raw device pointers, in the stream given. Each kernel's CPU twin is the
// CPU backend's op of the same name (src/backend/cpu/cpu_backend.cpp, reference_ops.h); tests/ops compares the two
// backends with the double reference, case by case. Written to be obviously correct first (one warp per GEMV row,
// one block per attention row, shuffles for reductions); tuning waits for measurements on a GPU.
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

#include "backend/cuda/sample_chain.cuh"
#include "io/ggml_type.h"
#include "model/model_config.h"

namespace winnow::cuda {

// The batch-1 GEMVs, the fused qkv + rope + cache writes and the flash-decoding split are described as launches
// (stage.h: gemv_stage, gemv_parts_stage, gemv_swiglu_stage, qkv_rope_store_stage, attention_split_stage) and run by
// launch_stage, or as stages of the step program (step_program.h). Their arguments' types are here.
//
// Up to kMaxLinearParts matrices of one weight type over one input, each with its bias (or null) and output
// (device pointers).
constexpr int kMaxLinearParts = 3;
struct LinearParts {
    const uint8_t* w[kMaxLinearParts] = {};
    size_t row_bytes[kMaxLinearParts] = {};
    int64_t rows[kMaxLinearParts] = {};
    const float* bias[kMaxLinearParts] = {};
    float* y[kMaxLinearParts] = {};
    int count = 0;
};
// The static shared memory of a GEMV block's Q8_0 / Q4_0 row staging (gemv_row.cuh: a slice of 288 words per warp, for
// the kGemvStagedWarps warps of a 256-thread block).
constexpr int kGemvStagedWarps = 8;
constexpr int64_t kGemvStagingBytes = kGemvStagedWarps * 288 * 4;
// The most columns a GEMV block stages its input's RMSNorm for: 48 KiB, the shared memory a launch gets without opting
// in to more, less 12 KiB for the static shared memory beside it (the row staging's 9 KiB, the block_sum scratch, and in
// the step program attention's partial sums, 1 KiB). 9,216: hidden sizes up to 8,192 fuse their norms.
constexpr int64_t kMaxStagedCols = (48 * 1024 - 12 * 1024) / 4;
static_assert(kGemvStagingBytes + 32 * 4 + 1024 + 256 <= 12 * 1024);
// out[i][:] = decoded table row ids[i].
void launch_get_rows(GgmlType type, const uint8_t* table, size_t row_bytes, int64_t n_rows, int64_t cols, const int32_t* ids, int n,
                     float* out, cudaStream_t s);
void launch_rms_norm(const float* x, const float* w, float eps, float* y, int64_t rows, int64_t cols, cudaStream_t s);
void launch_layer_norm(const float* x, const float* w, const float* b, float eps, float* y, int64_t rows, int64_t cols, cudaStream_t s);
// pos_dev (optional, device memory): pos0 is read from *pos_dev when the kernel runs (recorded decode steps).
// freq_factors (optional, device memory, rope_dim / 2 floats): each pair's angle divided by its factor.
void launch_rope(float* x, int64_t rows, int n_heads, int head_dim, int rope_dim, int pos0, float base, RopeStyle style, cudaStream_t s,
                 const int32_t* pos_dev = nullptr, const float* freq_factors = nullptr);
// dst (type dst_type) rows = src (F32) rows, converted.
void launch_copy_rows(const float* src, void* dst, GgmlType dst_type, int64_t n_elements, cudaStream_t s);
// The same into rows [*row_dev, *row_dev + src_rows) of dst (dst_rows x cols), the row read when the kernel runs; rows
// that do not fit dst trap (a sticky error: the CPU backend throws there, and a caller that uploads a row checks it).
void launch_copy_rows_at(const float* src, int64_t src_rows, void* dst, GgmlType dst_type, int64_t dst_rows, int64_t cols, const int32_t* row_dev,
                         cudaStream_t s);
// Backend::rope_store_kv (rope_store_kv.cu): q and k rotated in place as launch_rope rotates them, then k and v written
// to rows [row, row + rows) of the caches as launch_copy_rows(_at) writes them, all in one launch. Device pointers.
struct RopeStoreKvArgs {
    float* q = nullptr;                 // [rows][n_head * head_dim]
    float* k = nullptr;                 // [rows][n_head_kv * head_dim]
    const float* v = nullptr;           // [rows][n_head_kv * head_dim]
    void* k_cache = nullptr;            // [k_cache_rows][n_head_kv * head_dim], of the launch's cache type
    void* v_cache = nullptr;            // [v_cache_rows][n_head_kv * head_dim]
    int64_t rows = 0, k_cache_rows = 0, v_cache_rows = 0;
    int n_head = 0, n_head_kv = 0, head_dim = 0;
    int rope_dim = 0;                   // rotated dims of each head; 0: none (RopeStyle::none)
    bool adjacent = false;              // RopeStyle::adjacent_pairs, else rotate-half
    float base = 10000.0f;
    const float* freq_factors = nullptr; // [rope_dim / 2] angle divisors, or null (RopeParams::freq_factors)
    int pos0 = 0;                       // row t is at position pos0 + t; read from *pos_dev when the kernel runs if set
    const int32_t* pos_dev = nullptr;
    int64_t dst_row = 0;                // cache row of row 0; read from *row_dev when the kernel runs if set, and
    const int32_t* row_dev = nullptr;   // then rows that do not fit a cache at that row trap (copy_rows_at's rule)
};
void launch_rope_store_kv(const RopeStoreKvArgs& a, GgmlType cache_type, cudaStream_t s);
// Dense causal attention over a cache of `cache_type` (a block mask: launch_sparse_attention below).
// Throws winnow::Error when a row's keys (pos0 + n_tokens, or the window where it is shorter) do not fit the kernel's
// shared memory (about 56K on an H100/H200).
// With pos_dev, pos0 is read from device memory when the kernel runs and the shared memory is sized for max_keys.
// window > 0: the row at position p attends to keys (p - window, p] only (AttentionParams::window).
void launch_attention(const float* q, const void* k_cache, const void* v_cache, GgmlType cache_type, float* out, int n_tokens, int pos0,
                      int n_head, int n_head_kv, int head_dim, float scale, int window, float softcap, cudaStream_t s,
                      const int32_t* pos_dev = nullptr, int max_keys = 0);
// Dense causal attention for prefill rows (attention_tiles.cu): blocks of 16 query rows sharing each tile of 32 keys
// in shared memory, an online softmax per row. head_dim <= kMaxTiledHeadDim; any number of keys; no device position.
constexpr int kMaxTiledHeadDim = 128;
void launch_attention_tiles(const float* q, const void* k_cache, const void* v_cache, GgmlType cache_type, float* out, int n_tokens, int pos0,
                            int n_head, int n_head_kv, int head_dim, float scale, int window, float softcap, cudaStream_t s);
// Flash-decoding (stage.h's attention_split_stage) splits a row's keys kSplitKeys at a time; its workspace holds
// attention_split_workspace_floats(...) floats.
constexpr int kSplitKeys = 256;
size_t attention_split_workspace_floats(int n_tokens, int n_head, int head_dim, int n_splits);
// Block-sparse attention (sparse_attention.cu): the rows, their block mask and the optional query-aware selection.
// Work follows the kept keys: each (row, KV head)'s kept units are listed first, then split kSplitKeys keys at a time.
struct SparseRowsArgs {
    int pos0 = 0;                     // the position of the launch's first row, less row0 (from pos_dev when it is set)
    int row0 = 0;                     // the launch's rows are rows row0.. of a larger batch (q and out point at row0)
    int rows = 0;
    const int32_t* pos_dev = nullptr; // a recorded step's position, read when the kernels run (row0 must be 0)
    int max_keys = 0;                 // keys the longest row may have (the cache's rows with pos_dev)
    int n_head = 0, n_head_kv = 0, hd = 0;
    float scale = 0;
    int unit = 0;                     // keys per flag: the selection's unit with selection, else the mask's block
    int list_units = 0;               // ceil(cache rows / unit): the stride of the per-row unit lists and keys
    int max_kept_units = 0;           // the most units any row keeps (mask units + select): sizes the splits
    const uint8_t* keep = nullptr;    // the mask on the device, [groups][n_blocks][n_blocks]
    // The pattern alone (select 0, unit = the mask's block): the mask's rows as lists, built when it was uploaded: row
    // r = group * n_blocks + query block keeps blocks mask_row_blocks[mask_row_start[r] .. mask_row_start[r + 1]),
    // ascending, causal only (the last one the row's own). Null: lists are built per row (sparse_rows_kernel).
    const int* mask_row_start = nullptr;
    const int* mask_row_blocks = nullptr;
    int mask_block = 0, mask_n_blocks = 0, mask_groups = 1;
    int select = 0;                   // query-aware units per (row, KV head); 0: the mask alone
    const uint16_t* kmax = nullptr;   // fp16 key summaries on the device, [n_head_kv][summarised_units][hd] (KeyBlockSummary)
    const uint16_t* kmin = nullptr;
    int summarised_units = 0;         // units [0, summarised_units) have summaries
};
struct SparseWorkspace {
    int n_splits = 0;
    size_t key_words = 0, list_ints = 0, count_ints = 0, record_floats = 0, bytes = 0;
};
SparseWorkspace sparse_attention_workspace(const SparseRowsArgs& a);
// Throws winnow::Error for arguments the kernels cannot run (unit, summaries, shared memory).
void check_sparse_attention(const SparseRowsArgs& a);
// arrivals: a.rows * a.n_head ints that are 0 (the last split block of each (row, head) merges its row, and leaves its
// count 0 again for the next launch).
void launch_sparse_attention(const float* q, const void* k_cache, const void* v_cache, GgmlType cache_type, float* out, const SparseRowsArgs& a,
                             bool spion_denominator, void* workspace, int* arrivals, cudaStream_t s);
// Backend::summarize_keys: the kmax/kmin summaries (fp16 bits; a plane per KV head of the cache's ceil(max_rows / unit)
// units, KeyBlockSummary's layout, as check_summarize_keys_args requires) of the units holding cache rows [row0, row0 +
// n_rows), each over its rows up to row0 + n_rows; row0 from *row_dev when it is set (a value out of [0, max_rows -
// n_rows] traps).
void launch_summarize_keys(GgmlType cache_type, const void* k_cache, int kv_dim, int n_head_kv, int unit, int row0, int n_rows, const int32_t* row_dev,
                           int max_rows, uint16_t* kmax, uint16_t* kmin, cudaStream_t s);
void launch_gelu_tanh(float* x, int64_t n, cudaStream_t s);
void launch_swiglu(const float* gate, const float* up, float* out, int64_t n, cudaStream_t s);
void launch_geglu(const float* gate, const float* up, float* out, int64_t n, cudaStream_t s); // out = gelu_tanh(gate) * up
void launch_scale(float* x, float scale, int64_t n, cudaStream_t s);                        // x *= scale
void launch_softcap(float* x, float cap, int64_t n, cudaStream_t s);                        // x = cap * tanh(x / cap)
// y[r][:] += x[x_rows == 1 ? 0 : r][:]
void launch_add(float* y, const float* x, int64_t rows, int64_t x_rows, int64_t cols, cudaStream_t s);
// The best k of n logits (ties: lower id first) into ids/values (device, k entries), and log sum exp into *log_norm
// when log_norm is not null. One block.
void launch_top_k(const float* logits, int64_t n, int k, int32_t* ids, float* values, double* log_norm, cudaStream_t s);
// The fused exact head (head_top_k.cu): the best k of W x (W rows of `row_bytes` in `type`, x one row of cols) into
// ids/values (device, k entries) and log sum exp(W x) into *log_norm when it is not null, without writing the logits;
// the same ids and logit bits as a gemv stage + launch_top_k. `workspace` holds head_top_k_workspace_bytes(rows, k)
// bytes, 8-byte aligned (no initial contents needed). 1 <= k <= rows < INT32_MAX - 1024 (checked by the caller).
size_t head_top_k_workspace_bytes(int64_t rows, int k);
void launch_head_top_k(GgmlType type, const uint8_t* w, size_t row_bytes, int64_t rows, int64_t cols, const float* x, int k, void* workspace,
                       int32_t* ids, float* values, double* log_norm, cudaStream_t s);

// SampleChain (the chain's parameters as the kernel reads them): sample_chain.cuh.
// Device scratch the sample kernel needs for a vocabulary of n; it must be zero-filled once before the first call
// (its first word is the blocks' arrival count, which every launch leaves 0 again; the rest the kernel clears or
// writes before it reads).
size_t sample_workspace_bytes(int64_t n);
// The next token of the chain from n logits into *token; the history window is history[0, n_history) (n_history read
// from *n_history_dev when set, clamped to capacity); *u is the draw's uniform (unused when greedy); with append the
// token is also written to history[n_history] when it is inside capacity. sliced: one block per slice of the
// vocabulary, the last finishing (sample.cu); else the first version's single block, for measuring.
void launch_sample(const float* logits, int n, const SampleChain& c, const int32_t* history, int capacity, int n_history,
                   const int32_t* n_history_dev, const double* u, bool append, int32_t* token, void* workspace, bool sliced,
                   cudaStream_t s);

} // namespace winnow::cuda
