#pragma once
// Writes GGUF v3 files (ggml docs/gguf.md): metadata values (the reader's GgufValue, so a file's metadata can be
// copied), then tensors of any ggml type, each 32-byte aligned. The file is written to PATH.tmp and renamed over PATH
// only when complete, so a crash never leaves a half-written file under the final name.
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "io/gguf.h"

namespace winnow::io {

class GgufWriter {
public:
    void set(const std::string& key, const GgufValue& value); // replaces an existing key
    void set_string(const std::string& key, const std::string& v);
    void set_u32(const std::string& key, uint32_t v);
    void set_u64(const std::string& key, uint64_t v);
    void set_f64(const std::string& key, double v);
    // An F32 tensor of shape ne (ne[0] contiguous, as GGUF stores it); `data` must stay valid until write().
    void add_tensor(const std::string& name, const float* data, std::vector<uint64_t> ne);
    // A tensor of `type` whose bytes `produce` returns when write() reaches it, so that a converter holds one
    // tensor at a time, not the whole model. It must return ggml_row_bytes(type, ne[0]) * (ne[1] * ne[2] * ...)
    // bytes; write() throws winnow::Error otherwise. Exceptions from `produce` pass through write(); the
    // final file is then left untouched and the temporary one removed.
    using TensorBytes = std::function<std::vector<uint8_t>()>;
    void add_tensor(const std::string& name, GgmlType type, std::vector<uint64_t> ne, TensorBytes produce);
    void write(const std::string& path) const; // throws winnow::Error (io) naming the file

private:
    void write_to(const std::string& tmp) const;

    std::vector<std::pair<std::string, GgufValue>> kv_;
    struct Tensor {
        std::string name;
        GgmlType type;
        std::vector<uint64_t> ne;
        const float* f32 = nullptr; // the F32 tensors' data, else
        TensorBytes produce;        // the other tensors' bytes
        uint64_t bytes() const;
    };
    std::vector<Tensor> tensors_;
};

} // namespace winnow::io
