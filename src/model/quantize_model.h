#pragma once
// `winnow quantize`: writes a GGUF model again with its matrices in the types of a llama.cpp preset
// (model/quant_presets.h), as llama-quantize does: the same metadata (general.file_type and
// general.quantization_version set for the preset), the same tensors in the same order, the norms and other vectors
// as stored. One tensor is decoded and encoded at a time (its rows on all threads), so memory stays near the largest
// tensor's fp32 size; the output is written to OUT.tmp and renamed over OUT when complete.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "model/quant_presets.h"

namespace winnow {

struct QuantizeOptions {
    const QuantPreset* preset = nullptr;
    bool allow_requantize = false; // quantize a tensor that is already quantized (its decoded values)
    bool pure = false;             // every matrix in the base type (llama-quantize --pure)
    // llama-quantize's --output-tensor-type and --token-embedding-type: the type of the output matrix (output.weight,
    // or the token embedding where the model ties them) and of the token embedding; its rows must fit its blocks.
    std::optional<GgmlType> output_type, token_embedding_type;
    int threads = 0;               // 0: OpenMP's default
};

struct QuantizeSummary {
    uint64_t bytes_in = 0, bytes_out = 0;   // tensor data only
    uint64_t weights = 0;                   // elements of all tensors
    int tensors = 0, quantized = 0;         // tensors written; of them, encoded anew (the rest copied as stored)
    std::map<std::string, int> types_out;   // type name -> tensors of that type in the output
};

// Called before each tensor: index, count, name, stored type, output type.
using QuantizeProgress = std::function<void(int, int, const std::string&, GgmlType, GgmlType)>;

// Throws winnow::Error naming the file or tensor: an unreadable or non-model input, an unknown architecture field,
// a quantized tensor without allow_requantize, a type winnow cannot decode, a non-finite value in a tensor to encode.
QuantizeSummary quantize_model(const std::string& in_path, const std::string& out_path, const QuantizeOptions& options,
                               const QuantizeProgress& progress = {});

} // namespace winnow
