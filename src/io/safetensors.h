#pragma once
// safetensors reader (huggingface/safetensors): single files and sharded checkpoints
// (model.safetensors.index.json). Files are memory-mapped; the header is validated like the reference
// implementation (size caps, dtype/shape/offset consistency, no overlaps or holes, no duplicate keys).
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/mapped_file.h"

namespace winnow::io {

enum class StDtype { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2 };
const char* to_string(StDtype d);
size_t dtype_size(StDtype d);

struct StTensor {
    std::string name;
    StDtype dtype = StDtype::F32;
    std::vector<uint64_t> shape; // row-major, PyTorch order
    uint64_t nbytes = 0;
    const uint8_t* data = nullptr;
    const std::string* file = nullptr; // the shard that holds it
    uint64_t n_elements() const {
        uint64_t n = 1;
        for (auto d : shape) n *= d;
        return n;
    }
};

class SafetensorsFile {
public:
    static std::unique_ptr<SafetensorsFile> open(const std::string& path);
    const std::string& path() const { return file_->path(); }
    const std::map<std::string, StTensor>& tensors() const { return tensors_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }

private:
    explicit SafetensorsFile(std::unique_ptr<MappedFile> f) : file_(std::move(f)) {}
    void parse();
    std::unique_ptr<MappedFile> file_;
    std::map<std::string, StTensor> tensors_;
    std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint directory (or a single .safetensors file), across shards.
class SafetensorsModel {
public:
    // `path` is a .safetensors file, or a directory holding model.safetensors or model.safetensors.index.json.
    static std::unique_ptr<SafetensorsModel> open(const std::string& path);
    const StTensor* find(const std::string& name) const;
    const std::map<std::string, const StTensor*>& tensors() const { return index_; }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    std::vector<std::unique_ptr<SafetensorsFile>> shards_;
    std::map<std::string, const StTensor*> index_;
};

} // namespace winnow::io
