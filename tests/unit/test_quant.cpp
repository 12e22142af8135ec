// Quant codecs against independent implementations: gguf-py (quantize + dequantize, numpy) through the data
// written by tests/fixtures/quant_oracle.py, and the CPU's own F16C instructions for fp16 rounding.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "backend/cpu/vec_dot.h"
#include "io/quant.h"

namespace {

using namespace winnow;

struct QuantCase {
    uint32_t type = 0;
    std::vector<float> input;
    std::vector<uint8_t> bytes;
    std::vector<float> dequantized;
};

std::string case_path(const std::string& name) { return std::string(WINNOW_FIXTURE_DIR) + "/quant-" + name + ".bin"; }

// The ggml type id quant_oracle.py writes for each file.
uint32_t expected_type(const std::string& name) {
    if (name == "F16") return 1;
    if (name == "BF16") return 30;
    if (name == "Q8_0") return 8;
    if (name == "Q4_0") return 2;
    if (name == "Q4_1") return 3;
    if (name == "Q5_0") return 6;
    if (name == "Q5_1") return 7;
    if (name == "Q4_K") return 12;
    if (name == "Q5_K") return 13;
    if (name == "Q6_K") return 14;
    if (name == "Q2_K") return 10;
    if (name == "Q3_K") return 11;
    if (name == "IQ4_NL") return 20;
    if (name == "IQ4_XS") return 23;
    return ~0u;
}

// Reads quant-<name>.bin; the caller checks read_ok(), which asserts the file held what quant_oracle.py writes.
QuantCase read_case(const std::string& name) {
    const std::string path = case_path(name);
    std::ifstream in(path, std::ios::binary);
    EXPECT_TRUE(in.good()) << "missing " << path << " (written by tests/fixtures/quant_oracle.py)";
    char magic[4] = {};
    in.read(magic, 4);
    EXPECT_EQ(std::memcmp(magic, "WQNT", 4), 0);
    uint32_t version = 0, n_values = 0, n_bytes = 0;
    QuantCase c;
    in.read(reinterpret_cast<char*>(&version), 4);
    in.read(reinterpret_cast<char*>(&c.type), 4);
    in.read(reinterpret_cast<char*>(&n_values), 4);
    in.read(reinterpret_cast<char*>(&n_bytes), 4);
    EXPECT_EQ(version, 1u) << path;
    if (!in || n_values > (1u << 24) || n_bytes > (1u << 26)) {
        ADD_FAILURE() << "unreadable header in " << path;
        return {};
    }
    c.input.resize(n_values);
    c.bytes.resize(n_bytes);
    c.dequantized.resize(n_values);
    in.read(reinterpret_cast<char*>(c.input.data()), n_values * 4);
    in.read(reinterpret_cast<char*>(c.bytes.data()), n_bytes);
    in.read(reinterpret_cast<char*>(c.dequantized.data()), n_values * 4);
    EXPECT_TRUE(in.good()) << "truncated " << path;
    EXPECT_EQ(in.peek(), std::char_traits<char>::eof()) << "trailing bytes in " << path;
    return c;
}

// quant_oracle.py writes 4096 values of the named type, not all zero, and their encoding.
void expect_read(const QuantCase& c, const std::string& name) {
    ASSERT_EQ(c.input.size(), 4096u) << case_path(name);
    ASSERT_EQ(c.type, expected_type(name)) << case_path(name);
    ASSERT_FALSE(c.bytes.empty()) << case_path(name);
    size_t nonzero = 0;
    for (float v : c.input) nonzero += v != 0.0f;
    ASSERT_GT(nonzero, c.input.size() / 2) << case_path(name);
}

class QuantVsGgufPy : public ::testing::TestWithParam<const char*> {};

TEST_P(QuantVsGgufPy, EncodeAndDecodeAreBitExact) {
    const QuantCase c = read_case(GetParam());
    expect_read(c, GetParam());
    if (HasFatalFailure()) return;
    const auto type = static_cast<GgmlType>(c.type);
    ASSERT_EQ(ggml_row_bytes(type, c.input.size()), c.bytes.size());

    if ((ggml_type_traits(c.type)->block_size == 32 && type != GgmlType::IQ4_NL) || type == GgmlType::F16 || type == GgmlType::BF16) {
        // gguf-py encodes these (its K-quant blocks are random: it has no K-quant encoder)
        std::vector<uint8_t> ours(c.bytes.size());
        quantize_row_ref(type, c.input.data(), ours.data(), c.input.size());
        size_t diff_bytes = 0;
        for (size_t i = 0; i < ours.size(); ++i) diff_bytes += ours[i] != c.bytes[i];
        EXPECT_EQ(diff_bytes, 0u) << "encoded bytes differ from gguf-py";
    }

    std::vector<float> decoded(c.input.size());
    dequantize_row(type, c.bytes.data(), decoded.data(), decoded.size());
    for (size_t i = 0; i < decoded.size(); ++i)
        ASSERT_EQ(std::memcmp(&decoded[i], &c.dequantized[i], 4), 0) << "value " << i << ": " << decoded[i] << " vs gguf-py " << c.dequantized[i];
}

// The SIMD dot product on the stored format equals the dot product of the decoded row (up to fp32 rounding).
TEST_P(QuantVsGgufPy, VecDotMatchesDecodedDot) {
    const QuantCase c = read_case(GetParam());
    expect_read(c, GetParam());
    if (HasFatalFailure()) return;
    const auto type = static_cast<GgmlType>(c.type);
    std::mt19937 rng(1);
    std::normal_distribution<float> nd;
    std::vector<float> x(c.input.size());
    for (auto& v : x) v = nd(rng);
    cpu::PreparedActivation px;
    cpu::prepare_activation(type, x.data(), x.size(), px);
    double ref = 0, mag = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        ref += static_cast<double>(c.dequantized[i]) * x[i];
        mag += std::abs(static_cast<double>(c.dequantized[i]) * x[i]);
    }
    const float ours = cpu::vec_dot(type, c.bytes.data(), px, x.size());
    EXPECT_NEAR(ours, ref, 1e-5 * mag + 1e-6);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, QuantVsGgufPy,
                         ::testing::Values("F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K", "Q2_K", "Q3_K", "IQ4_NL", "IQ4_XS"));

