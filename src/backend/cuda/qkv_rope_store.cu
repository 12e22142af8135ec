// Backend::rms_norm_qkv_rope_store_kv on the device: a LLaMA layer's input RMSNorm, q/k/v projections, RoPE and k/v
// cache writes in one decode launch, where rms_norm_linear_parts + rope_store_kv take two. Each block stages the
// norm (gemv_input.cuh, rms_norm_kernel's bits); each warp computes one item (qkv_rope_store_logic.cuh): one output
// row, or the two rows of a rotated pair, whose rotation (rope_pair.cuh) needs both. The dot products and their
// epilogue are gemv_parts_kernel's and the rotation and cache conversion rope_store_kv_kernel's, so the op has the bits
// of the two launches it replaces (the op harness holds it to them).
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/qkv_rope_store_body.cuh"
#include "backend/cuda/stage.h"

namespace winnow::cuda {

namespace {

template <GgmlType T, GgmlType C>
__global__ void qkv_rope_store_kernel(const QkvArgs args, bool prefetch) {
    pdl_wait_prefetching(prefetch, item_weight_rows(args.p, args.shape, args.a.head_dim, args.a.adjacent, qkv_warp_item(blockIdx), args.items));
    pdl_launch_dependents();
    qkv_rope_store_body<T, C>(args, blockIdx);
}

} // namespace

Stage qkv_rope_store_stage(GgmlType weight_type, const LinearParts& qkv, int64_t cols, const float* x, const float* norm_w, float norm_eps,
                           const RopeStoreKvArgs& rs, GgmlType cache_type) {
    const RopeStoreKvShape shape{rs.n_head, rs.n_head_kv, rs.head_dim, rs.rope_dim / 2};
    const int items = qkv_rope_items_per_row(shape);
    Stage s;
    s.kind = StageKind::qkv_rope_store;
    s.weight = weight_type;
    s.cache = cache_type;
    s.grid = uint3{static_cast<unsigned>((items + kQkvWarpsPerBlock - 1) / kQkvWarpsPerBlock), static_cast<unsigned>(rs.rows), 1};
    s.shared = static_cast<uint32_t>(cols * sizeof(float));
    s.args.qkv = QkvArgs{qkv, cols, x, norm_w, norm_eps, rs, shape, items};
    return s;
}

void launch_qkv_rope_store_stage(const Stage& s, cudaStream_t stream) {
    const dim3 grid(s.grid.x, s.grid.y, s.grid.z);
    dispatch_weight_type(s.weight, [&]<GgmlType T>() {
        dispatch_act_type(s.cache, [&]<GgmlType C>() {
            launch(qkv_rope_store_kernel<T, C>, grid, kStageThreads, s.shared, stream, s.args.qkv, weight_prefetch_enabled());
        });
    });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
