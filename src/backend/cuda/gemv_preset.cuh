#pragma once
// The GEMV vector path's units for the preset GGUF types (Q5_0, Q5_1, Q2_K ... Q6_K, IQ4_NL, IQ4_XS: llama.cpp's presets): a lane
// loads one unit's bytes in words as wide as the block's alignment allows, then sums its elements in element order,
// each element's value exactly as weight_at (and the CPU's dequantize_row) computes it. A unit is a Q5_0 / Q5_1 block
// or IQ4_NL block (32 elements), a pair of Q4_K / Q5_K sub-blocks (64 elements: a lane reads the super-block's 16-byte header and 32
// bytes of nibbles), or a quarter of a Q6_K half (32 elements: 32 bytes of low bits, 32 of high bits, two scales), or of a
// Q2_K / Q3_K half (32 elements: the half's 32 bytes of 2-bit fields, Q3_K's 32 hmask bytes, two scales), or an IQ4_XS
// sub-block (32 elements: the super-block's 8-byte header and the sub-block's 16 quant bytes, in 4-byte words).
// The bit arithmetic is preset_block_logic.cuh's, checked on the host against the stored formats.
//
// Q5_0, Q6_K, Q3_K and IQ4_NL, whose blocks are only 2-byte aligned, are staged through shared memory as Q8_0 and Q4_0
// are (gemv_row.cuh: the H200 measured those types' 2-byte loads at a quarter of the other types' bandwidth); a lane
// then reads its unit from the warp's slice with the same arithmetic. Written without a GPU to measure on (Q5_0 and
// Q6_K 2026-12-06, Q3_K and IQ4_NL 2026-12-07).
#include <cstdint>

#include "backend/cuda/preset_block_logic.cuh"
#include "backend/cuda/weight_access.cuh"
#include "io/ggml_type.h"

