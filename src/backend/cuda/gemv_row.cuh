#pragma once
// One GEMV row's dot product by one warp, then the warp's butterfly sum. linear's GEMV, the fused head (head_top_k.cu)
// and the adaptive head's exact rows all call this, so their logits are the same bits and the fused head's ids are
// exactly linear + top_k's.
//
// How a lane walks the row decides how many bytes a warp has in flight, and batch-1 decode is bound by exactly that:
//  - F32, F16, BF16 with a 16-byte aligned row and input and a whole number of 16-byte chunks per row: each lane reads
//    16 bytes at a time (4 or 8 elements; chunks lane, lane + 32, ...), so a warp reads 512 contiguous bytes per step;
//  - Q4_1, Q8_0, Q4_0 with a 16-byte aligned input: each lane decodes whole 32-element blocks (blocks lane, lane + 32,
//    ...) from five 4-byte loads (Q4_1, 4-byte aligned rows), where the element-wise path spends a byte load per
//    element and two per scale;
//  - Q8_0 and Q4_0 (34- and 18-byte blocks, only 2-byte aligned) are staged: the warp copies 32 blocks at a time into
//    its slice of shared memory with coalesced 4-byte loads (consecutive lanes, consecutive words), then each lane
//    decodes its block from there with the same arithmetic. A lane reading its own block from global memory took 17
//    (Q8_0) or 9 2-byte loads, each warp-wide load touching every line of the 32 blocks: the H200 run of 2026-12-04
//    measured the Q8_0 head (49152 x 576) at 0.75 TB/s and the synthetic 128K x 4096 Q8_0 head at 0.8 TB/s, against
//    2.8-3.5 TB/s for the BF16 and F32 heads. The next chunk's words are loaded before this chunk is decoded;
//  - Q5_0, Q5_1, Q2_K ... Q6_K, IQ4_NL, IQ4_XS (llama.cpp's presets) with a 16-byte aligned input: each lane decodes whole units
//    (units lane, lane + 32, ...: a block of 32, a Q4_K / Q5_K pair of sub-blocks of 64, a Q2_K / Q3_K / Q6_K quarter of 32,
//    an IQ4_XS sub-block of 32) from
//    words as wide as the block allows (gemv_preset.cuh); Q5_0, IQ4_NL, Q3_K and Q6_K, 2-byte aligned, staged as Q8_0
//    and Q4_0 below (32 blocks, or 4 Q3_K / Q6_K super-blocks, a chunk);
//  - anything else (unaligned pointers, odd shapes): lanes stride the elements (lane, lane + 32, ...) via weight_at.
// Each path's fused multiply-adds run in a fixed order, so a row's result is deterministic; the paths differ from one
// another (and from the CPU) only in the order of the sum. The element values are weight_at's in every path.
#include <cstdint>

#include "backend/cuda/batched_loads.cuh"
#include "backend/cuda/gemv_block_logic.cuh"
#include "backend/cuda/gemv_preset.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/weight_access.cuh"

