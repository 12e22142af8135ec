#pragma once
// A loaded model: its configuration and canonical weights, backed by the memory-mapped source file(s).
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "model/weights.h"

namespace winnow {

namespace io { class GgufFile; class SafetensorsModel; }

enum class ModelFormat { gguf, safetensors };

class LoadedModel {
public:
    // `path`: a .gguf file, a .safetensors file next to a config.json, or an HF checkpoint directory.
    static std::unique_ptr<LoadedModel> load(const std::string& path);
    ~LoadedModel();

    const ModelConfig& config() const { return config_; }
    const Weights& weights() const { return weights_; }
    ModelFormat format() const { return format_; }
    const std::string& path() const { return path_; }
    // The GGUF file when the model came from one (tokenizer metadata lives there), else nullptr.
    const io::GgufFile* gguf() const { return gguf_.get(); }
    // Number of matrices per stored type, for `winnow info`.
    std::map<std::string, int> matrix_type_counts() const;
    // Bytes of weight matrices read per decoded token (every matrix once; the embedding row is negligible), as stored
    // in the file, or with the matrices whose type as_f16 names counted as F16 (as place_weights places them on a
    // backend that lacks their type: placed_as_f16 in backend/device_weights.h).
    uint64_t matrix_bytes_per_token(const std::function<bool(GgmlType)>& as_f16 = {}) const;
    // Whether any weight matrix (the embedding included) has a type that `pred` accepts.
    bool has_matrix_type(const std::function<bool(GgmlType)>& pred) const;

private:
    LoadedModel() = default;
    friend struct GgufLoader;
    friend struct SafetensorsLoader;

    std::string path_;
    ModelFormat format_ = ModelFormat::gguf;
    ModelConfig config_;
    Weights weights_;
    std::unique_ptr<io::GgufFile> gguf_;
    std::unique_ptr<io::SafetensorsModel> safetensors_;
    std::vector<std::vector<uint8_t>> owned_; // buffers for tensors that had to be re-laid-out at load
};

#ifndef WINNOW_PUBLIC_API_IMPL
// The tests' older name for LoadedModel (the public API owns winnow::Model; see include/winnow/winnow.h).
using Model = LoadedModel;
#endif

} // namespace winnow