namespace winnow::cuda::gemv_detail {

// Elements a lane's unit holds, and the byte alignment of a row whose units take whole-word loads.
template <GgmlType T>
constexpr int preset_unit_elements() { return T == GgmlType::Q4_K || T == GgmlType::Q5_K ? 64 : 32; }
template <GgmlType T>
constexpr unsigned preset_row_alignment() {
    return T == GgmlType::Q4_K || T == GgmlType::Q5_K ? 16 : T == GgmlType::Q5_1 || T == GgmlType::Q2_K || T == GgmlType::IQ4_XS ? 4 : 2;
}
template <GgmlType T>
constexpr int preset_block_elements() { return T == GgmlType::Q5_0 || T == GgmlType::Q5_1 || T == GgmlType::IQ4_NL ? kQuantBlock : kQuantBlockK; }

// acc += element(j) * x[j] for j in [0, kN), in order (x 16-byte aligned): every quantized unit's sum, this file's and
// gemv_row.cuh's Q4_1 / Q8_0 / Q4_0 blocks'.
template <int kN, class Element>
__device__ __forceinline__ float dot_elements(const float4* x, float acc, Element element) {
#pragma unroll
    for (int j4 = 0; j4 < kN / 4; ++j4) {
        const float4 xv = x[j4];
        const float xs[4] = {xv.x, xv.y, xv.z, xv.w};
#pragma unroll
        for (int e = 0; e < 4; ++e) acc = fmaf(element(4 * j4 + e), xs[e], acc);
    }
    return acc;
}

template <int kWords>
__device__ __forceinline__ void load_u32s(const uint4* src, uint32_t (&w)[kWords]) {
#pragma unroll
    for (int i = 0; i < kWords / 4; ++i) {
        const uint4 v = __ldg(src + i);
        w[4 * i] = v.x, w[4 * i + 1] = v.y, w[4 * i + 2] = v.z, w[4 * i + 3] = v.w;
    }
}

// A 2-byte word of a unit (also a Q8_0 / Q4_0 block, gemv_row.cuh) in global memory (read-only loads) or in a warp's
// staging slice (shared memory).
template <bool kGlobal>
__device__ __forceinline__ uint16_t unit_word(const uint16_t* p) {
    if constexpr (kGlobal) return __ldg(p);
    else return *p;
}

// acc += unit u of a row stored as T (a preset type) times x4[0, unit elements / 4), in element order. kGlobal false:
// `row` is a chunk of the row staged in shared memory (the 2-byte aligned types only: gemv_row.cuh's staged walk), u
// relative to it.
template <GgmlType T, bool kGlobal = true>
__device__ __forceinline__ float dot_preset_unit(const uint8_t* __restrict__ row, int64_t u, const float4* x4, float acc) {
    namespace rl = preset_logic;
    static_assert(kGlobal || T == GgmlType::Q5_0 || T == GgmlType::Q6_K || T == GgmlType::Q3_K || T == GgmlType::IQ4_NL,
                  "only the 2-byte aligned types are staged");
    if constexpr (T == GgmlType::Q5_0) { // 22-byte blocks, 2-byte aligned: d, qh (2 words), 16 quant bytes (8 words)
        const uint16_t* blk = reinterpret_cast<const uint16_t*>(row + u * rl::kQ5_0Bytes);
        const float d = half_bits_to_float(unit_word<kGlobal>(blk));
        const uint32_t qh = static_cast<uint32_t>(unit_word<kGlobal>(blk + 1)) | static_cast<uint32_t>(unit_word<kGlobal>(blk + 2)) << 16;
        uint16_t qs[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) qs[i] = unit_word<kGlobal>(blk + 3 + i);
        return dot_elements<32>(x4, acc, [&](int j) { return __fmul_rn(static_cast<float>(rl::q5_value(qs, qh, j) - 16), d); });
    } else if constexpr (T == GgmlType::Q5_1) { // 24-byte blocks, 4-byte aligned: d | m << 16, qh, 16 quant bytes
        const uint32_t* blk = reinterpret_cast<const uint32_t*>(row + u * rl::kQ5_1Bytes);
        const uint32_t dm = __ldg(blk), qh = __ldg(blk + 1);
        const float d = half_bits_to_float(static_cast<uint16_t>(dm & 0xffffu)), m = half_bits_to_float(static_cast<uint16_t>(dm >> 16));
        uint32_t qs[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) qs[i] = __ldg(blk + 2 + i);
        return dot_elements<32>(x4, acc, [&](int j) { return __fadd_rn(__fmul_rn(static_cast<float>(rl::q5_value(qs, qh, j)), d), m); });
    } else if constexpr (T == GgmlType::Q4_K || T == GgmlType::Q5_K) { // 16-byte aligned super-blocks, 4 pairs each
        constexpr bool kFive = T == GgmlType::Q5_K;
        const int p = static_cast<int>(u % 4);
        const uint8_t* sb = row + (u / 4) * (kFive ? rl::kQ5_KBytes : rl::kQ4_KBytes);
        const uint4 head = __ldg(reinterpret_cast<const uint4*>(sb)); // d | dmin << 16, then the 12 scale bytes
        const uint32_t scales[3] = {head.y, head.z, head.w};
        const float d = half_bits_to_float(static_cast<uint16_t>(head.x & 0xffffu)), dmin = half_bits_to_float(static_cast<uint16_t>(head.x >> 16));
        const rl::ScaleMin s0 = rl::k_scale_min(scales, 2 * p), s1 = rl::k_scale_min(scales, 2 * p + 1);
        const float d0 = __fmul_rn(d, static_cast<float>(s0.scale)), m0 = __fmul_rn(dmin, static_cast<float>(s0.min));
        const float d1 = __fmul_rn(d, static_cast<float>(s1.scale)), m1 = __fmul_rn(dmin, static_cast<float>(s1.min));
        uint32_t qs[8];
        load_u32s(reinterpret_cast<const uint4*>(sb + (kFive ? 48 : 16) + 32 * p), qs);
        rl::FifthBits fifth{0u, 0u};
        if constexpr (kFive) { // the pair's 64 fifth bits from the block's 32 qh bytes, kept as 2 words
            uint32_t qh[8];
            load_u32s(reinterpret_cast<const uint4*>(sb + 16), qh);
            fifth = rl::q5_k_fifth_bits(qh, p);
        }
        return dot_elements<64>(x4, acc, [&](int e) {
            int q;
            if constexpr (kFive) q = rl::q5_k_value(qs, fifth, e);
            else q = rl::q4_k_value(qs, e);
            return e < 32 ? __fsub_rn(__fmul_rn(d0, static_cast<float>(q)), m0) : __fsub_rn(__fmul_rn(d1, static_cast<float>(q)), m1);
        });
    } else if constexpr (T == GgmlType::IQ4_NL) { // 18-byte blocks, 2-byte aligned: d, 16 quant bytes (8 words)
        const uint16_t* blk = reinterpret_cast<const uint16_t*>(row + u * rl::kIQ4_NLBytes);
        const float d = half_bits_to_float(unit_word<kGlobal>(blk));
        uint16_t qs[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) qs[i] = unit_word<kGlobal>(blk + 1 + i);
        return dot_elements<32>(x4, acc, [&](int j) { return __fmul_rn(d, static_cast<float>(rl::iq4_nl_value(qs, j))); });
    } else if constexpr (T == GgmlType::IQ4_XS) { // 136-byte super-blocks, 8-byte aligned: d | scales_h << 16, scales_l, 8 x 16 quant bytes
        const int j = static_cast<int>(u % 8);
        const uint32_t* sb = reinterpret_cast<const uint32_t*>(row + (u / 8) * rl::kIQ4_XSBytes);
        const uint32_t head = __ldg(sb), scales_l = __ldg(sb + 1);
        uint32_t qs[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) qs[i] = __ldg(sb + 2 + 4 * j + i);
        const float dl = __fmul_rn(half_bits_to_float(static_cast<uint16_t>(head & 0xffffu)), static_cast<float>(rl::iq4_xs_scale(head, scales_l, j) - 32));
        return dot_elements<32>(x4, acc, [&](int l) { return __fmul_rn(dl, static_cast<float>(rl::iq4_nl_value(qs, l))); });
    } else if constexpr (T == GgmlType::Q2_K) { // 84-byte super-blocks, 4-byte aligned: 16 scale bytes, 64 quant bytes, d, dmin
        const int half = static_cast<int>(u % 8) / 4, k = static_cast<int>(u % 4);
        const uint32_t* sb = reinterpret_cast<const uint32_t*>(row + (u / 8) * rl::kQ2_KBytes);
        uint32_t qs[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) qs[i] = __ldg(sb + (16 + 32 * half) / 4 + i);
        const int first = 8 * half + 2 * k;                     // the quarter's two scale bytes, in one word
        const rl::ScalePair sc = rl::q2_k_scale_pair(__ldg(sb + first / 4), first);
        const uint32_t dm = __ldg(sb + 20);                     // byte 80: d | dmin << 16
        const float d = half_bits_to_float(static_cast<uint16_t>(dm & 0xffffu)), dmin = half_bits_to_float(static_cast<uint16_t>(dm >> 16));
        const unsigned sc0 = sc.first, sc1 = sc.second;
        const float dl0 = __fmul_rn(d, static_cast<float>(sc0 & 0x0fu)), ml0 = __fmul_rn(dmin, static_cast<float>(sc0 >> 4));
        const float dl1 = __fmul_rn(d, static_cast<float>(sc1 & 0x0fu)), ml1 = __fmul_rn(dmin, static_cast<float>(sc1 >> 4));
        return dot_elements<32>(x4, acc, [&](int l) {
            const float q = static_cast<float>(rl::q2_k_value(qs, k, l));
            return l < 16 ? __fsub_rn(__fmul_rn(dl0, q), ml0) : __fsub_rn(__fmul_rn(dl1, q), ml1);
        });
    } else if constexpr (T == GgmlType::Q3_K) { // 110-byte super-blocks, 2-byte aligned: hmask, 64 quant bytes, 12 scale bytes, d
        const int half = static_cast<int>(u % 8) / 4, k = static_cast<int>(u % 4);
        const uint16_t* sb = reinterpret_cast<const uint16_t*>(row + (u / 8) * rl::kQ3_KBytes);
        uint16_t qs[16], hm[16], sc[6];
#pragma unroll
        for (int i = 0; i < 16; ++i) qs[i] = unit_word<kGlobal>(sb + (32 + 32 * half) / 2 + i), hm[i] = unit_word<kGlobal>(sb + i);
#pragma unroll
        for (int i = 0; i < 6; ++i) sc[i] = unit_word<kGlobal>(sb + 48 + i);
        const float d = half_bits_to_float(unit_word<kGlobal>(sb + 54)); // byte 108
        const float ds0 = __fmul_rn(d, static_cast<float>(rl::q3_k_scale(sc, 8 * half + 2 * k) - 32));
        const float ds1 = __fmul_rn(d, static_cast<float>(rl::q3_k_scale(sc, 8 * half + 2 * k + 1) - 32));
        return dot_elements<32>(x4, acc, [&](int l) { return __fmul_rn(l < 16 ? ds0 : ds1, static_cast<float>(rl::q3_k_value(qs, hm, half, k, l))); });
    } else { // Q6_K: 210-byte super-blocks, 2-byte aligned; 8 quarters each (2 halves of 4)
        static_assert(T == GgmlType::Q6_K, "not a preset type");
        const int half = static_cast<int>(u % 8) / 4, k = static_cast<int>(u % 4);
        const uint16_t* sb = reinterpret_cast<const uint16_t*>(row + (u / 8) * rl::kQ6_KBytes);
        uint16_t ql[16], qh[16];
#pragma unroll
        for (int i = 0; i < 16; ++i)
            ql[i] = unit_word<kGlobal>(sb + (64 * half + 32 * (k & 1)) / 2 + i), qh[i] = unit_word<kGlobal>(sb + (128 + 32 * half) / 2 + i);
        const uint16_t sc = unit_word<kGlobal>(sb + (192 + 8 * half + 2 * k) / 2); // the quarter's two int8 scales: elements 0..15, 16..31
        const float d = half_bits_to_float(unit_word<kGlobal>(sb + 104));         // byte 208
        const float ds0 = __fmul_rn(d, static_cast<float>(static_cast<int8_t>(sc & 0xffu))), ds1 = __fmul_rn(d, static_cast<float>(static_cast<int8_t>(sc >> 8)));
        return dot_elements<32>(x4, acc, [&](int l) { return __fmul_rn(l < 16 ? ds0 : ds1, static_cast<float>(rl::q6_k_value(ql, qh, k, l))); });
    }
}

} // namespace winnow::cuda::gemv_detail