double squared_error(const std::vector<float>& a, const std::vector<float>& b, size_t begin, size_t end) {
    double e = 0.0;
    for (size_t i = begin; i < end; ++i) e += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    return e;
}

// winnow's K-quant encoder (its own code, io/quant_encode_preset.cpp) against ggml's C reference quantizer on the
// same input (quant-<type>-ggml.bin, written through llama-cpp-python's libggml-base): the squared error of the
// decoded values within 0.2% of ggml's over the input (most blocks are byte-identical), and within 25% on every super-block (outliers, tiny and huge
// magnitudes, constant and one-signed blocks). The special blocks decode exactly: zeros to zeros.
class KQuantVsGgml : public ::testing::TestWithParam<const char*> {};

TEST_P(KQuantVsGgml, ErrorAtMostGgmlsReferenceQuantizers) {
    const std::string name = std::string(GetParam()) + "-ggml";
    const QuantCase c = read_case(name);
    ASSERT_EQ(c.input.size(), 4096u) << case_path(name);
    ASSERT_EQ(c.type, expected_type(GetParam()));
    const auto type = static_cast<GgmlType>(c.type);
    ASSERT_EQ(ggml_row_bytes(type, c.input.size()), c.bytes.size());
    std::vector<uint8_t> ours(c.bytes.size());
    quantize_row_ref(type, c.input.data(), ours.data(), c.input.size());
    std::vector<float> decoded(c.input.size());
    dequantize_row(type, ours.data(), decoded.data(), decoded.size());

    const double ours_total = squared_error(decoded, c.input, 0, c.input.size());
    const double ggml_total = squared_error(c.dequantized, c.input, 0, c.input.size());
    size_t same_blocks = 0;
    const size_t block_bytes = ggml_row_bytes(type, kQuantBlockK);
    for (size_t b = 0; b < c.input.size() / kQuantBlockK; ++b) {
        const size_t lo = b * kQuantBlockK, hi = lo + kQuantBlockK;
        const double o = squared_error(decoded, c.input, lo, hi), g = squared_error(c.dequantized, c.input, lo, hi);
        EXPECT_LE(o, 1.25 * g + 1e-12 * squared_error(c.input, std::vector<float>(c.input.size()), lo, hi) + 1e-30)
            << "super-block " << b;
        same_blocks += std::memcmp(ours.data() + b * block_bytes, c.bytes.data() + b * block_bytes, block_bytes) == 0;
    }
    EXPECT_LE(ours_total, 1.002 * ggml_total);
    // Q2_K, Q3_K, IQ4_NL and IQ4_XS follow ggml's searches step for step: every block is ggml's, byte for byte
    if (type == GgmlType::Q2_K || type == GgmlType::Q3_K || type == GgmlType::IQ4_NL || type == GgmlType::IQ4_XS) {
        EXPECT_EQ(same_blocks, c.input.size() / kQuantBlockK) << "super-blocks that differ from ggml's bytes";
    }
    for (size_t i = 64; i < 96; ++i) EXPECT_EQ(decoded[i], 0.0f) << "the all-zero sub-block, value " << i;
    std::printf("%s: squared error %.6g (ggml %.6g, ratio %.4f); %zu of %zu super-blocks bit-identical\n", GetParam(),
                ours_total, ggml_total, ours_total / ggml_total, same_blocks, c.input.size() / kQuantBlockK);
}

