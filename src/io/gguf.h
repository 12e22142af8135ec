#pragma once
// GGUF v2/v3 reader (ggml docs/gguf.md). The whole file is memory-mapped; tensor data is used in place.
// Every count, length, shape and offset is checked against the file before use, so a truncated or hostile
// file gives a winnow::Error naming the file and the field instead of a crash or an out-of-bounds read.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/ggml_type.h"
#include "io/mapped_file.h"

namespace winnow::io {

enum class GgufValueType : uint32_t {
    u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8, array = 9,
    u64 = 10, i64 = 11, f64 = 12,
};
const char* to_string(GgufValueType t);

struct GgufValue {
    GgufValueType type = GgufValueType::u8;
    // exactly one of these is meaningful, chosen by `type`
    uint64_t u = 0;   // unsigned integers and bool
    int64_t i = 0;    // signed integers
    double f = 0;     // f32, f64
    std::string s;    // string
    GgufValueType elem_type = GgufValueType::u8; // arrays
    std::vector<GgufValue> elems;                // arrays
};

// The value as an unsigned integer: any integer type holding a non-negative number; nullopt for anything else.
std::optional<uint64_t> unsigned_value(const GgufValue& v);

struct GgufTensorInfo {
    std::string name;
    GgmlType type = GgmlType::F32;
    uint32_t n_dims = 0;
    uint64_t ne[4] = {1, 1, 1, 1}; // ne[0] is the contiguous dimension (reverse of the PyTorch shape)
    uint64_t offset = 0;           // relative to the data section
    uint64_t nbytes = 0;
    const uint8_t* data = nullptr;
    uint64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

class GgufFile {
public:
    // Maps and validates `path`; throws winnow::Error on any problem.
    static std::unique_ptr<GgufFile> open(const std::string& path);

    const std::string& path() const { return file_->path(); }
    uint32_t version() const { return version_; }
    uint32_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }

    const std::map<std::string, GgufValue>& metadata() const { return kv_; }
    const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
    const GgufValue* find(const std::string& key) const;
    const GgufTensorInfo* find_tensor(const std::string& name) const;

    // Typed metadata accessors: integers of any width convert when the value fits; a wrong type or a missing
    // required key throws an Error naming the file and the key.
    std::optional<uint64_t> get_uint(const std::string& key) const; // throws where the value is not a non-negative integer
    std::optional<double> get_float(const std::string& key) const;
    std::optional<bool> get_bool(const std::string& key) const;
    std::optional<std::string> get_string(const std::string& key) const;
    uint64_t require_uint(const std::string& key) const;
    double require_float(const std::string& key) const;
    std::string require_string(const std::string& key) const;
    std::vector<std::string> get_string_array(const std::string& key) const;
    std::vector<double> get_float_array(const std::string& key) const;
    std::vector<int64_t> get_int_array(const std::string& key) const;

private:
    explicit GgufFile(std::unique_ptr<MappedFile> file) : file_(std::move(file)) {}
    void parse();
    [[noreturn]] void fail_key(const std::string& key, const std::string& what) const;

    std::unique_ptr<MappedFile> file_;
    uint32_t version_ = 0;
    uint32_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    std::map<std::string, GgufValue> kv_;
    std::vector<GgufTensorInfo> tensors_;
    std::map<std::string, size_t> tensor_index_;
};

} // namespace winnow::io
