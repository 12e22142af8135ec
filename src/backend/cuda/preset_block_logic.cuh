#pragma once
// Where the CUDA kernels find each element of the preset GGUF types (io/quant.h: Q5_0, Q5_1,
// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS) in the bytes a lane holds, as little-endian words of any width (uint8_t
// for weight_at's byte reads, 16-bit words for the 2-byte aligned Q5_0, Q3_K, Q6_K and IQ4_NL blocks, 32-bit words for
// the rest). Integer arithmetic only:
// the scaling, which must round as the CPU's decoder does, stays in device code (weight_access.cuh, gemv_preset.cuh).
// Written once for the device and the host, so that a machine without a GPU checks the bit arithmetic against
// dequantize_row (tests/ops/test_preset_block_logic.cpp). The layouts are ggml's; io/quant_preset.cpp is the
// CPU's decoder, written separately.
//
// The unit a GEMV lane decodes at a time: a whole 32-element block of Q5_0 / Q5_1 / IQ4_NL; a pair of sub-blocks (64
// elements: 32 bytes of nibbles, the low nibbles the first sub-block) of Q4_K / Q5_K; a quarter of a half (32
// elements) of Q6_K, Q2_K and Q3_K; a sub-block (32 elements) of IQ4_XS.
#include <cstdint>

#include "backend/cuda/gemv_block_logic.cuh"
#include "io/quant.h"

#ifdef __CUDACC__
#define WINNOW_RO_FN __host__ __device__ __forceinline__
#else
#define WINNOW_RO_FN inline
#endif