// Weights beyond fp16's range make the scales overflow (as in ggml: the values are lost), but encoding them stays
// defined behaviour (no float-to-int conversion out of range: the sanitizer build checks) and writes whole blocks.
TEST(PresetEncoders, HugeWeightsEncodeWithoutUndefinedBehaviour) {
    std::vector<float> x(512);
    for (size_t i = 0; i < x.size(); ++i) x[i] = (i % 3 == 0 ? -1.0f : 1.0f) * (i % 7 == 0 ? 3e38f : 1e30f);
    for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K,
                          GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_NL, GgmlType::IQ4_XS}) {
        std::vector<uint8_t> q(ggml_row_bytes(type, x.size()));
        quantize_row_ref(type, x.data(), q.data(), x.size());
        std::vector<float> y(x.size());
        dequantize_row(type, q.data(), y.data(), y.size());
    }
}

INSTANTIATE_TEST_SUITE_P(KQuants, KQuantVsGgml, ::testing::Values("Q4_K", "Q5_K", "Q6_K", "Q2_K", "Q3_K", "IQ4_NL", "IQ4_XS"));

// x encoded as `type` twice (the two must be the same bytes), then decoded.
std::vector<float> encode_twice_and_decode(GgmlType type, const std::vector<float>& x) {
    std::vector<uint8_t> a(ggml_row_bytes(type, x.size())), b(a.size());
    quantize_row_ref(type, x.data(), a.data(), x.size());
    quantize_row_ref(type, x.data(), b.data(), x.size());
    EXPECT_EQ(a, b) << ggml_type_name(type) << ": encoding twice gave other bytes";
    std::vector<float> y(x.size());
    dequantize_row(type, a.data(), y.data(), y.size());
    return y;
}

