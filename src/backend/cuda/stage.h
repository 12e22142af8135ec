#pragma once
// One kernel launch of a decode step, as data: what a kernel of linear.cu, qkv_rope_store.cu or attention.cu needs to
// run (its arguments and its grid), so that the same launch can be issued as that kernel or run as one stage of the
// step program (step_program.cu), a cooperative kernel that runs many stages with grid barriers between them.
//
// Every kernel below runs kStageThreads threads a block; each block of a launch is a "virtual block" of a stage, so
// the stage's blocks compute exactly what the kernel's blocks compute, with the same bits, whichever way it runs.
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

#include "backend/cuda/kernels.h"
#include "backend/cuda/rope_store_kv_logic.cuh"
#include "io/ggml_type.h"

#ifdef __CUDACC__
#define WINNOW_STAGE_FN __host__ __device__
#else
#define WINNOW_STAGE_FN
#endif

namespace winnow::cuda {

constexpr int kStageThreads = 256; // 8 warps: the GEMVs' rows per block, rms_norm_kernel's strides

enum class StageKind : uint8_t { gemv, gemv_parts, gemv_swiglu, qkv_rope_store, attention_split };

// gemv_stage's: y[t][r] = W.row(r) . x[t] (+ bias[r]), or += with accumulate.
struct GemvArgs {
    const uint8_t* w;
    size_t row_bytes;
    int64_t rows, cols;
    const float* bias;
    const float* x;
    float* y;
    bool accumulate;
};
// gemv_parts_stage's: up to three GEMVs of one input, its RMSNorm staged when norm_w is set.
struct PartsArgs {
    LinearParts p;
    int64_t cols;
    const float* x;
    const float* norm_w;
    float eps;
};
// gemv_swiglu_stage's: silu(gate) * up, the input's RMSNorm staged when norm_w is set.
struct SwigluArgs {
    const uint8_t* w_gate;
    const uint8_t* w_up;
    size_t row_bytes;
    int64_t rows, cols;
    const float* x;
    float* y;
    const float* norm_w;
    float eps;
};
// qkv_rope_store_stage's: norm, q/k/v, rope and the cache writes.
struct QkvArgs {
    LinearParts p;
    int64_t cols;
    const float* x;
    const float* norm_w;
    float eps;
    RopeStoreKvArgs a;
    RopeStoreKvShape shape;
    int items;
};
// attention_split_stage's: flash-decoding over the KV cache, merged by the last split block of each (head, row).
struct AttentionSplitArgs {
    const float* q;
    const void* k;
    const void* v;
    float* part;
    int* arrivals;
    float* out;
    int pos0, n_head, n_head_kv, hd;
    float scale;
    const int32_t* pos_dev;
    int max_keys, n_splits;
    int window; // > 0: each row's keys (q_pos - window, q_pos], split from the window's first key
    float softcap; // > 0: each scaled score s becomes softcap * tanh(s / softcap) (Gemma 2)
};

struct Stage {
    StageKind kind = StageKind::gemv;
    GgmlType weight = GgmlType::F32; // the weights' type (the GEMV stages and qkv)
    GgmlType cache = GgmlType::F32;  // the KV cache's type (qkv and attention)
    uint3 grid{0, 0, 0};             // the kernel's grid: blocks x, y, z of kStageThreads threads
    uint32_t shared = 0;             // dynamic shared memory bytes a block needs
    WINNOW_STAGE_FN bool uses_weight() const { return kind != StageKind::attention_split; }
    WINNOW_STAGE_FN bool uses_cache() const { return kind == StageKind::qkv_rope_store || kind == StageKind::attention_split; }
    WINNOW_STAGE_FN uint64_t blocks() const { return 1ull * grid.x * grid.y * grid.z; }
    union Args {
        GemvArgs gemv;
        PartsArgs parts;
        SwigluArgs swiglu;
        QkvArgs qkv;
        AttentionSplitArgs attention;
        Args() : gemv{} {}
    } args;
};

// The stages, with their kernels' grids and shared memory (a stage with no block is nothing to run). Device pointers.
//
// gemv_stage: y[t][r] = W.row(r) . x[t] (+ bias[r]) for t < n_tokens; W rows of `row_bytes` in `type`. accumulate:
// y[t][r] += that value instead (one rounded addition, as launch_add would make it).
// gemv_parts_stage: the parts' GEMVs over one input (y_i[t][r] = W_i.row(r) . x[t] (+ bias_i[r])), with gemv_stage's
// bits. norm_w (optional, [cols]): the GEMVs read x's RMSNorm (weight norm_w, epsilon norm_eps), staged per block in
// cols floats of shared memory, with launch_rms_norm's bits (cols <= kMaxStagedCols).
// gemv_swiglu_stage: y[t][r] = silu(W_gate.row(r) . x[t]) * (W_up.row(r) . x[t]) with the bits of two gemv stages and
// launch_swiglu; both matrices `type`, rows of `row_bytes`; norm_w as for gemv_parts_stage.
// qkv_rope_store_stage: a LLaMA layer's decode-step front (qkv_rope_store.cu): x's RMSNorm staged per block, the q, k,
// v projections (three parts of weight_type, their outputs rs.q, rs.k, rs.v), then rope and the cache writes as
// launch_rope_store_kv does them, each warp computing one output or both dims of a rotated pair: the bits of
// gemv_parts_stage (with the norm) then launch_rope_store_kv. rs.rows = n_tokens rows of x (cols <= kMaxStagedCols).
// attention_split_stage: flash-decoding for a few query rows over many keys: each row's keys in splits of kSplitKeys,
// one block per (head, row, split), merged by log-sum-exp by the last of a (head, row)'s blocks to finish. The
// workspace holds attention_split_workspace_floats(...) floats; arrivals holds n_tokens * n_head ints that are 0
// before the launch and are left 0 after it (zero them once at allocation); n_splits must cover the row's keys
// (ceil((pos0 + n_tokens) / kSplitKeys), or ceil(max_keys / kSplitKeys) with pos_dev, where pos0 is read from device
// memory when the kernel runs and splits beyond a row's keys contribute nothing).
Stage gemv_stage(GgmlType type, const uint8_t* w, size_t row_bytes, int64_t rows, int64_t cols, const float* bias, const float* x, float* y,
                 int n_tokens, bool accumulate);
Stage gemv_parts_stage(GgmlType type, const LinearParts& p, int64_t cols, const float* x, int n_tokens, const float* norm_w, float norm_eps);
Stage gemv_swiglu_stage(GgmlType type, const uint8_t* w_gate, const uint8_t* w_up, size_t row_bytes, int64_t rows, int64_t cols, const float* x,
                        float* y, int n_tokens, const float* norm_w, float norm_eps);
Stage qkv_rope_store_stage(GgmlType weight_type, const LinearParts& qkv, int64_t cols, const float* x, const float* norm_w, float norm_eps,
                           const RopeStoreKvArgs& rs, GgmlType cache_type);
Stage attention_split_stage(const float* q, const void* k_cache, const void* v_cache, GgmlType cache_type, float* out, int n_tokens, int pos0,
                            int n_head, int n_head_kv, int head_dim, float scale, int window, float softcap, float* workspace, int* arrivals,
                            int n_splits, const int32_t* pos_dev, int max_keys);

// Runs one stage as its own kernel (PDL where on, as the launchers always have): launch_stage picks the launcher of its
// kind (linear.cu, qkv_rope_store.cu, attention.cu).
void launch_stage(const Stage& s, cudaStream_t stream);
void launch_gemv_stage(const Stage& s, cudaStream_t stream);
void launch_qkv_rope_store_stage(const Stage& s, cudaStream_t stream);
void launch_attention_split_stage(const Stage& s, cudaStream_t stream);

} // namespace winnow::cuda
