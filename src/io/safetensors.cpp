#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "io/json_file.h"
#include "winnow/error.h"

namespace winnow::io {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000; // the reference implementation's cap

[[noreturn]] void fail(const std::string& path, const std::string& field, const std::string& what) {
    throw Error(ErrorKind::format, "safetensors file '" + path + "': " + field + ": " + what);
}

bool parse_dtype(const std::string& s, StDtype* out) {
    static const std::map<std::string, StDtype> names = {
        {"F64", StDtype::F64}, {"F32", StDtype::F32}, {"F16", StDtype::F16}, {"BF16", StDtype::BF16},
        {"I64", StDtype::I64}, {"I32", StDtype::I32}, {"I16", StDtype::I16}, {"I8", StDtype::I8},
        {"U8", StDtype::U8}, {"BOOL", StDtype::BOOL}, {"F8_E4M3", StDtype::F8_E4M3}, {"F8_E5M2", StDtype::F8_E5M2}};
    auto it = names.find(s);
    if (it == names.end()) return false;
    *out = it->second;
    return true;
}

// The header and the index: duplicate keys refused (nlohmann would silently keep the last one), and the depth and
// memory limits of io::parse_json_bounded.
json parse_json_unique_keys(std::string_view text, const std::string& path, const std::string& field) {
    return io::parse_json_bounded(text, "safetensors file '" + path + "': " + field, {.unique_keys = true});
}

} // namespace

const char* to_string(StDtype d) {
    switch (d) {
    case StDtype::F64: return "F64"; case StDtype::F32: return "F32"; case StDtype::F16: return "F16";
    case StDtype::BF16: return "BF16"; case StDtype::I64: return "I64"; case StDtype::I32: return "I32";
    case StDtype::I16: return "I16"; case StDtype::I8: return "I8"; case StDtype::U8: return "U8";
    case StDtype::BOOL: return "BOOL"; case StDtype::F8_E4M3: return "F8_E4M3"; case StDtype::F8_E5M2: return "F8_E5M2";
    }
    return "?";
}

size_t dtype_size(StDtype d) {
    switch (d) {
    case StDtype::F64: case StDtype::I64: return 8;
    case StDtype::F32: case StDtype::I32: return 4;
    case StDtype::F16: case StDtype::BF16: case StDtype::I16: return 2;
    default: return 1;
    }
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
    std::unique_ptr<SafetensorsFile> f(new SafetensorsFile(std::make_unique<MappedFile>(path)));
    f->parse();
    return f;
}

void SafetensorsFile::parse() {
    const std::string& p = file_->path();
    const uint64_t size = file_->size();
    if (size < 8) fail(p, "header length", "file is " + std::to_string(size) + " bytes, too short for the 8-byte header length");
    uint64_t n;
    std::memcpy(&n, file_->data(), 8);
    if (n > kMaxHeaderBytes) fail(p, "header length", std::to_string(n) + " exceeds the 100 MB limit");
    if (n < 2) fail(p, "header length", std::to_string(n) + " is too small for a JSON object");
    if (n > size - 8) fail(p, "header length", std::to_string(n) + " runs past the end of the " + std::to_string(size) + "-byte file");
    const std::string_view text(reinterpret_cast<const char*>(file_->data() + 8), n); // parsed in place, not copied
    if (text[0] != '{') fail(p, "header", "does not start with '{'");
    json header = parse_json_unique_keys(text, p, "header");
    if (!header.is_object()) fail(p, "header", "is not a JSON object");

    const uint64_t buffer_start = 8 + n;
    const uint64_t buffer_size = size - buffer_start;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;

    for (auto& [name, entry] : header.items()) {
        if (name == "__metadata__") {
            if (!entry.is_object()) fail(p, "__metadata__", "is not an object");
            for (auto& [k, v] : entry.items()) {
                if (!v.is_string()) fail(p, "__metadata__." + k, "value is not a string");
                metadata_[k] = v.get<std::string>();
            }
            continue;
        }
        const std::string field = "tensor '" + name + "'";
        if (!entry.is_object()) fail(p, field, "entry is not an object");
        if (!entry.contains("dtype") || !entry["dtype"].is_string()) fail(p, field, "missing or non-string dtype");
        if (!entry.contains("shape") || !entry["shape"].is_array()) fail(p, field, "missing or non-array shape");
        if (!entry.contains("data_offsets") || !entry["data_offsets"].is_array() || entry["data_offsets"].size() != 2)
            fail(p, field, "data_offsets must be an array [begin, end]");
        StTensor t;
        t.name = name;
        t.file = &file_->path();
        if (!parse_dtype(entry["dtype"].get<std::string>(), &t.dtype))
            fail(p, field, "unknown dtype '" + entry["dtype"].get<std::string>() + "'");
        uint64_t numel = 1;
        for (auto& d : entry["shape"]) {
            if (!d.is_number_unsigned()) fail(p, field, "shape entries must be non-negative integers");
            const uint64_t v = d.get<uint64_t>();
            if (__builtin_mul_overflow(numel, v, &numel)) fail(p, field, "shape overflows 64 bits");
            t.shape.push_back(v);
        }
        uint64_t nbytes;
        if (__builtin_mul_overflow(numel, dtype_size(t.dtype), &nbytes)) fail(p, field, "byte size overflows 64 bits");
        auto& off = entry["data_offsets"];
        if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned()) fail(p, field, "data_offsets must be non-negative integers");
        const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
        if (end < begin) fail(p, field, "data_offsets end " + std::to_string(end) + " < begin " + std::to_string(begin));
        if (end - begin != nbytes)
            fail(p, field, "data_offsets span " + std::to_string(end - begin) + " bytes but dtype and shape need " + std::to_string(nbytes));
        if (end > buffer_size)
            fail(p, field, "data [" + std::to_string(begin) + ", " + std::to_string(end) + ") lies outside the " +
                               std::to_string(buffer_size) + "-byte data buffer (truncated?)");
        t.nbytes = nbytes;
        t.data = file_->data() + buffer_start + begin;
        ranges.emplace_back(begin, end);
        tensors_.emplace(name, std::move(t));
    }

    // The buffer must be covered exactly: no overlaps, no holes, nothing trailing.
    std::sort(ranges.begin(), ranges.end());
    uint64_t expected = 0;
    for (auto& [b, e] : ranges) {
        if (b != expected)
            fail(p, "data_offsets", b < expected ? "tensors overlap at byte " + std::to_string(b) : "hole in the data buffer at byte " + std::to_string(expected));
        expected = e;
    }
    if (expected != buffer_size)
        fail(p, "data buffer", "tensors cover " + std::to_string(expected) + " bytes but the buffer holds " + std::to_string(buffer_size));
}