// Random rows of every preset type's shapes of data: the encoding decodes to finite values close to the input (the
// bounds are each type's step: max |x| / levels per sub-block, with margin), and encoding twice gives the same bytes.
TEST(PresetEncoders, RoundTripIsCloseAndDeterministic) {
    std::mt19937 rng(5);
    for (GgmlType type : {GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
        for (float spread : {1e-3f, 1.0f, 300.0f}) {
            std::normal_distribution<float> nd(0.0f, spread);
            std::vector<float> x(2048);
            for (auto& v : x) v = nd(rng);
            if (spread == 1.0f) for (size_t i = 0; i < x.size(); i += 97) x[i] *= 20.0f; // outliers
            const std::vector<float> y = encode_twice_and_decode(type, x);
            const int levels = type == GgmlType::Q4_K ? 15 : type == GgmlType::Q6_K ? 63 : 31;
            const size_t group = type == GgmlType::Q6_K ? 16 : 32;
            const bool is_k_quant = ggml_type_traits(static_cast<uint32_t>(type))->block_size == kQuantBlockK;
            auto range = [&](size_t begin, size_t end) {
                float lo = 0.0f, hi = 0.0f;
                for (size_t i = begin; i < end; ++i) { lo = std::min(lo, x[i]); hi = std::max(hi, x[i]); }
                return hi - lo;
            };
            for (size_t g = 0; g < x.size(); g += group) {
                // Q5_1 rounds to the nearest of its grid: half a step of the block's range. Q5_0 too, except that
                // its grid ends at +15/16 of the largest magnitude when that is negative: up to 2 steps. The K-quants
                // fit each sub-block by weighted least squares (the largest weights may be clipped: a step), and
                // round its scale and min to 6 bits (Q6_K: 8) of the super-block's largest: a rounding of up to
                // 1/126 of the super-block's range, each.
                const float step = range(g, g + group) / levels;
                const size_t super = g - g % kQuantBlockK;
                const float bound = is_k_quant ? 1.5f * step + 2.2f * range(super, super + kQuantBlockK) / 126.0f
                                               : (type == GgmlType::Q5_0 ? 2.05f : 0.55f) * step;
                for (size_t i = g; i < g + group; ++i) {
                    ASSERT_TRUE(std::isfinite(y[i]));
                    ASSERT_LE(std::fabs(y[i] - x[i]), bound + 1e-6f * spread)
                        << ggml_type_name(type) << " spread " << spread << " value " << i << ": " << x[i] << " -> " << y[i];
                }
            }
        }
    }
}

// The 2- to 4-bit types that follow ggml's searches (Q2_K, Q3_K, IQ4_NL, IQ4_XS; their bytes are ggml's on the oracle
// input, KQuantVsGgml) on Gaussian rows of three scales with outliers: encoding twice gives the same bytes, every value
// decodes finite, and the relative RMS error stays under each type's bound (measured 2026-12-07 at 2048 values: Q2_K
// 0.33-0.35, Q3_K 0.18-0.20, IQ4_NL 0.106-0.116, IQ4_XS 0.110-0.116, about what 4, 8 and 16 levels give a Gaussian;
// the bounds allow a quarter more). A clipped or misplaced scale shows as an error of order 1.
TEST(PresetEncoders, LowBitTypesRoundTripCloseAndDeterministic) {
    std::mt19937 rng(9);
    const std::pair<GgmlType, double> types[] = {{GgmlType::Q2_K, 0.44}, {GgmlType::Q3_K, 0.25}, {GgmlType::IQ4_NL, 0.145}, {GgmlType::IQ4_XS, 0.145}};
    for (const auto& [type, bound] : types)
        for (float spread : {1e-3f, 1.0f, 300.0f}) {
            std::normal_distribution<float> nd(0.0f, spread);
            std::vector<float> x(2048);
            for (auto& v : x) v = nd(rng);
            for (size_t i = 0; i < x.size(); i += 97) x[i] *= 8.0f; // outliers
            const std::vector<float> y = encode_twice_and_decode(type, x);
            double err = 0.0, norm = 0.0;
            for (size_t i = 0; i < x.size(); ++i) {
                ASSERT_TRUE(std::isfinite(y[i])) << ggml_type_name(type) << " value " << i;
                err += (static_cast<double>(y[i]) - x[i]) * (static_cast<double>(y[i]) - x[i]);
                norm += static_cast<double>(x[i]) * x[i];
            }
            const double rel = std::sqrt(err / norm);
            std::printf("%s spread %g: relative RMS error %.4f\n", ggml_type_name(type), spread, rel);
            EXPECT_LT(rel, bound) << ggml_type_name(type) << " spread " << spread;
        }
}

TEST(Fp16, EveryHalfRoundTrips) {
    for (uint32_t h = 0; h < 0x10000; ++h) {
        const float f = fp16_to_fp32(static_cast<uint16_t>(h));
        if (std::isnan(f)) continue;
        ASSERT_EQ(fp32_to_fp16(f), h) << std::hex << h;
    }
}

#if defined(__F16C__)
// The hardware converter is an independent reference for rounding (nearest even, subnormals, overflow).
TEST(Fp16, RoundingMatchesF16CInstructions) {
    std::mt19937 rng(7);
    std::uniform_int_distribution<uint32_t> bits;
    for (int i = 0; i < 2'000'000; ++i) {
        uint32_t u = bits(rng);
        if (i % 3 == 0) u = (u & 0x807fffff) | ((100 + (u % 50)) << 23); // concentrate on the half range
        float f;
        std::memcpy(&f, &u, 4);
        if (std::isnan(f)) continue;
        ASSERT_EQ(fp32_to_fp16(f), _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT)) << f;
        const uint16_t h = static_cast<uint16_t>(u);
        const float hf = fp16_to_fp32(h);
        if (!std::isnan(hf)) {
            const float hw = _cvtsh_ss(h);
            ASSERT_EQ(std::memcmp(&hf, &hw, 4), 0) << std::hex << h;
        }
    }
}
#endif

TEST(Bf16, RoundsToNearestEven) {
    EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
    // 1 + 2^-8 is exactly halfway between two bf16 values: ties to the even mantissa (1.0)
    EXPECT_EQ(fp32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    EXPECT_EQ(fp32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(NAN))));
    EXPECT_EQ(bf16_to_fp32(0xc000), -2.0f);
}

} // namespace
