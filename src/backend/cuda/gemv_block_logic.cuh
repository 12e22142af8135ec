#pragma once
// Where the GEMV's vector loads (gemv_row.cuh) find each element once a lane holds a row's bytes in registers as
// little-endian words, written once for the device and the host so that a machine without a GPU can check the byte and
// nibble arithmetic against the stored formats (tests/ops/test_gemv_block_logic.cpp compares it with dequantize_row).
//   half_bits(words, i): the 16-bit half i of F16/BF16 elements packed in 32-bit words (element 2k in the low half);
//   quant_byte(words, k): byte k of a block's quants packed in 16- or 32-bit words;
//   q4_value(words, j):   element j (0..31) of a Q4_0/Q4_1 block: the low nibbles of bytes 0..15 are elements 0..15,
//                         their high nibbles elements 16..31 (before Q4_0's -8, the scale and Q4_1's min);
//   q8_value(words, j):   element j of a Q8_0 block, the signed byte j (before the scale).
#include <cstdint>

#ifdef __CUDACC__
#define WINNOW_GEMV_FN __host__ __device__ __forceinline__
#else
#define WINNOW_GEMV_FN inline
#endif

namespace winnow::cuda::gemv_logic {

WINNOW_GEMV_FN uint16_t half_bits(const uint32_t* words, int i) {
    return static_cast<uint16_t>(i % 2 == 0 ? words[i / 2] & 0xffffu : words[i / 2] >> 16);
}

template <class Word>
WINNOW_GEMV_FN unsigned quant_byte(const Word* words, int k) {
    constexpr int kBytes = static_cast<int>(sizeof(Word));
    return static_cast<unsigned>(words[k / kBytes] >> (8 * (k % kBytes))) & 0xffu;
}

template <class Word>
WINNOW_GEMV_FN int q4_value(const Word* words, int j) {
    return static_cast<int>(j < 16 ? quant_byte(words, j) & 0x0fu : quant_byte(words, j - 16) >> 4);
}

template <class Word>
WINNOW_GEMV_FN int q8_value(const Word* words, int j) {
    return static_cast<int8_t>(static_cast<uint8_t>(quant_byte(words, j)));
}

} // namespace winnow::cuda::gemv_logic

#undef WINNOW_GEMV_FN
