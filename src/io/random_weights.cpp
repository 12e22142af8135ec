#include "io/random_weights.h"

#include <cstring>
#include <random>
#include <string>

#include "io/quant.h"
#include "winnow/error.h"

namespace winnow {

namespace {

// A preset type's fp16 fields: byte offset in the block and the field's scale (the value is scale x U(0.5, 1.5)).
struct Field {
    int offset;
    float scale;
};
std::vector<Field> scale_fields(GgmlType type) {
    switch (type) {
    case GgmlType::Q5_0: return {{0, 3e-3f}};                 // d (q - 16)
    case GgmlType::Q5_1: return {{0, 3e-3f}, {2, -0.05f}};     // d q + m
    case GgmlType::Q4_K: return {{0, 1e-4f}, {2, 1e-4f}};      // d scale q - dmin min, 6-bit scale and min
    case GgmlType::Q5_K: return {{0, 5e-5f}, {2, 5e-5f}};
    case GgmlType::Q6_K: return {{208, 2e-5f}};                // d scale (q - 32), int8 scale; d after the quants
    case GgmlType::Q2_K: return {{80, 1e-3f}, {82, 1e-3f}};    // d (sc & 15) q - dmin (sc >> 4), after the quants
    case GgmlType::Q3_K: return {{108, 2e-4f}};                // d (s - 32) (q - 4 or q), 6-bit s; d last
    case GgmlType::IQ4_NL: return {{0, 3e-4f}};               // d value[q], values -127..113
    case GgmlType::IQ4_XS: return {{0, 2e-5f}};               // d (s - 32) value[q], 6-bit s; d first
    default: return {};
    }
}

} // namespace

std::vector<uint8_t> random_stored_weights(GgmlType type, int64_t rows, int64_t cols, uint64_t seed) {
    const auto traits = ggml_type_traits(static_cast<uint32_t>(type));
    if (!traits || !ggml_type_supported(type) || rows < 0 || cols < 0 || cols % traits->block_size != 0)
        throw Error(ErrorKind::invalid_argument, std::string("random_stored_weights: no ") + std::to_string(rows) + " x " + std::to_string(cols) + " " +
                                                     (traits ? traits->name : "unknown") + " matrix");
    const size_t row_bytes = ggml_row_bytes(type, static_cast<uint64_t>(cols));
    std::vector<uint8_t> bytes(row_bytes * static_cast<size_t>(rows));
    std::mt19937_64 rng(seed);
    if (!is_preset_type(type)) {
        // Rows read a pool of normal values from their own random offsets: drawing each value (~20 ns) would take a
        // second per 50M-weight matrix, which a benchmark of many types and shapes pays over and over.
        constexpr size_t kPool = size_t(1) << 16;
        std::normal_distribution<float> nd(0.0f, 0.05f);
        std::vector<float> pool(kPool + static_cast<size_t>(cols));
        for (size_t i = 0; i < kPool; ++i) pool[i] = nd(rng);
        for (size_t i = kPool; i < pool.size(); ++i) pool[i] = pool[i % kPool];
        for (int64_t r = 0; r < rows; ++r)
            quantize_row_ref(type, pool.data() + rng() % kPool, bytes.data() + static_cast<size_t>(r) * row_bytes, static_cast<size_t>(cols));
        return bytes;
    }
    for (auto& b : bytes) b = static_cast<uint8_t>(rng());
    std::uniform_real_distribution<float> u(0.5f, 1.5f);
    for (size_t block = 0; block < bytes.size() / traits->type_size; ++block)
        for (const Field& f : scale_fields(type)) {
            const uint16_t h = fp32_to_fp16(f.scale * u(rng));
            std::memcpy(&bytes[block * traits->type_size + f.offset], &h, 2);
        }
    return bytes;
}

} // namespace winnow
