#pragma once
// Helpers of the tests that check the CUDA kernels' block decoding (test_gemv_block_logic.cpp,
// test_preset_block_logic.cpp on the host, tests/gpu/test_cuda_dequantize.cpp on the device): random blocks with sane fp16 fields, a block's bytes as the words a lane loads, and
// an fp16 decoder that does not depend on the library under test.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace winnow::test {

// IEEE binary16, exactly.
inline float half_to_float(uint16_t h) {
    const int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    float v = exp == 0 ? std::ldexp(static_cast<float>(mant), -24) : exp == 31 ? (mant ? NAN : INFINITY) : std::ldexp(static_cast<float>(mant | 0x400), exp - 25);
    return sign ? -v : v;
}

// Random bytes for `blocks` blocks of `block_bytes`, the fp16 fields at `half_offsets` in each a finite value (random
// sign) with a biased exponent in [min_exp, max_exp]: of modest size by default, 2^-14 to 2^15 for (1, 30).
inline std::vector<uint8_t> random_blocks(int blocks, int block_bytes, const std::vector<int>& half_offsets, uint32_t seed, int min_exp = 5,
                                          int max_exp = 20) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> b(static_cast<size_t>(blocks) * block_bytes);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    std::uniform_int_distribution<int> exp(min_exp, max_exp);
    for (int i = 0; i < blocks; ++i)
        for (int off : half_offsets) {
            const uint16_t v = static_cast<uint16_t>((rng() & 0x8000u) | (exp(rng) << 10) | (rng() & 0x3ffu));
            std::memcpy(&b[static_cast<size_t>(i) * block_bytes + off], &v, 2);
        }
    return b;
}

// `bytes` bytes at p as little-endian words of type Word.
template <class Word>
std::vector<Word> words_of(const uint8_t* p, int bytes) {
    std::vector<Word> w(bytes / sizeof(Word));
    std::memcpy(w.data(), p, bytes);
    return w;
}

} // namespace winnow::test