std::unique_ptr<SafetensorsModel> SafetensorsModel::open(const std::string& path) {
    auto m = std::make_unique<SafetensorsModel>();
    m->path_ = path;
    std::vector<std::string> files;
    std::map<std::string, std::string> weight_map;
    std::error_code ec; // the non-throwing overloads: an unreachable path becomes our io error, not filesystem_error
    if (fs::is_directory(path, ec)) {
        const fs::path index = fs::path(path) / "model.safetensors.index.json";
        if (fs::exists(index, ec)) {
            const json j = io::read_json_file(index, {.unique_keys = true}, "safetensors file '" + index.string() + "': index");
            if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
                fail(index.string(), "weight_map", "missing or not an object");
            std::set<std::string> shard_names;
            for (auto& [name, file] : j["weight_map"].items()) {
                if (!file.is_string()) fail(index.string(), "weight_map." + name, "is not a file name");
                const std::string shard = file.get<std::string>();
                if (shard.find('/') != std::string::npos || shard.empty() || shard == "." || shard == "..")
                    fail(index.string(), "weight_map." + name, "shard name '" + shard + "' must be a plain file name");
                weight_map[name] = shard;
                shard_names.insert(shard);
            }
            if (shard_names.empty()) fail(index.string(), "weight_map", "names no tensors");
            // a shard that is a symlink must still resolve inside the checkpoint directory
            const fs::path dir = fs::weakly_canonical(fs::path(path), ec);
            for (auto& s : shard_names) {
                const fs::path shard = fs::path(path) / s;
                const fs::path real = fs::weakly_canonical(shard, ec);
                if (!ec && fs::exists(shard, ec) && real.parent_path() != dir)
                    fail(index.string(), "weight_map", "shard '" + s + "' resolves outside the checkpoint directory (" + real.string() + ")");
                files.push_back(shard.string());
            }
        } else if (fs::exists(fs::path(path) / "model.safetensors", ec)) {
            files.push_back((fs::path(path) / "model.safetensors").string());
        } else {
            throw Error(ErrorKind::io, "'" + path + "' holds neither model.safetensors nor model.safetensors.index.json");
        }
    } else {
        files.push_back(path);
    }
    for (auto& f : files) {
        m->shards_.push_back(SafetensorsFile::open(f));
        for (auto& [name, t] : m->shards_.back()->tensors()) {
            if (m->index_.count(name)) fail(f, "tensor '" + name + "'", "also present in another shard");
            m->index_[name] = &t;
        }
    }
    for (auto& [name, shard] : weight_map) {
        auto it = m->index_.find(name);
        if (it == m->index_.end() || fs::path(*it->second->file).filename() != shard)
            fail((fs::path(path) / shard).string(), "tensor '" + name + "'", "listed in the index but not found in this shard");
    }
    return m;
}

const StTensor* SafetensorsModel::find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : it->second;
}

} // namespace winnow::io
