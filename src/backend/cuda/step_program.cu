// The step program's cooperative kernel and its recorder (step_program.h says why and how), and launch_stage, which
// runs one stage as its own kernel.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>

#include "backend/cuda/attention_split_body.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/grid_sync.cuh"
#include "backend/cuda/linear_bodies.cuh"
#include "backend/cuda/qkv_rope_store_body.cuh"
#include "backend/cuda/step_program.h"
#include "winnow/error.h"

namespace winnow::cuda {

namespace {

// Runs body(block) for each virtual block of the stage's grid that falls to this block (block-strided, x fastest, as
// the hardware numbers a grid), with a barrier after each: the next virtual block reuses the shared memory.
template <class Body>
__device__ __forceinline__ void for_each_virtual_block(const Stage& s, Body body) {
    const uint64_t gx = s.grid.x, gxy = gx * s.grid.y, total = gxy * s.grid.z;
    for (uint64_t v = blockIdx.x; v < total; v += gridDim.x) {
        const uint3 block{static_cast<unsigned>(v % gx), static_cast<unsigned>(v % gxy / gx), static_cast<unsigned>(v / gxy)};
        body(block);
        __syncthreads();
    }
}

template <GgmlType T, GgmlType C>
__device__ void run_stage(const Stage& s) {
    switch (s.kind) {
    case StageKind::gemv: for_each_virtual_block(s, [&](uint3 b) { gemv_body<T>(s.args.gemv, b); }); break;
    case StageKind::gemv_parts:
        if (s.args.parts.norm_w) for_each_virtual_block(s, [&](uint3 b) { gemv_parts_body<T, true>(s.args.parts, b); });
        else for_each_virtual_block(s, [&](uint3 b) { gemv_parts_body<T, false>(s.args.parts, b); });
        break;
    case StageKind::gemv_swiglu:
        if (s.args.swiglu.norm_w) for_each_virtual_block(s, [&](uint3 b) { gemv_swiglu_body<T, true>(s.args.swiglu, b); });
        else for_each_virtual_block(s, [&](uint3 b) { gemv_swiglu_body<T, false>(s.args.swiglu, b); });
        break;
    case StageKind::qkv_rope_store: for_each_virtual_block(s, [&](uint3 b) { qkv_rope_store_body<T, C>(s.args.qkv, b); }); break;
    case StageKind::attention_split: for_each_virtual_block(s, [&](uint3 b) { attention_split_body<C>(s.args.attention, b, s.grid); }); break;
    }
}

// Asks L2 for the weight rows this block's first virtual block of stage s will read (the kernels' pdl_wait_prefetching,
// done before the grid barrier that precedes the stage, so that the rows' DRAM latency overlaps the barrier's wait).
__device__ void prefetch_stage(const Stage& s) {
    if (blockIdx.x >= s.blocks()) return;
    const uint3 b{static_cast<unsigned>(blockIdx.x % s.grid.x), 0, 0}; // the rows depend on x only
    switch (s.kind) {
    case StageKind::gemv: prefetch_weights_l2(weight_row(s.args.gemv.w, s.args.gemv.row_bytes, s.args.gemv.rows, gemv_warp_row(b))); break;
    case StageKind::gemv_parts: prefetch_weights_l2(parts_weight_row(s.args.parts.p, gemv_warp_row(b))); break;
    case StageKind::gemv_swiglu: {
        const SwigluArgs& a = s.args.swiglu;
        prefetch_weights_l2(weight_row(a.w_gate, a.row_bytes, a.rows, gemv_warp_row(b)), weight_row(a.w_up, a.row_bytes, a.rows, gemv_warp_row(b)));
        break;
    }
    case StageKind::qkv_rope_store: {
        const QkvArgs& a = s.args.qkv;
        const ItemRows rows = item_weight_rows(a.p, a.shape, a.a.head_dim, a.a.adjacent, qkv_warp_item(b), a.items);
        prefetch_weights_l2(rows.first, rows.second);
        break;
    }
    case StageKind::attention_split: break;
    }
}

// Every thread of every block runs every stage in order, with a grid barrier between two stages: what a stage writes,
// the next reads (grid_sync orders memory across the grid, as a kernel boundary does). The stages are read from device
// memory that nothing writes while the kernel runs.
template <GgmlType T, GgmlType C>
__global__ void __launch_bounds__(kStageThreads) step_program_kernel(const Stage* __restrict__ stages, int count, bool prefetch) {
    for (int i = 0; i < count; ++i) {
        run_stage<T, C>(stages[i]);
        if (i + 1 == count) break;
        if (prefetch) prefetch_stage(stages[i + 1]);
        grid_sync();
    }
}

template <class F>
void dispatch_program_types(GgmlType weight, GgmlType cache, F&& f) {
    dispatch_core_weight_type(weight, [&]<GgmlType T>() { dispatch_act_type(cache, [&]<GgmlType C>() { f(step_program_kernel<T, C>); }); });
}

std::atomic<int64_t> g_launches{0};

// WINNOW_CUDA_MEGAKERNEL_BLOCKS: a grid size to try instead of the largest resident one (0 or unset: none).
int blocks_from_environment() {
    const char* e = std::getenv("WINNOW_CUDA_MEGAKERNEL_BLOCKS");
    return e ? std::max(0, std::atoi(e)) : 0;
}

} // namespace

int step_program_blocks(GgmlType weight, GgmlType cache, uint32_t shared, uint64_t max_blocks) {
    int limit = 0;
    dispatch_program_types(weight, cache, [&](auto kernel) { limit = cooperative_grid_limit(kernel, kStageThreads, shared); });
    if (limit <= 0) return 0;
    static const int wanted = blocks_from_environment();
    const uint64_t blocks = std::min<uint64_t>({static_cast<uint64_t>(limit), std::max<uint64_t>(max_blocks, 1), wanted > 0 ? static_cast<uint64_t>(wanted) : UINT64_MAX});
    return static_cast<int>(blocks);
}

int64_t step_program_launches() { return g_launches.load(); }

bool has_program_kernel(GgmlType weight) { return is_core_type(weight); }

void launch_step_program(const Stage* stages, int count, GgmlType weight, GgmlType cache, uint32_t shared, int blocks, cudaStream_t stream) {
    ++g_launches;
    const bool prefetch = weight_prefetch_wanted(true, std::getenv("WINNOW_CUDA_PREFETCH"));
    dispatch_program_types(weight, cache, [&](auto kernel) {
        launch_cooperative_recordable(kernel, dim3(static_cast<unsigned>(blocks)), dim3(kStageThreads), shared, stream, stages, count, prefetch);
    });
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess)
        throw Error(ErrorKind::io, "the step program's cooperative launch of " + std::to_string(blocks) + " blocks failed: " + cudaGetErrorString(err));
}

