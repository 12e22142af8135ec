#include "io/gguf.h"

#include <cstring>
#include <limits>
#include <set>

#include "winnow/error.h"

namespace winnow::io {

namespace {

constexpr uint64_t kMaxDims = 4;
constexpr uint64_t kMaxNameLength = 63;  // ggml's GGML_MAX_NAME is 64 including the terminating NUL
constexpr int kMaxArrayDepth = 4;
// Each array element costs ~100 bytes in memory once parsed; real vocabularies hold a few hundred thousand entries.
// A cap keeps a hostile file from turning a few hundred MB of tiny elements into tens of GB of allocations.
constexpr uint64_t kMaxArrayElements = 16u << 20;
// The parsed metadata as a whole (every value and array element is a GgufValue, strings beyond the small-string
// buffer add their length): a real model's metadata takes tens of MB (vocabulary, scores, merges); a hostile file
// could otherwise make a 12 MB array of bytes take 1.2 GB.
constexpr uint64_t kMaxMetadataBytes = 256ull << 20;

// Smallest encodings, used to bound counts by the bytes actually left in the file before allocating.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;          // empty key, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8; // empty name, n_dims, one ne, type, offset

uint64_t value_size(GgufValueType t) {
    switch (t) {
    case GgufValueType::u8: case GgufValueType::i8: case GgufValueType::boolean: return 1;
    case GgufValueType::u16: case GgufValueType::i16: return 2;
    case GgufValueType::u32: case GgufValueType::i32: case GgufValueType::f32: return 4;
    case GgufValueType::u64: case GgufValueType::i64: case GgufValueType::f64: return 8;
    case GgufValueType::string: return 8;  // at least its length
    case GgufValueType::array: return 12;  // at least its element type and count
    }
    return 0;
}

bool valid_value_type(uint32_t t) { return t <= 12; }

// Bounds-checked little-endian cursor over the mapped file.
class Cursor {
public:
    Cursor(const uint8_t* data, uint64_t size, const std::string& path) : data_(data), size_(size), path_(path) {}

    uint64_t pos() const { return pos_; }
    uint64_t remaining() const { return size_ - pos_; }

    [[noreturn]] void fail(const std::string& field, const std::string& what) const {
        throw Error(ErrorKind::format, "GGUF file '" + path_ + "': " + field + ": " + what);
    }

