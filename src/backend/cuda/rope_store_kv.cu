// Backend::rope_store_kv on the device: a layer's rope(q), rope(k) and the k and v cache writes of a decode step in one
// launch instead of four (the launches dominate a batch-1 step). Bit for bit the four kernels it replaces: the rotation
// is rope_pair.cuh's, which rope_kernel calls too, and the cache elements are converted by store_act, which the
// copy_rows kernels use.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/rope_pair.cuh"
#include "backend/cuda/rope_store_kv_logic.cuh"
#include "backend/cuda/rope_store_kv_target.cuh"
#include "backend/cuda/weight_access.cuh"

namespace winnow::cuda {

namespace {

constexpr int kThreads = 256;

// One thread per work item (rope_store_kv_logic.cuh: q's pairs, k's pairs, k's unrotated dims, v's dims of each row).
template <GgmlType T>
__global__ void rope_store_kv_kernel(RopeStoreKvArgs a, RopeStoreKvShape shape, int64_t n_items) {
    pdl_wait();
    pdl_launch_dependents();
    const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= n_items) return;
    const RopeStoreKvItem it = rope_store_kv_item(shape, idx);
    const int hd = a.head_dim;
    // rope_kernel's position of the row, and copy_rows(_at)'s destination (a host row was checked before the launch)
    const auto [pos, cache_at, kv_at] = kv_row_target(a, it.row, it.head);
    switch (it.kind) {
    case RopeStoreKvKind::q_pair: {
        float* xh = a.q + (it.row * a.n_head + it.head) * hd;
        const RotatedPair r = rope_rotated_pair(xh, it.index, shape.half, a.rope_dim, pos, a.base, a.adjacent, a.freq_factors);
        xh[r.a] = r.xa;
        xh[r.b] = r.xb;
        return;
    }
    case RopeStoreKvKind::k_pair: {
        float* kh = a.k + kv_at;
        const RotatedPair r = rope_rotated_pair(kh, it.index, shape.half, a.rope_dim, pos, a.base, a.adjacent, a.freq_factors);
        kh[r.a] = r.xa;
        kh[r.b] = r.xb;
        store_act<T>(a.k_cache, cache_at + r.a, r.xa);
        store_act<T>(a.k_cache, cache_at + r.b, r.xb);
        return;
    }
    case RopeStoreKvKind::k_dim:
        store_act<T>(a.k_cache, cache_at + it.index, a.k[kv_at + it.index]);
        return;
    case RopeStoreKvKind::v_dim:
        store_act<T>(a.v_cache, cache_at + it.index, a.v[kv_at + it.index]);
        return;
    }
}

} // namespace

void launch_rope_store_kv(const RopeStoreKvArgs& a, GgmlType cache_type, cudaStream_t s) {
    const RopeStoreKvShape shape{a.n_head, a.n_head_kv, a.head_dim, a.rope_dim / 2};
    const int64_t n_items = a.rows * rope_store_kv_items_per_row(shape);
    if (n_items == 0) return;
    dispatch_act_type(cache_type, [&]<GgmlType T>() {
        launch(rope_store_kv_kernel<T>, static_cast<unsigned>((n_items + kThreads - 1) / kThreads), kThreads, 0, s, a, shape, n_items);
    });
    WINNOW_CUDA_CHECK(cudaGetLastError());
}

} // namespace winnow::cuda
