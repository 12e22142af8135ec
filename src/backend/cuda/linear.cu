// Batch-1 GEMV on the stored weight formats, decoded in registers: the kernels of linear_bodies.cuh, each its own
// launch. The twin is CpuBackend::linear (f32 mode); the fused variants' twins are the unfused op sequences (Backend's
// defaults).
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/linear_bodies.cuh"
#include "backend/cuda/stage.h"

namespace winnow::cuda {

namespace {

template <GgmlType T>
__global__ void gemv_kernel(const GemvArgs a, bool prefetch) {
    pdl_wait_prefetching(prefetch, weight_row(a.w, a.row_bytes, a.rows, gemv_warp_row(blockIdx)));
    pdl_launch_dependents();
    gemv_body<T>(a, blockIdx);
}

template <GgmlType T, bool kNorm>
__global__ void gemv_parts_kernel(const PartsArgs a, bool prefetch) {
    pdl_wait_prefetching(prefetch, parts_weight_row(a.p, gemv_warp_row(blockIdx)));
    pdl_launch_dependents();
    gemv_parts_body<T, kNorm>(a, blockIdx);
}

template <GgmlType T, bool kNorm>
__global__ void gemv_swiglu_kernel(const SwigluArgs a, bool prefetch) {
    pdl_wait_prefetching(prefetch, weight_row(a.w_gate, a.row_bytes, a.rows, gemv_warp_row(blockIdx)),
                         weight_row(a.w_up, a.row_bytes, a.rows, gemv_warp_row(blockIdx)));
    pdl_launch_dependents();
    gemv_swiglu_body<T, kNorm>(a, blockIdx);
}

uint3 gemv_grid(int64_t rows, int n_tokens) {
    return uint3{static_cast<unsigned>((rows + kGemvWarpsPerBlock - 1) / kGemvWarpsPerBlock), static_cast<unsigned>(n_tokens), 1};
}

} // namespace

Stage gemv_stage(GgmlType type, const uint8_t* w, size_t row_bytes, int64_t rows, int64_t cols, const float* bias, const float* x, float* y,
                 int n_tokens, bool accumulate) {
    Stage s;
    s.kind = StageKind::gemv;
    s.weight = type;
    s.grid = gemv_grid(rows, n_tokens);
    s.args.gemv = GemvArgs{w, row_bytes, rows, cols, bias, x, y, accumulate};
    return s;
}

Stage gemv_parts_stage(GgmlType type, const LinearParts& p, int64_t cols, const float* x, int n_tokens, const float* norm_w, float norm_eps) {
    int64_t rows = 0;
    for (int i = 0; i < p.count; ++i) rows += p.rows[i];
    Stage s;
    s.kind = StageKind::gemv_parts;
    s.weight = type;
    s.grid = gemv_grid(rows, n_tokens);
    s.shared = norm_w ? static_cast<uint32_t>(cols * sizeof(float)) : 0;
    s.args.parts = PartsArgs{p, cols, x, norm_w, norm_w ? norm_eps : 0.0f};
    return s;
}

Stage gemv_swiglu_stage(GgmlType type, const uint8_t* w_gate, const uint8_t* w_up, size_t row_bytes, int64_t rows, int64_t cols, const float* x,
                        float* y, int n_tokens, const float* norm_w, float norm_eps) {
    Stage s;
    s.kind = StageKind::gemv_swiglu;
    s.weight = type;
    s.grid = gemv_grid(rows, n_tokens);
    s.shared = norm_w ? static_cast<uint32_t>(cols * sizeof(float)) : 0;
    s.args.swiglu = SwigluArgs{w_gate, w_up, row_bytes, rows, cols, x, y, norm_w, norm_w ? norm_eps : 0.0f};
    return s;
}

void launch_gemv_stage(const Stage& s, cudaStream_t stream) {
    const dim3 grid(s.grid.x, s.grid.y, s.grid.z);
    const bool prefetch = weight_prefetch_enabled();
    dispatch_weight_type(s.weight, [&]<GgmlType T>() {
        switch (s.kind) {
        case StageKind::gemv: launch(gemv_kernel<T>, grid, kStageThreads, 0, stream, s.args.gemv, prefetch); break;
        case StageKind::gemv_parts:
            if (s.args.parts.norm_w) launch(gemv_parts_kernel<T, true>, grid, kStageThreads, s.shared, stream, s.args.parts, prefetch);
            else launch(gemv_parts_kernel<T, false>, grid, kStageThreads, 0, stream, s.args.parts, prefetch);
            break;
        case StageKind::gemv_swiglu:
            if (s.args.swiglu.norm_w) launch(gemv_swiglu_kernel<T, true>, grid, kStageThreads, s.shared, stream, s.args.swiglu, prefetch);
            else launch(gemv_swiglu_kernel<T, false>, grid, kStageThreads, 0, stream, s.args.swiglu, prefetch);
            break;
        default: break;
        }
    });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