    template <typename T>
    T read(const std::string& field) {
        if (remaining() < sizeof(T))
            fail(field, "truncated (needs " + std::to_string(sizeof(T)) + " bytes at offset " + std::to_string(pos_) +
                            ", file has " + std::to_string(size_) + ")");
        T v;
        std::memcpy(&v, data_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }

    std::string read_string(const std::string& field) {
        const uint64_t n = read<uint64_t>(field + " length");
        if (n > remaining())
            fail(field, "string length " + std::to_string(n) + " exceeds the " + std::to_string(remaining()) +
                            " bytes left in the file");
        if (n > 15) charge(field, n + 1);
        std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
        pos_ += n;
        return s;
    }

    // Counts `bytes` of memory the parsed header takes, refusing the file past kMaxMetadataBytes.
    void charge(const std::string& field, uint64_t bytes) {
        memory_ += bytes;
        if (memory_ > kMaxMetadataBytes)
            fail(field, "the metadata and tensor list would take more than winnow's limit of " + std::to_string(kMaxMetadataBytes >> 20) +
                            " MiB in memory once parsed");
    }

private:
    const uint8_t* data_;
    uint64_t size_;
    uint64_t pos_ = 0;
    uint64_t memory_ = 0;
    const std::string& path_;
};

GgufValue read_value(Cursor& c, GgufValueType type, const std::string& field, int depth) {
    GgufValue v;
    v.type = type;
    switch (type) {
    case GgufValueType::u8: v.u = c.read<uint8_t>(field); break;
    case GgufValueType::i8: v.i = c.read<int8_t>(field); break;
    case GgufValueType::u16: v.u = c.read<uint16_t>(field); break;
    case GgufValueType::i16: v.i = c.read<int16_t>(field); break;
    case GgufValueType::u32: v.u = c.read<uint32_t>(field); break;
    case GgufValueType::i32: v.i = c.read<int32_t>(field); break;
    case GgufValueType::u64: v.u = c.read<uint64_t>(field); break;
    case GgufValueType::i64: v.i = c.read<int64_t>(field); break;
    case GgufValueType::f32: v.f = c.read<float>(field); break;
    case GgufValueType::f64: v.f = c.read<double>(field); break;
    case GgufValueType::boolean: {
        const uint8_t b = c.read<uint8_t>(field);
        if (b > 1) c.fail(field, "bool value " + std::to_string(b) + " is neither 0 nor 1");
        v.u = b;
        break;
    }
    case GgufValueType::string: v.s = c.read_string(field); break;
    case GgufValueType::array: {
        if (depth >= kMaxArrayDepth) c.fail(field, "arrays nested deeper than " + std::to_string(kMaxArrayDepth));
        const uint32_t et = c.read<uint32_t>(field + " element type");
        if (!valid_value_type(et)) c.fail(field, "unknown array element type " + std::to_string(et));
        v.elem_type = static_cast<GgufValueType>(et);
        const uint64_t n = c.read<uint64_t>(field + " count");
        const uint64_t min_bytes = value_size(v.elem_type);
        if (n > c.remaining() / min_bytes)
            c.fail(field, "array count " + std::to_string(n) + " needs more than the " + std::to_string(c.remaining()) +
                              " bytes left in the file");
        if (n > kMaxArrayElements)
            c.fail(field, "array count " + std::to_string(n) + " exceeds winnow's limit of " + std::to_string(kMaxArrayElements) + " elements");
        c.charge(field, n * sizeof(GgufValue));
        v.elems.reserve(n);
        for (uint64_t k = 0; k < n; ++k) v.elems.push_back(read_value(c, v.elem_type, field, depth + 1));
        break;
    }
    }
    return v;
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }

} // namespace

const char* to_string(GgufValueType t) {
    static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
    return static_cast<uint32_t>(t) <= 12 ? names[static_cast<uint32_t>(t)] : "unknown";
}

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
    std::unique_ptr<GgufFile> f(new GgufFile(std::make_unique<MappedFile>(path)));
    f->parse();
    return f;
}

void GgufFile::parse() {
    const std::string& p = file_->path();
    Cursor c(file_->data(), file_->size(), p);

    char magic[4];
    if (file_->size() < 4) c.fail("magic", "file is " + std::to_string(file_->size()) + " bytes, too short for a GGUF header");
    std::memcpy(magic, file_->data(), 4);
    if (std::memcmp(magic, "GGUF", 4) != 0) c.fail("magic", "expected 'GGUF', not a GGUF file");
    c.read<uint32_t>("magic");

    version_ = c.read<uint32_t>("version");
    if (version_ == 1) c.fail("version", "GGUF v1 is not supported (expected 2 or 3)");
    if ((version_ & 0xffff) == 0 && version_ != 0) c.fail("version", "file appears to be big-endian (version field " + std::to_string(version_) + ")");
    if (version_ < 2 || version_ > 3) c.fail("version", "unknown version " + std::to_string(version_) + " (expected 2 or 3)");

    const uint64_t n_tensors = c.read<uint64_t>("tensor_count");
    const uint64_t n_kv = c.read<uint64_t>("metadata_kv_count");
    if (n_kv > c.remaining() / kMinKvBytes)
        c.fail("metadata_kv_count", std::to_string(n_kv) + " entries cannot fit in the " + std::to_string(c.remaining()) + " bytes left");
    if (n_tensors > c.remaining() / kMinTensorInfoBytes)
        c.fail("tensor_count", std::to_string(n_tensors) + " tensors cannot fit in the " + std::to_string(c.remaining()) + " bytes left");

    for (uint64_t k = 0; k < n_kv; ++k) {
        const std::string field = "metadata entry #" + std::to_string(k);
        std::string key = c.read_string(field + " key");
        if (key.empty()) c.fail(field, "empty key");
        const uint32_t t = c.read<uint32_t>(field + " '" + key + "' type");
        if (!valid_value_type(t)) c.fail(field + " '" + key + "'", "unknown value type " + std::to_string(t));
        c.charge(field, sizeof(GgufValue) + 96); // the map node: links, key and value
        GgufValue v = read_value(c, static_cast<GgufValueType>(t), "metadata key '" + key + "'", 0);
        if (kv_.count(key)) c.fail("metadata key '" + key + "'", "duplicate key");
        kv_.emplace(std::move(key), std::move(v));
    }

    if (auto it = kv_.find("general.alignment"); it != kv_.end()) {
        if (it->second.type != GgufValueType::u32) c.fail("metadata key 'general.alignment'", std::string("expected type u32, found ") + to_string(it->second.type));
        const uint64_t a = it->second.u;
        if (a == 0 || (a & (a - 1)) != 0) c.fail("metadata key 'general.alignment'", std::to_string(a) + " is not a power of two");
        alignment_ = static_cast<uint32_t>(a);
    }

    c.charge("tensor_count", n_tensors * (sizeof(GgufTensorInfo) + 96)); // the list and the name index
    tensors_.reserve(n_tensors);
    uint64_t expected_offset = 0;
    for (uint64_t k = 0; k < n_tensors; ++k) {
        GgufTensorInfo ti;
        ti.name = c.read_string("tensor #" + std::to_string(k) + " name");
        const std::string field = "tensor '" + ti.name + "'";
        if (ti.name.size() > kMaxNameLength) c.fail(field, "name longer than " + std::to_string(kMaxNameLength) + " bytes");
        if (tensor_index_.count(ti.name)) c.fail(field, "duplicate tensor name");
        ti.n_dims = c.read<uint32_t>(field + " n_dims");
        if (ti.n_dims == 0 || ti.n_dims > kMaxDims) c.fail(field, "n_dims " + std::to_string(ti.n_dims) + " out of range 1..4");
        for (uint32_t d = 0; d < ti.n_dims; ++d) {
            const uint64_t ne = c.read<uint64_t>(field + " ne[" + std::to_string(d) + "]");
            if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) c.fail(field, "ne[" + std::to_string(d) + "] is negative");
            ti.ne[d] = ne;
        }
        const uint32_t type = c.read<uint32_t>(field + " type");
        const auto traits = ggml_type_traits(type);
        if (!traits) c.fail(field, "unknown ggml type " + std::to_string(type));
        ti.type = static_cast<GgmlType>(type);
        ti.offset = c.read<uint64_t>(field + " offset");

        uint64_t n = 1;
        for (int d = 0; d < 4; ++d)
            if (mul_overflows(n, ti.ne[d], &n) || n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                c.fail(field, "shape overflows 64 bits");
        if (ti.ne[0] % traits->block_size != 0)
            c.fail(field, "ne[0] = " + std::to_string(ti.ne[0]) + " is not a multiple of the " + traits->name + " block size " + std::to_string(traits->block_size));
        uint64_t bytes;
        if (mul_overflows(n / traits->block_size, traits->type_size, &bytes)) c.fail(field, "byte size overflows 64 bits");
        ti.nbytes = bytes;
        if (ti.offset != expected_offset)
            c.fail(field, "data offset " + std::to_string(ti.offset) + ", expected " + std::to_string(expected_offset) +
                              " (tensors must be stored in order, each aligned to " + std::to_string(alignment_) + ")");
        const uint64_t padded = (bytes + alignment_ - 1) / alignment_ * alignment_;
        if (padded < bytes || __builtin_add_overflow(expected_offset, padded, &expected_offset)) c.fail(field, "data size overflows 64 bits");
        tensor_index_.emplace(ti.name, tensors_.size());
        tensors_.push_back(std::move(ti));
    }

    // The data section starts at the next multiple of the alignment after the header.
    data_offset_ = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
    const uint64_t file_size = file_->size();
    if (n_tensors > 0 && data_offset_ > file_size)
        c.fail("data section", "starts at " + std::to_string(data_offset_) + ", past the end of the " + std::to_string(file_size) + "-byte file");
    for (auto& ti : tensors_) {
        const uint64_t avail = file_size - data_offset_;
        if (ti.offset > avail || ti.nbytes > avail - ti.offset)
            c.fail("tensor '" + ti.name + "'", "data [" + std::to_string(data_offset_ + ti.offset) + ", " +
                                                   std::to_string(data_offset_ + ti.offset + ti.nbytes) + ") lies outside the " +
                                                   std::to_string(file_size) + "-byte file (truncated?)");
        ti.data = file_->data() + data_offset_ + ti.offset;
    }
}

const GgufValue* GgufFile::find(const std::string& key) const {
    auto it = kv_.find(key);
    return it == kv_.end() ? nullptr : &it->second;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

void GgufFile::fail_key(const std::string& key, const std::string& what) const {
    throw Error(ErrorKind::format, "GGUF file '" + path() + "': metadata key '" + key + "': " + what);
}

std::optional<uint64_t> unsigned_value(const GgufValue& v) {
    switch (v.type) {
    case GgufValueType::u8: case GgufValueType::u16: case GgufValueType::u32: case GgufValueType::u64:
        return v.u;
    case GgufValueType::i8: case GgufValueType::i16: case GgufValueType::i32: case GgufValueType::i64:
        if (v.i < 0) return std::nullopt;
        return static_cast<uint64_t>(v.i);
    default:
        return std::nullopt;
    }
}

std::optional<uint64_t> GgufFile::get_uint(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) return std::nullopt;
    if (auto u = unsigned_value(*v)) return u;
    if (v->type == GgufValueType::i8 || v->type == GgufValueType::i16 || v->type == GgufValueType::i32 || v->type == GgufValueType::i64)
        fail_key(key, "expected a non-negative integer, found " + std::to_string(v->i));
    fail_key(key, std::string("expected an integer, found ") + to_string(v->type));
}

std::optional<double> GgufFile::get_float(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) return std::nullopt;
    if (v->type == GgufValueType::f32 || v->type == GgufValueType::f64) return v->f;
    fail_key(key, std::string("expected a float, found ") + to_string(v->type));
}