namespace winnow::cuda {

namespace gemv_detail {

__device__ __forceinline__ bool aligned(const void* p, unsigned bytes) { return (reinterpret_cast<uintptr_t>(p) & (bytes - 1)) == 0; }

// acc += w . x, the four products in order.
__device__ __forceinline__ float dot4(float4 w, float4 x, float acc) {
    acc = fmaf(w.x, x.x, acc);
    acc = fmaf(w.y, x.y, acc);
    acc = fmaf(w.z, x.z, acc);
    return fmaf(w.w, x.w, acc);
}

// acc += the 8 halves of w (as T: F16 or BF16) times x[0, 8), in order.
template <GgmlType T>
__device__ __forceinline__ float dot8(uint4 w, const float4* x, float acc) {
    const uint32_t words[4] = {w.x, w.y, w.z, w.w};
    const float4 x0 = x[0], x1 = x[1];
    const float xs[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const uint16_t h = gemv_logic::half_bits(words, i);
        const float v = T == GgmlType::F16 ? half_bits_to_float(h) : bf16_bits_to_float(h);
        acc = fmaf(v, xs[i], acc);
    }
    return acc;
}

// acc += the 32 elements of Q4_1 block b (20 bytes at blk: fp16 scale d, fp16 min m, 16 bytes of nibbles) times x[0, 32),
// in element order; each element q * d + m as weight_at computes it.
__device__ __forceinline__ float dot_q4_1_block(const uint32_t* __restrict__ blk, const float4* x, float acc) {
    const uint32_t dm = __ldg(blk);
    const float d = half_bits_to_float(static_cast<uint16_t>(dm & 0xffffu)), m = half_bits_to_float(static_cast<uint16_t>(dm >> 16));
    uint32_t qs[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) qs[i] = __ldg(blk + 1 + i);
    return dot_elements<32>(x, acc, [&](int j) { return __fadd_rn(__fmul_rn(static_cast<float>(gemv_logic::q4_value(qs, j)), d), m); });
}

// acc += the 32 elements of a Q8_0 block (34 bytes at blk: fp16 scale d, 32 int8) or a Q4_0 block (18 bytes: fp16 scale d,
// 16 bytes of nibbles, q - 8) times x[0, 32), in element order, read as 2-byte words (the blocks are only 2-byte
// aligned); each element as weight_at computes it. kGlobal: blk is in global memory (read-only loads), else in shared.
template <GgmlType T, bool kGlobal = true>
__device__ __forceinline__ float dot_q_block(const uint16_t* __restrict__ blk, const float4* x, float acc) {
    constexpr int kWords = T == GgmlType::Q8_0 ? 16 : 8;
    const float d = half_bits_to_float(unit_word<kGlobal>(blk));
    uint16_t qs[kWords];
#pragma unroll
    for (int i = 0; i < kWords; ++i) qs[i] = unit_word<kGlobal>(blk + 1 + i);
    return dot_elements<32>(x, acc, [&](int j) {
        const int q = T == GgmlType::Q8_0 ? gemv_logic::q8_value(qs, j) : gemv_logic::q4_value(qs, j) - 8;
        return __fmul_rn(static_cast<float>(q), d);
    });
}

// ---- the staged walk of a row of 2-byte aligned blocks: Q8_0, Q4_0, Q5_0, IQ4_NL, Q3_K, Q6_K (see the top of this file) ----
// A chunk is 32 units, one a lane: 32 blocks of Q8_0, Q4_0, Q5_0 or IQ4_NL (34, 18, 22, 18 bytes), or 4 super-blocks of
// Q3_K or Q6_K (110, 210 bytes, 8 quarters each: gemv_preset.cuh's units).
template <GgmlType T>
constexpr bool staged_type() {
    return T == GgmlType::Q8_0 || T == GgmlType::Q4_0 || T == GgmlType::Q5_0 || T == GgmlType::IQ4_NL || T == GgmlType::Q3_K || T == GgmlType::Q6_K;
}
template <GgmlType T>
constexpr int staged_group_bytes() { // a block or super-block
    return static_cast<int>(T == GgmlType::Q8_0     ? sizeof(BlockQ8_0)
                            : T == GgmlType::Q4_0   ? sizeof(BlockQ4_0)
                            : T == GgmlType::Q5_0   ? sizeof(BlockQ5_0)
                            : T == GgmlType::IQ4_NL ? sizeof(BlockIQ4_NL)
                            : T == GgmlType::Q3_K   ? sizeof(BlockQ3_K)
                                                    : sizeof(BlockQ6_K));
}
template <GgmlType T>
constexpr int staged_units_per_group() { return T == GgmlType::Q6_K || T == GgmlType::Q3_K ? 8 : 1; }
template <GgmlType T>
constexpr int staged_chunk_bytes() { return 32 / staged_units_per_group<T>() * staged_group_bytes<T>(); }
template <GgmlType T>
constexpr int staged_words_per_lane() { return ((2 + staged_chunk_bytes<T>() + 3) / 4 + 31) / 32; } // from a 2-byte offset: Q8_0 9, Q4_0 and IQ4_NL 5, Q5_0 6, Q6_K 7, Q3_K 4
constexpr int kStagedWords = 32 * staged_words_per_lane<GgmlType::Q8_0>(); // a warp's slice, in words
static_assert(staged_words_per_lane<GgmlType::Q4_0>() <= 9 && staged_words_per_lane<GgmlType::Q5_0>() <= 9 && staged_words_per_lane<GgmlType::Q6_K>() <= 9 &&
                  staged_words_per_lane<GgmlType::IQ4_NL>() <= 9 && staged_words_per_lane<GgmlType::Q3_K>() <= 9,
              "every staged chunk fits a slice");
// The slices a kernel's blocks hold: one per warp of a kStageThreads block by default (9 KB; kGemvStagingBytes, which
// kMaxStagedCols leaves room for beside a fused norm's input); head_top_k's 16-warp blocks ask for 16 (18 KB). A warp
// past its kernel's slices reads its blocks itself.
static_assert(kGemvStagedWarps * kStagedWords * 4 == kGemvStagingBytes);

// The block's staging slices (kWarps of kStagedWords words, static shared memory of every kernel that reads rows of a
// staged type through warp_row_dot): warp w's.
template <int kWarps>
__device__ __forceinline__ uint32_t* staged_slice(int warp) {
    __shared__ uint32_t words[kWarps * kStagedWords];
    return words + warp * kStagedWords;
}

// The lane's words of the copy of [src, src + len) (gemv_logic::staged_word_part): words lane, lane + 32, ..., all
// loaded before any is used, so a chunk is one memory round trip. Every byte read lies in the range.
template <int kPerLane>
struct StagedWords {
    uint32_t w[kPerLane];
};
template <int kPerLane>
__device__ __forceinline__ StagedWords<kPerLane> load_staged(const uint8_t* src, int len, int lane) {
    const int off = static_cast<int>(reinterpret_cast<uintptr_t>(src) & 3u);
    const uint32_t* base = reinterpret_cast<const uint32_t*>(src - off);
    StagedWords<kPerLane> s;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
        const int k = lane + 32 * i;
        const uint16_t* halves = reinterpret_cast<const uint16_t*>(base + k);
        switch (gemv_logic::staged_word_part(k, off, len)) {
        case gemv_logic::WordPart::whole: s.w[i] = __ldg(base + k); break;
        case gemv_logic::WordPart::low_half: s.w[i] = __ldg(halves); break;
        case gemv_logic::WordPart::high_half: s.w[i] = static_cast<uint32_t>(__ldg(halves + 1)) << 16; break;
        default: s.w[i] = 0u;
        }
    }
    return s;
}

template <int kPerLane>
__device__ __forceinline__ void store_staged(const StagedWords<kPerLane>& s, int off, int len, uint32_t* slice, int lane) {
    const int words = gemv_logic::staged_words(off, len);
#pragma unroll
    for (int i = 0; i < kPerLane; ++i)
        if (lane + 32 * i < words) slice[lane + 32 * i] = s.w[i];
}

// acc += unit `lane` of a chunk staged in shared memory (chunk: its first byte) times x4 (the unit's inputs).
template <GgmlType T>
__device__ __forceinline__ float staged_unit_dot(const uint8_t* chunk, int lane, const float4* x4, float acc) {
    if constexpr (T == GgmlType::Q8_0 || T == GgmlType::Q4_0)
        return dot_q_block<T, false>(reinterpret_cast<const uint16_t*>(chunk + lane * staged_group_bytes<T>()), x4, acc);
    else return dot_preset_unit<T, false>(chunk, lane, x4, acc);
}

// acc + the lane's partial sum of a row of a staged type on the vector path, a chunk at a time through the warp's slice:
// unit lane + 32 c of chunk c, in increasing c, as the direct walk sums them (the same bits). The whole warp calls it.
template <GgmlType T>
__device__ __forceinline__ float staged_row_partial(const uint8_t* row, const float4* x4, int64_t cols, int lane, uint32_t* slice, float acc) {
    constexpr int kGroupBytes = staged_group_bytes<T>(), kUnitsPerGroup = staged_units_per_group<T>(), kGroupsPerChunk = 32 / kUnitsPerGroup;
    constexpr int kGroupElements = 32 * kUnitsPerGroup, kPerLane = staged_words_per_lane<T>();
    const int groups = static_cast<int>(cols / kGroupElements);
    auto chunk_bytes = [&](int g0) { return min(kGroupsPerChunk, groups - g0) * kGroupBytes; };
    StagedWords<kPerLane> next = load_staged<kPerLane>(row, chunk_bytes(0), lane);
    for (int g0 = 0; g0 < groups; g0 += kGroupsPerChunk) {
        const uint8_t* src = row + static_cast<int64_t>(g0) * kGroupBytes;
        const int off = static_cast<int>(reinterpret_cast<uintptr_t>(src) & 3u), len = chunk_bytes(g0);
        __syncwarp(); // the slice's previous readers (the last chunk, or the warp's previous row) are done
        store_staged(next, off, len, slice, lane);
        __syncwarp();
        if (g0 + kGroupsPerChunk < groups) // in flight while this chunk is summed
            next = load_staged<kPerLane>(src + kGroupsPerChunk * kGroupBytes, chunk_bytes(g0 + kGroupsPerChunk), lane);
        if (lane < len / kGroupBytes * kUnitsPerGroup)
            acc = staged_unit_dot<T>(reinterpret_cast<const uint8_t*>(slice) + off, lane, x4 + 8 * (g0 * kUnitsPerGroup + lane), acc);
    }
    return acc;
}

} // namespace gemv_detail