namespace winnow::cuda::preset_logic {

// Block sizes in bytes (io/quant.h's layouts), and the elements of a K-quant super-block.
constexpr int kQ5_0Bytes = static_cast<int>(sizeof(BlockQ5_0)), kQ5_1Bytes = static_cast<int>(sizeof(BlockQ5_1)),
              kQ4_KBytes = static_cast<int>(sizeof(BlockQ4_K)), kQ5_KBytes = static_cast<int>(sizeof(BlockQ5_K)),
              kQ6_KBytes = static_cast<int>(sizeof(BlockQ6_K)), kQ2_KBytes = static_cast<int>(sizeof(BlockQ2_K)),
              kQ3_KBytes = static_cast<int>(sizeof(BlockQ3_K)), kIQ4_NLBytes = static_cast<int>(sizeof(BlockIQ4_NL)),
              kIQ4_XSBytes = static_cast<int>(sizeof(BlockIQ4_XS));
constexpr int kKElements = kQuantBlockK;

// Q5_0 / Q5_1 element j (0..31): Q4_0's nibble j (qs: the block's 16 quant bytes) with bit j of qh as its fifth bit.
template <class Word>
WINNOW_RO_FN int q5_value(const Word* qs, uint32_t qh, int j) {
    return gemv_logic::q4_value(qs, j) | static_cast<int>(((qh >> j) & 1u) << 4);
}

// IQ4_NL element j (0..31): the grid value (io/quant.h's kIq4nlValues) of Q4_0's nibble j. The 16 values are held in
// two 64-bit constants, a byte each, so that neither the device nor the host reads a table from memory.
WINNOW_RO_FN int iq4_nl_grid(unsigned nibble) {
    constexpr uint64_t kLow = 0xf6eaddcfbfad9881ull, kHigh = 0x7159453526190d01ull; // values 0-7 and 8-15, byte k = value k
    return static_cast<int8_t>(static_cast<uint8_t>((nibble < 8 ? kLow : kHigh) >> (8 * (nibble & 7))));
}
template <class Word>
WINNOW_RO_FN int iq4_nl_value(const Word* qs, int j) {
    return iq4_nl_grid(static_cast<unsigned>(gemv_logic::q4_value(qs, j)));
}

// IQ4_XS: the 6-bit scale (0..63; the sub-block's scale is d times that minus 32) of sub-block j (0..7) from the
// super-block's first two 32-bit words: head = d | scales_h << 16 (scales_h's bits 2j, 2j + 1 the top two bits) and
// scales_l (nibble j the low four bits). Its elements are IQ4_NL's (iq4_nl_value) of the 16 bytes at 8 + 16 j.
WINNOW_RO_FN int iq4_xs_scale(uint32_t head, uint32_t scales_l, int j) {
    return static_cast<int>(((scales_l >> (4 * j)) & 0x0fu) | (((head >> (16 + 2 * j)) & 3u) << 4));
}

// Q4_K / Q5_K: the 6-bit scale and min of sub-block j (0..7) from the block's 12 scale bytes (s): sub-blocks 0-3 in the
// low 6 bits of bytes 0-3 (scales) and 4-7 (mins), sub-blocks 4-7 in the nibbles of bytes 8-11 with their top two bits in
// the high bits of bytes 0-7.
struct ScaleMin {
    int scale, min;
};
template <class Word>
WINNOW_RO_FN ScaleMin k_scale_min(const Word* s, int j) {
    using gemv_logic::quant_byte;
    if (j < 4) return {static_cast<int>(quant_byte(s, j) & 63u), static_cast<int>(quant_byte(s, j + 4) & 63u)};
    return {static_cast<int>((quant_byte(s, j + 4) & 0x0fu) | ((quant_byte(s, j - 4) >> 6) << 4)),
            static_cast<int>((quant_byte(s, j + 4) >> 4) | ((quant_byte(s, j) >> 6) << 4))};
}

// Q4_K element e (0..63) of a pair of sub-blocks: qs the pair's 32 bytes; elements 0..31 the low nibbles, 32..63 the high.
template <class Word>
WINNOW_RO_FN int q4_k_value(const Word* qs, int e) {
    const unsigned b = gemv_logic::quant_byte(qs, e % 32);
    return static_cast<int>(e < 32 ? b & 0x0fu : b >> 4);
}

// Q5_K element e of pair p (0..3): Q4_K's nibble with the fifth bit from the block's 32 qh bytes: bit 2p of qh[e] for the
// first sub-block's element e, bit 2p + 1 of qh[e - 32] for the second's.
template <class Word>
WINNOW_RO_FN int q5_k_value(const Word* qs, const Word* qh, int p, int e) {
    const unsigned bit = (gemv_logic::quant_byte(qh, e % 32) >> (2 * p + e / 32)) & 1u;
    return q4_k_value(qs, e) | static_cast<int>(bit << 4);
}

// Q5_K's fifth bits of pair p as two 32-bit masks, bit l of `first` for element l and of `second` for element 32 + l
// (q5_k_value's bits): a GEMV lane keeps these 2 words instead of the 8 words of qh it loaded.
struct FifthBits {
    uint32_t first, second;
};
template <class Word>
WINNOW_RO_FN FifthBits q5_k_fifth_bits(const Word* qh, int p) {
    FifthBits m{0u, 0u};
    for (int l = 0; l < 32; ++l) {
        const unsigned b = gemv_logic::quant_byte(qh, l);
        m.first |= ((b >> (2 * p)) & 1u) << l;
        m.second |= ((b >> (2 * p + 1)) & 1u) << l;
    }
    return m;
}
template <class Word>
WINNOW_RO_FN int q5_k_value(const Word* qs, FifthBits bits, int e) {
    const uint32_t mask = e < 32 ? bits.first : bits.second;
    return q4_k_value(qs, e) | static_cast<int>(((mask >> (e % 32)) & 1u) << 4);
}

// Q6_K element l (0..31) of quarter k (0..3) of a half: ql the 32 bytes at 32 (k & 1) in the half's 64 ql bytes (low
// nibbles for quarters 0 and 1, high for 2 and 3), qh the half's 32 qh bytes (bits 2k, 2k + 1 of qh[l] the top two).
// Signed: q - 32.
template <class Word>
WINNOW_RO_FN int q6_k_value(const Word* ql, const Word* qh, int k, int l) {
    const unsigned low = gemv_logic::quant_byte(ql, l), high = (gemv_logic::quant_byte(qh, l) >> (2 * k)) & 3u;
    return static_cast<int>((k < 2 ? low & 0x0fu : low >> 4) | (high << 4)) - 32;
}

// Q2_K / Q3_K element l (0..31) of quarter k (0..3) of a half: bits 2k, 2k + 1 of qs[l], qs the half's 32 quant bytes.
// Q3_K subtracts 4 where bit 4 half + k of hmask[l] (the block's 32 hmask bytes) is clear.
template <class Word>
WINNOW_RO_FN int q2_k_value(const Word* qs, int k, int l) {
    return static_cast<int>((gemv_logic::quant_byte(qs, l) >> (2 * k)) & 3u);
}
template <class Word>
WINNOW_RO_FN int q3_k_value(const Word* qs, const Word* hmask, int half, int k, int l) {
    return q2_k_value(qs, k, l) - (((gemv_logic::quant_byte(hmask, l) >> (4 * half + k)) & 1u) ? 0 : 4);
}
// Q2_K: the scale bytes of sub-blocks `first` and first + 1 (first even) from `word`, the 32-bit word of the block's
// 16 scale bytes that holds both (word first / 4), as the GEMV's unit loads it.
struct ScalePair {
    unsigned first, second;
};
WINNOW_RO_FN ScalePair q2_k_scale_pair(uint32_t word, int first) {
    const uint32_t w = word >> (8 * (first % 4));
    return {w & 0xffu, (w >> 8) & 0xffu};
}

// Q3_K's 6-bit scale j (0..15) from the block's 12 scale bytes, 0..63 (the weight's scale is that - 32): the low 4
// bits in the low (j < 8) or high nibble of byte j % 8, the top 2 at bits 2 (j / 4) of byte 8 + j % 4.
template <class Word>
WINNOW_RO_FN int q3_k_scale(const Word* s, int j) {
    using gemv_logic::quant_byte;
    const unsigned low = j < 8 ? quant_byte(s, j) & 0x0fu : quant_byte(s, j - 8) >> 4;
    return static_cast<int>(low | (((quant_byte(s, 8 + j % 4) >> (2 * (j / 4))) & 3u) << 4));
}

// Where element c (0..255) of a K-quant super-block lies (Q6_K's position serves Q2_K and Q3_K too): Q4_K / Q5_K's pair and element in it; Q6_K's half, quarter
// and element in it, and its scale's index (0..15) among the block's 16.
struct KPairPos {
    int pair, e;
};
WINNOW_RO_FN KPairPos k_pair_pos(int c) { return {c / 64, c % 64}; }
struct Q6Pos {
    int half, quarter, l, scale;
};
WINNOW_RO_FN Q6Pos q6_k_pos(int c) {
    const int half = c / 128, quarter = (c % 128) / 32, l = c % 32;
    return {half, quarter, l, 8 * half + 2 * quarter + l / 16};
}

} // namespace winnow::cuda::preset_logic

#undef WINNOW_RO_FN
