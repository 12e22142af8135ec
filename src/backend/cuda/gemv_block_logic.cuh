#pragma once
// Where the GEMV's vector loads (gemv_row.cuh) find each element once a lane holds a row's bytes in registers as
// little-endian words, written once for the device and the host so that a machine without a GPU can check the byte and
// nibble arithmetic against the stored formats (tests/ops/test_gemv_block_logic.cpp compares it with dequantize_row).
//   half_bits(words, i): the 16-bit half i of F16/BF16 elements packed in 32-bit words (element 2k in the low half);
//   quant_byte(words, k): byte k of a block's quants packed in 16- or 32-bit words;
//   q4_value(words, j):   element j (0..31) of a Q4_0/Q4_1 block: the low nibbles of bytes 0..15 are elements 0..15,
//                         their high nibbles elements 16..31 (before Q4_0's -8, the scale and Q4_1's min);
//   q8_value(words, j):   element j of a Q8_0 block, the signed byte j (before the scale).
// And how a warp stages a run of 2-byte aligned blocks (Q8_0, Q4_0) into shared memory through whole 4-byte words
// (gemv_row.cuh's staged walk): staged_words, staged_word_part.
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

// A warp copies a row's byte range [a, a + len) (a and len even: Q8_0 and Q4_0 blocks are only 2-byte aligned) through
// the 4-byte words from the aligned address a - off (off = a % 4: 0 or 2). Word k holds bytes [4k, 4k + 4) of the copy,
// of which [off, off + len) are the range's; the copy has staged_words(off, len) words.
WINNOW_GEMV_FN int staged_words(int off, int len) { return (off + len + 3) / 4; }

// Which bytes of word k the range covers: both halves (one 4-byte load), one 2-byte half (a 2-byte load: the word runs
// past an end of the range, which may be the end of the matrix), or neither.
enum class WordPart { whole, low_half, high_half, none };
WINNOW_GEMV_FN WordPart staged_word_part(int k, int off, int len) {
    const int lo = 4 * k, end = off + len;
    const bool low = lo >= off && lo + 2 <= end, high = lo + 2 >= off && lo + 4 <= end;
    return low && high ? WordPart::whole : low ? WordPart::low_half : high ? WordPart::high_half : WordPart::none;
}

} // namespace winnow::cuda::gemv_logic

#undef WINNOW_GEMV_FN