namespace gemv_detail {

// Whether a row stored as T and input x take the vector path above (else lanes stride the elements).
template <GgmlType T>
__device__ __forceinline__ bool vector_path(const uint8_t* row, const float* x, int64_t cols) {
    if constexpr (T == GgmlType::F32) return aligned(row, 16) && aligned(x, 16) && cols % 4 == 0;
    else if constexpr (T == GgmlType::F16 || T == GgmlType::BF16) return aligned(row, 16) && aligned(x, 16) && cols % 8 == 0;
    else if constexpr (T == GgmlType::Q8_0 || T == GgmlType::Q4_0) return aligned(row, 2) && aligned(x, 16) && cols % 32 == 0;
    else if constexpr (T == GgmlType::Q4_1) return aligned(row, 4) && aligned(x, 16) && cols % 32 == 0;
    else if constexpr (is_preset_type(T)) return aligned(row, preset_row_alignment<T>()) && aligned(x, 16) && cols % preset_block_elements<T>() == 0;
    else return false;
}

// The lane's partial sums of N rows of Q8_0, Q4_0 or a preset type, each lane reading its units from global memory
// itself: units lane, lane + 32, ... in order (a Q8_0 / Q4_0 block, or gemv_preset.cuh's unit), the staged walk's
// order and bits.
template <GgmlType T, int N>
__device__ __forceinline__ void direct_unit_partials(const uint8_t* const (&rows)[N], const float4* x4, int64_t cols, int lane, float (&acc)[N]) {
    constexpr int kUnit = is_preset_type(T) ? preset_unit_elements<T>() : 32;
#pragma unroll 2
    for (int64_t u = lane; u < cols / kUnit; u += 32) {
#pragma unroll
        for (int k = 0; k < N; ++k) {
            if constexpr (is_preset_type(T)) acc[k] = dot_preset_unit<T>(rows[k], u, x4 + (kUnit / 4) * u, acc[k]);
            else acc[k] = dot_q_block<T>(reinterpret_cast<const uint16_t*>(rows[k]) + staged_group_bytes<T>() / 2 * u, x4 + 8 * u, acc[k]);
        }
    }
}

// Chunk i (V: float4 or uint4) of each of N rows.
template <class V, int N>
struct RowChunks {
    V v[N];
};
template <class V, int N>
__device__ __forceinline__ RowChunks<V, N> row_chunks(const uint8_t* const (&rows)[N], int64_t i) {
    RowChunks<V, N> c;
#pragma unroll
    for (int k = 0; k < N; ++k) c.v[k] = __ldg(reinterpret_cast<const V*>(rows[k]) + i);
    return c;
}

// The lane's partial sums of N rows (each on the vector path) in one walk: each step loads every row's chunk before
// any of them is summed, so N rows cost one memory round trip per step, not N; each row's sum is in the order, and so
// has the bits, of a walk of that row alone. The vector steps go 4 at a time (batched_strided), the block steps are
// unrolled by 2, so that a row's loads are issued several steps ahead of its sums: a 576-column BF16 row is 3 steps for
// some lanes, a 2,048-column one 8, each a round trip in a row without it. The order of the sums is unchanged.
template <GgmlType T, int N, int kWarps = kGemvStagedWarps>
__device__ __forceinline__ void lane_partials(const uint8_t* const (&rows)[N], const float* x, int64_t cols, int lane, float (&acc)[N]) {
    const float4* x4 = reinterpret_cast<const float4*>(x);
    if constexpr (T == GgmlType::F32) {
        batched_strided<4>(lane, 32, cols / 4, [&](int64_t i) { return row_chunks<float4, N>(rows, i); }, [&](int64_t i, const RowChunks<float4, N>& c) {
#pragma unroll
            for (int k = 0; k < N; ++k) acc[k] = dot4(c.v[k], x4[i], acc[k]);
        });
    } else if constexpr (T == GgmlType::F16 || T == GgmlType::BF16) {
        batched_strided<4>(lane, 32, cols / 8, [&](int64_t i) { return row_chunks<uint4, N>(rows, i); }, [&](int64_t i, const RowChunks<uint4, N>& c) {
#pragma unroll
            for (int k = 0; k < N; ++k) acc[k] = dot8<T>(c.v[k], x4 + 2 * i, acc[k]);
        });
    } else if constexpr (staged_type<T>() && N == 1) {
        const int warp = static_cast<int>(threadIdx.x / 32);
        if (warp < kWarps) acc[0] = staged_row_partial<T>(rows[0], x4, cols, lane, staged_slice<kWarps>(warp), acc[0]);
        else direct_unit_partials<T, N>(rows, x4, cols, lane, acc); // a warp past the slices reads its units itself
    } else if constexpr (T == GgmlType::Q8_0 || T == GgmlType::Q4_0 || is_preset_type(T)) {
        direct_unit_partials<T, N>(rows, x4, cols, lane, acc);
    } else if constexpr (T == GgmlType::Q4_1) {
#pragma unroll 2
        for (int64_t b = lane; b < cols / 32; b += 32) {
#pragma unroll
            for (int k = 0; k < N; ++k) acc[k] = dot_q4_1_block(reinterpret_cast<const uint32_t*>(rows[k]) + 5 * b, x4 + 8 * b, acc[k]);
        }
    }
}

} // namespace gemv_detail

