// The GEMV's register-word decoding (backend/cuda/gemv_block_logic.cuh) run on the host against the stored formats:
// for random blocks of every quantized type and random F16/BF16 rows, each element decoded from the words a lane loads
// (32-bit words for Q4_1 and halves, 16-bit words for Q8_0 and Q4_0, whose blocks are only 2-byte aligned), scaled as
// weight_at scales it, must equal dequantize_row's value bit for bit. On a machine without a GPU this is what checks
// the vector path's byte and nibble arithmetic; the op harness runs the kernels themselves on the GPU machine.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cuda/gemv_block_logic.cuh"
#include "block_words.h"
#include "io/quant.h"

namespace {

using namespace winnow;
namespace gl = winnow::cuda::gemv_logic;
using test::half_to_float;
using test::random_blocks;
using test::words_of;

void expect_bits(float got, float want, int block, int j) {
    uint32_t a, b;
    std::memcpy(&a, &got, 4);
    std::memcpy(&b, &want, 4);
    EXPECT_EQ(a, b) << "block " << block << " element " << j << ": " << got << " vs dequantize_row's " << want;
}

TEST(GemvBlockLogic, Q4_1FromFourByteWords) {
    constexpr int kBlocks = 64, kBytes = 20;
    const auto b = random_blocks(kBlocks, kBytes, {0, 2}, 1);
    std::vector<float> ref(kBlocks * 32);
    dequantize_row(GgmlType::Q4_1, b.data(), ref.data(), ref.size());
    for (int i = 0; i < kBlocks; ++i) {
        const auto w = words_of<uint32_t>(&b[i * kBytes], kBytes); // word 0: d | m << 16, words 1..4: the quants
        const volatile float d = half_to_float(static_cast<uint16_t>(w[0] & 0xffffu)), m = half_to_float(static_cast<uint16_t>(w[0] >> 16));
        for (int j = 0; j < 32; ++j) {
            const volatile float qd = static_cast<float>(gl::q4_value(w.data() + 1, j)) * d; // __fmul_rn, then __fadd_rn
            expect_bits(qd + m, ref[i * 32 + j], i, j);
        }
    }
}

// Blocks of `type` (block_bytes each: an fp16 scale, then the quants) read as 2-byte words: element j of a block is
// quant(words after the scale, j) * d.
template <class Quant>
void check_scaled_blocks(GgmlType type, int block_bytes, uint32_t seed, Quant quant) {
    constexpr int kBlocks = 64;
    const auto b = random_blocks(kBlocks, block_bytes, {0}, seed);
    std::vector<float> ref(kBlocks * 32);
    dequantize_row(type, b.data(), ref.data(), ref.size());
    for (int i = 0; i < kBlocks; ++i) {
        const auto w = words_of<uint16_t>(&b[i * block_bytes], block_bytes); // word 0: d, then the quants
        const float d = half_to_float(w[0]);
        for (int j = 0; j < 32; ++j) expect_bits(static_cast<float>(quant(w.data() + 1, j)) * d, ref[i * 32 + j], i, j);
    }
}

TEST(GemvBlockLogic, Q4_0AndQ8_0FromTwoByteWords) {
    check_scaled_blocks(GgmlType::Q4_0, 18, 2, [](const uint16_t* w, int j) { return gl::q4_value(w, j) - 8; });
    check_scaled_blocks(GgmlType::Q8_0, 34, 3, [](const uint16_t* w, int j) { return gl::q8_value(w, j); });
}

TEST(GemvBlockLogic, HalvesFromFourByteWords) {
    for (GgmlType t : {GgmlType::F16, GgmlType::BF16}) {
        constexpr int kElems = 256;
        const auto b = random_blocks(kElems, 2, {0}, 4); // finite halves
        std::vector<float> ref(kElems);
        dequantize_row(t, b.data(), ref.data(), ref.size());
        const auto w = words_of<uint32_t>(b.data(), 2 * kElems);
        for (int i = 0; i < kElems; ++i) {
            const uint16_t h = gl::half_bits(w.data(), i);
            uint16_t stored;
            std::memcpy(&stored, &b[2 * i], 2);
            ASSERT_EQ(h, stored) << "element " << i;
            if (t == GgmlType::BF16) {
                const uint32_t bits = static_cast<uint32_t>(h) << 16;
                float v;
                std::memcpy(&v, &bits, 4);
                expect_bits(v, ref[i], 0, i);
            } else {
                expect_bits(half_to_float(h), ref[i], 0, i);
            }
        }
    }
}

} // namespace

namespace {

// The staged walk's copy (gemv_row.cuh: load_staged, store_staged) replayed on the host: every word part that
// staged_word_part names, loaded from a buffer where only the range's bytes are readable, must rebuild the range
// byte for byte at offset `off` of the copy, for both offsets and every even length a chunk of Q8_0 or Q4_0 blocks can
// have. A load outside the range would be a read past a row (for the last row: past the matrix).
TEST(GemvBlockLogic, StagedWordsCopyTheRangeAndReadNothingElse) {
    for (int block_bytes : {18, 34})
        for (int off : {0, 2})
            for (int blocks = 1; blocks <= 32; ++blocks) {
                const int len = blocks * block_bytes, words = gl::staged_words(off, len);
                std::vector<int> mem(static_cast<size_t>(4 * words + 8), -1); // -1: not readable
                for (int i = 0; i < len; ++i) mem[static_cast<size_t>(off + i)] = (i * 37 + blocks) & 0xff;
                std::vector<int> copy(static_cast<size_t>(4 * words), -2);
                for (int k = 0; k < words; ++k) {
                    const gl::WordPart part = gl::staged_word_part(k, off, len);
                    for (int b = 0; b < 4; ++b) {
                        const bool loaded = part == gl::WordPart::whole || (part == gl::WordPart::low_half && b < 2) || (part == gl::WordPart::high_half && b >= 2);
                        if (!loaded) continue;
                        ASSERT_GE(mem[static_cast<size_t>(4 * k + b)], 0) << "word " << k << " byte " << b << " off " << off << " len " << len;
                        copy[static_cast<size_t>(4 * k + b)] = mem[static_cast<size_t>(4 * k + b)];
                    }
                }
                for (int i = 0; i < len; ++i) ASSERT_EQ(copy[static_cast<size_t>(off + i)], mem[static_cast<size_t>(off + i)]) << "byte " << i;
                // a lane's words: the warp's 32 lanes each take words lane, lane + 32, ... (gemv_row.cuh sizes them)
                ASSERT_LE(words, 32 * (((2 + 32 * block_bytes + 3) / 4 + 31) / 32));
            }
}

} // namespace
