#pragma once
// Test helper: builds GGUF byte images in memory, field by field, so a test can write a valid file or put any
// single field out of range (a wrong magic, an absurd count, a bad type id, a misaligned offset, ...).
//
// Layout reminder (ggml docs/gguf.md, all little-endian):
//   header:       magic[4] "GGUF", u32 version, u64 tensor_count, u64 kv_count
//   metadata:     kv_count  x { string key, u32 value_type, value }
//   tensor infos: tensor_count x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
//   padding to the alignment (general.alignment, default 32), then the data section.
// A string is a u64 byte length followed by the bytes (no NUL).
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace winnow::test {

// GGUF metadata value type ids (gguf_type).
namespace gguf_type {
constexpr uint32_t u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8, array = 9,
                   u64 = 10, i64 = 11, f64 = 12;
}

// ggml tensor type ids used by the tests.
namespace ggml_type_id {
constexpr uint32_t F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 8, F64 = 28;
}

class GgufWriter {
public:
    std::vector<uint8_t> bytes;

    size_t size() const { return bytes.size(); }

    // --- raw fields --------------------------------------------------------------------------------------
    GgufWriter& raw(const void* p, size_t n) {
        const auto* b = static_cast<const uint8_t*>(p);
        bytes.insert(bytes.end(), b, b + n);
        return *this;
    }
    GgufWriter& raw(const std::vector<uint8_t>& v) { return raw(v.data(), v.size()); }
    template <typename T>
    GgufWriter& put(T v) {
        static_assert(std::is_trivially_copyable_v<T>);
        return raw(&v, sizeof v);
    }
    GgufWriter& u8(uint8_t v) { return put(v); }
    GgufWriter& u32(uint32_t v) { return put(v); }
    GgufWriter& u64(uint64_t v) { return put(v); }
    // A GGUF string: u64 length, then the bytes.
    GgufWriter& str(const std::string& s) { u64(s.size()); return raw(s.data(), s.size()); }
    // A string whose length field says `claimed_length` but only `s` follows (for lengths past EOF).
    GgufWriter& str_with_length(uint64_t claimed_length, const std::string& s) { u64(claimed_length); return raw(s.data(), s.size()); }
    GgufWriter& zeros(size_t n) { bytes.resize(bytes.size() + n, 0); return *this; }
    // Pads with zeros to the next multiple of `alignment`.
    GgufWriter& align(size_t alignment = 32) {
        while (bytes.size() % alignment != 0) bytes.push_back(0);
        return *this;
    }

    // --- header ------------------------------------------------------------------------------------------
    GgufWriter& header(uint64_t tensor_count, uint64_t kv_count, uint32_t version = 3, const char* magic = "GGUF") {
        raw(magic, 4);
        u32(version);
        u64(tensor_count);
        return u64(kv_count);
    }

    // --- metadata: key, u32 type, value -----------------------------------------------------------------
    GgufWriter& key(const std::string& k, uint32_t type) { str(k); return u32(type); }
    GgufWriter& kv_u8(const std::string& k, uint8_t v) { key(k, gguf_type::u8); return put(v); }
    GgufWriter& kv_i8(const std::string& k, int8_t v) { key(k, gguf_type::i8); return put(v); }
    GgufWriter& kv_u16(const std::string& k, uint16_t v) { key(k, gguf_type::u16); return put(v); }
    GgufWriter& kv_i16(const std::string& k, int16_t v) { key(k, gguf_type::i16); return put(v); }
    GgufWriter& kv_u32(const std::string& k, uint32_t v) { key(k, gguf_type::u32); return put(v); }
    GgufWriter& kv_i32(const std::string& k, int32_t v) { key(k, gguf_type::i32); return put(v); }
    GgufWriter& kv_u64(const std::string& k, uint64_t v) { key(k, gguf_type::u64); return put(v); }
    GgufWriter& kv_i64(const std::string& k, int64_t v) { key(k, gguf_type::i64); return put(v); }
    GgufWriter& kv_f32(const std::string& k, float v) { key(k, gguf_type::f32); return put(v); }
    GgufWriter& kv_f64(const std::string& k, double v) { key(k, gguf_type::f64); return put(v); }
    // The raw byte lets a test write an invalid bool (2).
    GgufWriter& kv_bool(const std::string& k, uint8_t v) { key(k, gguf_type::boolean); return put(v); }
    GgufWriter& kv_str(const std::string& k, const std::string& v) { key(k, gguf_type::string); return str(v); }
    // Array header only: key, type array, element type, count. The elements follow with put()/str().
    GgufWriter& kv_array_header(const std::string& k, uint32_t elem_type, uint64_t count) {
        key(k, gguf_type::array);
        u32(elem_type);
        return u64(count);
    }
    GgufWriter& kv_str_array(const std::string& k, const std::vector<std::string>& v) {
        kv_array_header(k, gguf_type::string, v.size());
        for (const auto& s : v) str(s);
        return *this;
    }
    GgufWriter& kv_i32_array(const std::string& k, const std::vector<int32_t>& v) {
        kv_array_header(k, gguf_type::i32, v.size());
        for (auto x : v) put(x);
        return *this;
    }
    GgufWriter& kv_f32_array(const std::string& k, const std::vector<float>& v) {
        kv_array_header(k, gguf_type::f32, v.size());
        for (auto x : v) put(x);
        return *this;
    }

    // --- tensor infos ------------------------------------------------------------------------------------
    // `ne` is written as given (its size is n_dims), so tests can write 0 or 5 dimensions.
    GgufWriter& tensor_info(const std::string& name, const std::vector<uint64_t>& ne, uint32_t type, uint64_t offset) {
        str(name);
        u32(static_cast<uint32_t>(ne.size()));
        for (auto d : ne) u64(d);
        u32(type);
        return u64(offset);
    }

    // --- output ------------------------------------------------------------------------------------------
    // Writes the whole image, or only its first `prefix` bytes.
    const GgufWriter& write(const std::filesystem::path& path, size_t prefix = SIZE_MAX) const {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        if (!out) throw std::runtime_error("gguf_writer: cannot create " + path.string());
        out.write(reinterpret_cast<const char*>(bytes.data()),
                  static_cast<std::streamsize>(prefix < bytes.size() ? prefix : bytes.size()));
        if (!out) throw std::runtime_error("gguf_writer: cannot write " + path.string());
        return *this;
    }
};

} // namespace winnow::test
