#pragma once
// Builds GGUF byte images field by field so tests can write valid files and corrupt any single field.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace winnow::test {

class GgufBuilder {
public:
    std::vector<uint8_t> bytes;

    GgufBuilder& raw(const void* p, size_t n) {
        const auto* b = static_cast<const uint8_t*>(p);
        bytes.insert(bytes.end(), b, b + n);
        return *this;
    }
    template <typename T>
    GgufBuilder& put(T v) { return raw(&v, sizeof v); }
    GgufBuilder& str(const std::string& s) { put<uint64_t>(s.size()); return raw(s.data(), s.size()); }

    // header: magic, version, tensor count, kv count
    GgufBuilder& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3, const char* magic = "GGUF") {
        raw(magic, 4);
        put<uint32_t>(version);
        put<uint64_t>(n_tensors);
        return put<uint64_t>(n_kv);
    }
    // metadata entries
    GgufBuilder& kv_u32(const std::string& k, uint32_t v) { str(k); put<uint32_t>(4); return put(v); }
    GgufBuilder& kv_u64(const std::string& k, uint64_t v) { str(k); put<uint32_t>(10); return put(v); }
    GgufBuilder& kv_f32(const std::string& k, float v) { str(k); put<uint32_t>(6); return put(v); }
    GgufBuilder& kv_str(const std::string& k, const std::string& v) { str(k); put<uint32_t>(8); return str(v); }
    GgufBuilder& kv_bool(const std::string& k, uint8_t v) { str(k); put<uint32_t>(7); return put(v); }
    GgufBuilder& kv_i32_array(const std::string& k, const std::vector<int32_t>& v) {
        str(k); put<uint32_t>(9); put<uint32_t>(5); put<uint64_t>(v.size());
        for (auto x : v) put(x);
        return *this;
    }
    GgufBuilder& kv_str_array(const std::string& k, const std::vector<std::string>& v) {
        str(k); put<uint32_t>(9); put<uint32_t>(8); put<uint64_t>(v.size());
        for (auto& x : v) str(x);
        return *this;
    }
    // tensor info: name, dims (ne), ggml type, offset
    GgufBuilder& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
        str(name);
        put<uint32_t>(static_cast<uint32_t>(ne.size()));
        for (auto d : ne) put(d);
        put(type);
        return put(offset);
    }
    GgufBuilder& align(size_t a = 32) {
        while (bytes.size() % a) bytes.push_back(0);
        return *this;
    }
    GgufBuilder& zeros(size_t n) { bytes.resize(bytes.size() + n, 0); return *this; }

    std::string write(const std::string& name) const {
        const auto dir = std::filesystem::temp_directory_path() / "winnow-gguf-tests";
        std::filesystem::create_directories(dir);
        const auto path = (dir / name).string();
        std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        return path;
    }
};

} // namespace winnow::test
