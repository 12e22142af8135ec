// The CUDA kernels' decoding of the preset GGUF types (backend/cuda/preset_block_logic.cuh) run on the host
// against the CPU's decoder: for random blocks of Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL and IQ4_XS, every element found from the words a
// GEMV lane loads (gemv_preset.cuh: 16-bit words for the 2-byte aligned Q5_0, Q3_K, Q6_K and IQ4_NL, 32-bit words for
// the rest)
// and from single bytes (weight_at's reads), scaled in the order the device scales it, must equal dequantize_row's
// value bit for bit. Without a GPU this is what checks the kernels' bit arithmetic; the op harness runs the kernels
// (on the SIMT emulator here, on the GPU machine there).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "backend/cuda/preset_block_logic.cuh"
#include "block_words.h"
#include "io/quant.h"
#include "backend/cuda/float_bits.cuh"

namespace {

using namespace winnow;
namespace rl = winnow::cuda::preset_logic;
using test::half_to_float;
using test::random_blocks;
using test::words_of;

struct Layout {
    GgmlType type;
    int bytes, elements;
    std::vector<int> halves; // byte offsets of the block's fp16 fields
};
const Layout kLayouts[] = {{GgmlType::Q5_0, rl::kQ5_0Bytes, 32, {0}},       {GgmlType::Q5_1, rl::kQ5_1Bytes, 32, {0, 2}},
                           {GgmlType::Q4_K, rl::kQ4_KBytes, 256, {0, 2}},   {GgmlType::Q5_K, rl::kQ5_KBytes, 256, {0, 2}},
                           {GgmlType::Q6_K, rl::kQ6_KBytes, 256, {208}},    {GgmlType::Q2_K, rl::kQ2_KBytes, 256, {80, 82}},
                           {GgmlType::Q3_K, rl::kQ3_KBytes, 256, {108}},    {GgmlType::IQ4_NL, rl::kIQ4_NLBytes, 32, {0}},
                           {GgmlType::IQ4_XS, rl::kIQ4_XSBytes, 256, {0}}};

template <class Word>
unsigned gemv_logic_byte(const Word* w, int k) { return winnow::cuda::gemv_logic::quant_byte(w, k); }

uint16_t u16_at(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint32_t u32_at(const uint8_t* p) { return u16_at(p) | static_cast<uint32_t>(u16_at(p + 2)) << 16; }

// Element c (0..elements) of the block at b, decoded with the device's logic from words of type Word, each fp32
// operation rounded on its own (volatile: the host build must not fuse them either).
template <class Word>
float device_value(GgmlType type, const uint8_t* b, int c) {
    volatile float v;
    if (type == GgmlType::Q5_0 || type == GgmlType::Q5_1) {
        const bool with_min = type == GgmlType::Q5_1;
        const uint8_t* qh = b + (with_min ? 4 : 2);
        const auto qs = words_of<Word>(qh + 4, 16);
        const int q = rl::q5_value(qs.data(), u32_at(qh), c);
        const volatile float d = half_to_float(u16_at(b));
        if (with_min) {
            const volatile float qd = static_cast<float>(q) * d;
            v = qd + half_to_float(u16_at(b + 2));
        } else {
            v = static_cast<float>(q - 16) * d;
        }
    } else if (type == GgmlType::Q4_K || type == GgmlType::Q5_K) {
        const bool five = type == GgmlType::Q5_K;
        const rl::KPairPos at = rl::k_pair_pos(c);
        const auto scales = words_of<Word>(b + 4, 12), qs = words_of<Word>(b + (five ? 48 : 16) + 32 * at.pair, 32), qh = words_of<Word>(b + 16, 32);
        const rl::ScaleMin s = rl::k_scale_min(scales.data(), 2 * at.pair + at.e / 32);
        const int q = five ? rl::q5_k_value(qs.data(), qh.data(), at.pair, at.e) : rl::q4_k_value(qs.data(), at.e);
        const volatile float ds = half_to_float(u16_at(b)) * static_cast<float>(s.scale);
        const volatile float dm = half_to_float(u16_at(b + 2)) * static_cast<float>(s.min);
        const volatile float qd = ds * static_cast<float>(q);
        v = qd - dm;
    } else if (type == GgmlType::IQ4_NL) {
        const auto qs = words_of<Word>(b + 2, 16);
        v = half_to_float(u16_at(b)) * static_cast<float>(rl::iq4_nl_value(qs.data(), c));
    } else if (type == GgmlType::IQ4_XS) {
        const int j = c / 32;
        const auto qs = words_of<Word>(b + 8 + 16 * j, 16);
        // the scale from the header's two 32-bit words, as the GEMV and weight_at read it
        const int s = rl::iq4_xs_scale(u32_at(b), u32_at(b + 4), j);
        const volatile float dl = half_to_float(u16_at(b)) * static_cast<float>(s - 32);
        v = dl * static_cast<float>(rl::iq4_nl_value(qs.data(), c % 32));
    } else if (type == GgmlType::Q2_K) {
        const rl::Q6Pos at = rl::q6_k_pos(c);
        const auto qs = words_of<Word>(b + 16 + 32 * at.half, 32), scales = words_of<Word>(b, 16);
        unsigned sc = gemv_logic_byte(scales.data(), at.scale);
        if constexpr (sizeof(Word) == 4) { // the GEMV's pick: the word holding the quarter's two scales
            const int first = at.scale & ~1;
            const rl::ScalePair pair = rl::q2_k_scale_pair(scales[first / 4], first);
            sc = at.scale & 1 ? pair.second : pair.first;
        }
        const volatile float dl = half_to_float(u16_at(b + 80)) * static_cast<float>(sc & 0x0fu);
        const volatile float ml = half_to_float(u16_at(b + 82)) * static_cast<float>(sc >> 4);
        const volatile float qd = dl * static_cast<float>(rl::q2_k_value(qs.data(), at.quarter, at.l));
        v = qd - ml;
    } else if (type == GgmlType::Q3_K) {
        const rl::Q6Pos at = rl::q6_k_pos(c);
        const auto qs = words_of<Word>(b + 32 + 32 * at.half, 32), hmask = words_of<Word>(b, 32), scales = words_of<Word>(b + 96, 12);
        const volatile float ds = half_to_float(u16_at(b + 108)) * static_cast<float>(rl::q3_k_scale(scales.data(), at.scale) - 32);
        v = ds * static_cast<float>(rl::q3_k_value(qs.data(), hmask.data(), at.half, at.quarter, at.l));
    } else {
        const rl::Q6Pos at = rl::q6_k_pos(c);
        const auto ql = words_of<Word>(b + 64 * at.half + 32 * (at.quarter & 1), 32), qh = words_of<Word>(b + 128 + 32 * at.half, 32);
        const int q = rl::q6_k_value(ql.data(), qh.data(), at.quarter, at.l);
        const volatile float ds = half_to_float(u16_at(b + 208)) * static_cast<float>(static_cast<int8_t>(b[192 + at.scale]));
        v = ds * static_cast<float>(q);
    }
    return v;
}

template <class Word>
void check_type(const Layout& l, uint32_t seed) {
    constexpr int kBlocks = 48;
    const auto b = random_blocks(kBlocks, l.bytes, l.halves, seed);
    std::vector<float> ref(static_cast<size_t>(kBlocks) * l.elements);
    dequantize_row(l.type, b.data(), ref.data(), ref.size());
    int mismatches = 0;
    for (int i = 0; i < kBlocks; ++i)
        for (int c = 0; c < l.elements; ++c) {
            const float got = device_value<Word>(l.type, &b[static_cast<size_t>(i) * l.bytes], c), want = ref[static_cast<size_t>(i) * l.elements + c];
            if (winnow::cuda::float_bits(got) != winnow::cuda::float_bits(want) && ++mismatches <= 5)
                ADD_FAILURE() << ggml_type_name(l.type) << " (" << sizeof(Word) << "-byte words) block " << i << " element " << c << ": " << got
                              << " vs dequantize_row's " << want;
        }
    EXPECT_EQ(mismatches, 0) << ggml_type_name(l.type);
}

TEST(ReadOnlyBlockLogic, ElementsFromBytesMatchTheCpuDecoder) { // weight_at's reads
    for (const Layout& l : kLayouts) check_type<uint8_t>(l, 10 + static_cast<uint32_t>(l.type));
}

TEST(ReadOnlyBlockLogic, ElementsFromTwoByteWordsMatchTheCpuDecoder) { // the GEMV's Q5_0 and Q6_K units
    for (const Layout& l : kLayouts) check_type<uint16_t>(l, 20 + static_cast<uint32_t>(l.type));
}

TEST(ReadOnlyBlockLogic, ElementsFromFourByteWordsMatchTheCpuDecoder) { // the GEMV's Q5_1, Q4_K and Q5_K units
    for (const Layout& l : kLayouts) check_type<uint32_t>(l, 30 + static_cast<uint32_t>(l.type));
}

// The GEMV's Q5_K fifth bits, kept as two masks per pair, against the bits read from qh directly.
TEST(ReadOnlyBlockLogic, Q5_KFifthBitMasksHoldEachElementsBit) {
    std::mt19937 rng(7);
    for (int trial = 0; trial < 64; ++trial) {
        std::vector<uint8_t> qs(32), qh(32);
        for (auto& b : qs) b = static_cast<uint8_t>(rng());
        for (auto& b : qh) b = static_cast<uint8_t>(rng());
        const auto qh_words = words_of<uint32_t>(qh.data(), 32);
        for (int p = 0; p < 4; ++p) {
            const rl::FifthBits bits = rl::q5_k_fifth_bits(qh_words.data(), p);
            for (int e = 0; e < 64; ++e) ASSERT_EQ(rl::q5_k_value(qs.data(), bits, e), rl::q5_k_value(qs.data(), qh.data(), p, e)) << "pair " << p << " element " << e;
        }
    }
}

// The positions the GEMV's units and weight_at share: every element of a super-block exactly once, in the order the
// CPU decoder writes them.
TEST(ReadOnlyBlockLogic, SuperBlockPositionsCoverEachElementOnce) {
    std::vector<int> seen(256, 0);
    for (int c = 0; c < 256; ++c) {
        const rl::KPairPos p = rl::k_pair_pos(c);
        EXPECT_EQ(64 * p.pair + p.e, c);
        const rl::Q6Pos q = rl::q6_k_pos(c);
        EXPECT_EQ(128 * q.half + 32 * q.quarter + q.l, c);
        EXPECT_EQ(q.scale, c / 16) << "Q6_K's 16 scales each cover 16 consecutive elements";
        ++seen[128 * q.half + 32 * q.quarter + q.l];
    }
    for (int c = 0; c < 256; ++c) EXPECT_EQ(seen[c], 1);
}

} // namespace