// W.row . x for a row stored as T; the result in every lane. x may be in global or shared memory. x is not __restrict__:
// in the step program (step_program.h) the activations are written by earlier stages of the same kernel, and a const
// __restrict__ pointer lets the compiler read them through the non-coherent read-only path, which may return a line
// this SM cached before another SM rewrote it. The weights (rows) are never written, so they keep __ldg.
// kWarps: the warps per block that get a staging slice for Q8_0 / Q4_0 rows (gemv_detail::staged_slice).
template <GgmlType T, int kWarps = kGemvStagedWarps>
__device__ __forceinline__ float warp_row_dot(const uint8_t* __restrict__ row, const float* x, int64_t cols, int lane) {
    namespace g = gemv_detail;
    float acc[1] = {0.0f};
    if (g::vector_path<T>(row, x, cols)) {
        const uint8_t* const rows[1] = {row};
        g::lane_partials<T, 1, kWarps>(rows, x, cols, lane, acc);
        return warp_sum(acc[0]);
    }
    for (int64_t c = lane; c < cols; c += 32) acc[0] = fmaf(weight_at<T>(row, c), x[c], acc[0]);
    return warp_sum(acc[0]);
}

// Two rows' dot products with x, each with warp_row_dot's bits, in one walk where both take the vector path (a fused
// gate + up GEMV, a rotated pair's two rows): the second row's loads no longer wait for the first row's sum.
template <GgmlType T>
__device__ __forceinline__ float2 warp_row_dot2(const uint8_t* __restrict__ a, const uint8_t* __restrict__ b, const float* x, int64_t cols, int lane) {
    namespace g = gemv_detail;
    // Q8_0 and Q4_0 blocks come as 17 / 9 two-byte words per lane: two rows of them in flight took 96-110 registers
    // (two blocks a multiprocessor), so those rows keep their own walks.
    // The preset types' units too (gemv_preset.cuh): with two rows in flight, Q4_K and Q5_K took 125 and 168
    // (nvcc 13, sm_90a).
    constexpr bool kOwnWalks = T == GgmlType::Q8_0 || T == GgmlType::Q4_0 || is_preset_type(T);
    if (kOwnWalks || !g::vector_path<T>(a, x, cols) || !g::vector_path<T>(b, x, cols))
        return make_float2(warp_row_dot<T>(a, x, cols, lane), warp_row_dot<T>(b, x, cols, lane));
    const uint8_t* const rows[2] = {a, b};
    float acc[2] = {0.0f, 0.0f};
    g::lane_partials<T, 2>(rows, x, cols, lane, acc);
    return make_float2(warp_sum(acc[0]), warp_sum(acc[1]));
}

} // namespace winnow::cuda