void launch_stage(const Stage& s, cudaStream_t stream) {
    switch (s.kind) {
    case StageKind::gemv:
    case StageKind::gemv_parts:
    case StageKind::gemv_swiglu: launch_gemv_stage(s, stream); return;
    case StageKind::qkv_rope_store: launch_qkv_rope_store_stage(s, stream); return;
    case StageKind::attention_split: launch_attention_split_stage(s, stream); return;
    }
}

bool StepRecorder::add(const Stage& s, cudaStream_t stream) {
    if (stages() >= kStepProgramCapacity) return false;
    if (s.uses_weight() && !has_program_kernel(s.weight)) return false;
    const bool weight_differs = s.uses_weight() && has_weight_ && s.weight != weight_;
    const bool cache_differs = s.uses_cache() && has_cache_ && s.cache != cache_;
    if (weight_differs || cache_differs) flush(stream);
    if (s.uses_weight()) has_weight_ = true, weight_ = s.weight;
    if (s.uses_cache()) has_cache_ = true, cache_ = s.cache;
    stages_.push_back(s);
    return true;
}

void StepRecorder::flush(cudaStream_t stream) {
    const int first = run_first_, count = stages() - run_first_;
    run_first_ = stages();
    const GgmlType weight = weight_, cache = cache_;
    has_weight_ = has_cache_ = false;
    weight_ = cache_ = GgmlType::F32;
    if (count == 0) return;
    if (count == 1) return launch_stage(stages_[first], stream);
    uint32_t shared = 0;
    uint64_t max_blocks = 0;
    for (int i = first; i < first + count; ++i) shared = std::max(shared, stages_[i].shared), max_blocks = std::max(max_blocks, stages_[i].blocks());
    const int blocks = step_program_blocks(weight, cache, shared, max_blocks);
    if (blocks == 0) { // no cooperative launch on this device: the stages as kernels, as without the program
        for (int i = first; i < first + count; ++i) launch_stage(stages_[i], stream);
        return;
    }
    launch_step_program(program_ + first, count, weight, cache, shared, blocks, stream);
}

void StepRecorder::upload(cudaStream_t stream) const {
    if (stages_.empty()) return;
    // (the backend's stream does not wait for the legacy default stream, so not cudaMemcpy: the buffer was zeroed in
    // this stream, and the replays run in it)
    WINNOW_CUDA_CHECK(cudaMemcpyAsync(program_, stages_.data(), stages_.size() * sizeof(Stage), cudaMemcpyHostToDevice, stream));
    WINNOW_CUDA_CHECK(cudaStreamSynchronize(stream)); // the host copy goes with this recorder
}

} // namespace winnow::cuda
