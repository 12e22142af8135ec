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

// launch_gemv: y[t][r] = W.row(r) . x[t] (+ bias[r]), or += with accumulate.
struct GemvArgs {
    const uint8_t* w;
    size_t row_bytes;
    int64_t rows, cols;
    const float* bias;
    const float* x;
    float* y;
    bool accumulate;
};
// launch_gemv_parts: up to three GEMVs of one input, its RMSNorm staged when norm_w is set.
struct PartsArgs {
    LinearParts p;
    int64_t cols;
    const float* x;
    const float* norm_w;
    float eps;
};
// launch_gemv_swiglu: silu(gate) * up, the input's RMSNorm staged when norm_w is set.
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
// launch_qkv_rope_store: norm, q/k/v, rope and the cache writes.
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
// launch_attention_split: flash-decoding over the KV cache, merged by the last split block of each (head, row).
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

// The stages of the launchers in kernels.h (the same grids and shared memory the launchers use; the launchers run
// them as their kernels: launch_stage). n_tokens >= 1 and at least one output row.
Stage gemv_stage(GgmlType type, const uint8_t* w, size_t row_bytes, int64_t rows, int64_t cols, const float* bias, const float* x, float* y,
                 int n_tokens, bool accumulate);
Stage gemv_parts_stage(GgmlType type, const LinearParts& p, int64_t cols, const float* x, int n_tokens, const float* norm_w, float norm_eps);
Stage gemv_swiglu_stage(GgmlType type, const uint8_t* w_gate, const uint8_t* w_up, size_t row_bytes, int64_t rows, int64_t cols, const float* x,
                        float* y, int n_tokens, const float* norm_w, float norm_eps);
Stage qkv_rope_store_stage(GgmlType weight_type, const LinearParts& qkv, int64_t cols, const float* x, const float* norm_w, float norm_eps,
                           const RopeStoreKvArgs& rs, GgmlType cache_type);
Stage attention_split_stage(const float* q, const void* k_cache, const void* v_cache, GgmlType cache_type, float* out, int n_tokens, int pos0,
                            int n_head, int n_head_kv, int head_dim, float scale, float* workspace, int* arrivals, int n_splits,
                            const int32_t* pos_dev, int max_keys);

// Runs one stage as its own kernel (PDL where on, as the launchers always have): launch_stage picks the launcher of its
// kind (linear.cu, qkv_rope_store.cu, attention.cu).
void launch_stage(const Stage& s, cudaStream_t stream);
void launch_gemv_stage(const Stage& s, cudaStream_t stream);
void launch_qkv_rope_store_stage(const Stage& s, cudaStream_t stream);
void launch_attention_split_stage(const Stage& s, cudaStream_t stream);

} // namespace winnow::cuda
