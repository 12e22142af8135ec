#pragma once
// A thread's strided loop with its loads made ahead of their uses: the GEMV rows (gemv_row.cuh), attention's value sums
// (attention_parts.cuh) and the sample op's passes over the logits (sample_chain.cuh, whose host twin compiles this
// without CUDA).
//
// On a GPU a plain loop `for (i = first; i < n; i += stride) use(i, load(i))` makes one memory round trip per step
// whenever the load cannot move above the previous step's use: a store the compiler cannot prove apart from the next
// load, a compare or sum it will not run ahead of, or an unrolled loop's remainder. The H200's first run (2026-12-04)
// found kernels of a few kilobytes taking 4-9 us that way. Here each batch of kBatch steps makes all its loads
// (predicated: none past n) before its first use, so n steps cost ceil(n / (stride * kBatch)) round trips; the uses
// still run in order of i, so every sum keeps its order and its bits.
#include <cstdint>

#ifdef __CUDACC__
#define WINNOW_BATCHED_FN __device__ __forceinline__
#define WINNOW_BATCHED_UNROLL _Pragma("unroll")
#else
#define WINNOW_BATCHED_FN inline
#define WINNOW_BATCHED_UNROLL
#endif

namespace winnow::cuda {

// use(i, load(i)) for i = first, first + stride, ... < n, in that order, kBatch loads ahead of their uses.
template <int kBatch, class Load, class Use>
WINNOW_BATCHED_FN void batched_strided(int64_t first, int64_t stride, int64_t n, Load load, Use use) {
    using Value = decltype(load(first));
    for (int64_t i0 = first; i0 < n; i0 += kBatch * stride) {
        Value v[kBatch];
        WINNOW_BATCHED_UNROLL
        for (int k = 0; k < kBatch; ++k) {
            const int64_t i = i0 + k * stride;
            v[k] = i < n ? load(i) : Value{};
        }
        WINNOW_BATCHED_UNROLL
        for (int k = 0; k < kBatch; ++k) {
            const int64_t i = i0 + k * stride;
            if (i < n) use(i, v[k]);
        }
    }
}

} // namespace winnow::cuda

#undef WINNOW_BATCHED_FN
#undef WINNOW_BATCHED_UNROLL