std::optional<bool> GgufFile::get_bool(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) return std::nullopt;
    if (v->type == GgufValueType::boolean) return v->u != 0;
    fail_key(key, std::string("expected a bool, found ") + to_string(v->type));
}

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) return std::nullopt;
    if (v->type == GgufValueType::string) return v->s;
    fail_key(key, std::string("expected a string, found ") + to_string(v->type));
}

uint64_t GgufFile::require_uint(const std::string& key) const {
    if (auto v = get_uint(key)) return *v;
    fail_key(key, "required key is missing");
}

double GgufFile::require_float(const std::string& key) const {
    if (auto v = get_float(key)) return *v;
    fail_key(key, "required key is missing");
}

std::string GgufFile::require_string(const std::string& key) const {
    if (auto v = get_string(key)) return *v;
    fail_key(key, "required key is missing");
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) return {};
    if (v->type != GgufValueType::array || v->elem_type != GgufValueType::string) fail_key(key, "expected an array of strings");
    std::vector<std::string> out;
    out.reserve(v->elems.size());
    for (const auto& e : v->elems) out.push_back(e.s);
    return out;
}

std::vector<double> GgufFile::get_float_array(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) return {};
    if (v->type != GgufValueType::array || (v->elem_type != GgufValueType::f32 && v->elem_type != GgufValueType::f64))
        fail_key(key, "expected an array of floats");
    std::vector<double> out;
    out.reserve(v->elems.size());
    for (const auto& e : v->elems) out.push_back(e.f);
    return out;
}

std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) return {};
    if (v->type != GgufValueType::array) fail_key(key, "expected an array of integers");
    std::vector<int64_t> out;
    out.reserve(v->elems.size());
    for (const auto& e : v->elems) {
        switch (e.type) {
        case GgufValueType::u8: case GgufValueType::u16: case GgufValueType::u32: case GgufValueType::u64:
            out.push_back(static_cast<int64_t>(e.u)); break;
        case GgufValueType::i8: case GgufValueType::i16: case GgufValueType::i32: case GgufValueType::i64:
            out.push_back(e.i); break;
        default: fail_key(key, "expected an array of integers");
        }
    }
    return out;
}

} // namespace winnow::io
