#pragma once
// ggml tensor element types as stored in GGUF files (ids from ggml.h) with their block geometry.
#include <cstdint>
#include <optional>
#include <string>

namespace winnow {

enum class GgmlType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
    TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};

struct GgmlTypeTraits {
    const char* name;
    uint32_t block_size; // elements per block
    uint32_t type_size;  // bytes per block
};

// Traits of a type id read from a file; nullopt for ids ggml does not define (or has retired).
std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t id);
const char* ggml_type_name(GgmlType type);
// Bytes of one row of n elements; n must be a multiple of the block size.
uint64_t ggml_row_bytes(GgmlType type, uint64_t n);
// True for the weight types winnow loads and the CPU backend computes with: F32, F16, BF16, Q8_0, Q4_0, Q4_1, and
// (through their decoded values, io/quant.h) Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS. A backend may take fewer
// (Backend::supports); place_weights converts a preset one (Q5_0 ... Q6_K) that a backend lacks to F16 at load.
bool ggml_type_supported(GgmlType type);
// Whether a type stores its values in blocks with scales (block size above 1: Q8_0, Q4_K, ...), not as plain numbers.
bool is_quantized_type(GgmlType type);
// The core types: every kernel of every backend computes with them (the CUDA step program, adaptive head and
// prefill split products included), and training writes them.
constexpr bool is_core_type(GgmlType type) {
    return type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16 || type == GgmlType::Q8_0 || type == GgmlType::Q4_0 || type == GgmlType::Q4_1;
}
// The preset types: the ones llama.cpp's presets (Q4_K_M, Q5_K_M, Q6_K, Q5_0, Q3_K_M, Q2_K, IQ4_NL, IQ4_XS, ...) add. The CPU computes
// with them everywhere; CUDA in its GEMVs, embedding lookup, fused head and dequantize, not in the step program, the
// adaptive head or the split products. io/quant_preset.cpp decodes them, io/quant_encode_preset.cpp encodes them.
constexpr bool is_preset_type(GgmlType type) {
    return type == GgmlType::Q5_0 || type == GgmlType::Q5_1 || type == GgmlType::Q2_K || type == GgmlType::Q3_K || type == GgmlType::Q4_K ||
           type == GgmlType::Q5_K || type == GgmlType::Q6_K || type == GgmlType::IQ4_NL || type == GgmlType::IQ4_XS;
}

} // namespace winnow
