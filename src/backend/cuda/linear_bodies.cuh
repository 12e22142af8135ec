#pragma once
// The batch-1 GEMV kernels' bodies (linear.cu runs each as a kernel, step_program.cu as a stage of the step program):
// one warp per output row (16-byte or whole-block loads per lane where aligned), a shuffle reduction (gemv_row.cuh,
// shared with the fused head). `block` is the block's index in the launch's grid (blockIdx in a kernel of its own); a
// block has kStageThreads threads, kWarpsPerBlock rows.
#include "backend/cuda/gemv_input.cuh"
#include "backend/cuda/gemv_row.cuh"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/stage.h"

namespace winnow::cuda {
namespace {

constexpr int kGemvWarpsPerBlock = kStageThreads / 32;

// The output row of this thread's warp in block `block`.
__device__ __forceinline__ int64_t gemv_warp_row(uint3 block) { return static_cast<int64_t>(block.x) * kGemvWarpsPerBlock + threadIdx.x / 32; }

// Row r's bytes of a weight matrix, none past its rows: what the prefetches ask L2 for.
__device__ __forceinline__ WeightBytes weight_row(const uint8_t* w, size_t row_bytes, int64_t rows, int64_t r) {
    return r < rows ? WeightBytes{w + static_cast<size_t>(r) * row_bytes, row_bytes} : WeightBytes{};
}

// Row r (of the parts' rows laid end to end) of the part it falls in.
__device__ __forceinline__ WeightBytes parts_weight_row(const LinearParts& p, int64_t r) {
    const int i = linear_part_of(p, r);
    if (i >= p.count) return {};
    const LinearPartView part = linear_part(p, i);
    return {part.w + static_cast<size_t>(r) * part.row_bytes, part.row_bytes};
}

template <GgmlType T>
__device__ __forceinline__ void gemv_body(const GemvArgs& a, uint3 block) {
    const int64_t r = gemv_warp_row(block);
    const int lane = threadIdx.x % 32;
    const int t = block.y;
    if (r >= a.rows) return;
    const uint8_t* row = a.w + static_cast<size_t>(r) * a.row_bytes;
    const float* xt = a.x + static_cast<size_t>(t) * a.cols;
    const float acc = warp_row_dot<T>(row, xt, a.cols, lane);
    if (lane == 0) {
        const float v = acc + (a.bias ? a.bias[r] : 0.0f);
        float* out = a.y + static_cast<size_t>(t) * a.rows + r;
        *out = a.accumulate ? *out + v : v; // accumulate: linear then add's bits, without the add's launch
    }
}

// Up to three GEMVs of one input: the rows of every part in a row, each warp one row of one part, with gemv_body's
// epilogue, so each part gets gemv_body's bits. kNorm: of the input's RMSNorm. Every thread must call it (it may
// synchronise the block).
template <GgmlType T, bool kNorm>
__device__ __forceinline__ void gemv_parts_body(const PartsArgs& a, uint3 block) {
    int64_t r = gemv_warp_row(block); // becomes the row within its part
    const int lane = threadIdx.x % 32;
    const int t = block.y;
    const float* xt = gemv_input<kNorm>(a.x, a.cols, t, a.norm_w, a.eps);
    const int i = linear_part_of(a.p, r);
    if (i >= a.p.count) return;
    const LinearPartView part = linear_part(a.p, i);
    const float acc = warp_row_dot<T>(part.w + static_cast<size_t>(r) * part.row_bytes, xt, a.cols, lane);
    if (lane == 0) part.y[static_cast<size_t>(t) * part.rows + r] = acc + (part.bias ? part.bias[r] : 0.0f);
}

// y[t][r] = silu(g) * u for g, u = W_gate.row(r) . x[t], W_up.row(r) . x[t]: one warp both rows, in one walk
// (warp_row_dot2). Each of g and u gets gemv_body's epilogue without a bias (acc + 0.0f: -0 becomes +0 there too) and
// the product swiglu_kernel's expression, so the bits of gemv, gemv, swiglu. kNorm: of the input's RMSNorm. Every
// thread must call it.
template <GgmlType T, bool kNorm>
__device__ __forceinline__ void gemv_swiglu_body(const SwigluArgs& a, uint3 block) {
    const int64_t r = gemv_warp_row(block);
    const int lane = threadIdx.x % 32;
    const int t = block.y;
    const float* xt = gemv_input<kNorm>(a.x, a.cols, t, a.norm_w, a.eps);
    if (r >= a.rows) return;
    const float2 gu = warp_row_dot2<T>(a.w_gate + static_cast<size_t>(r) * a.row_bytes, a.w_up + static_cast<size_t>(r) * a.row_bytes, xt, a.cols, lane);
    const float g = gu.x + 0.0f, u = gu.y + 0.0f;
    if (lane == 0) a.y[static_cast<size_t>(t) * a.rows + r] = g / (1.0f + expf(-g)) * u;
}

} // namespace
} // namespace winnow::cuda
