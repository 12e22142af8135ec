#include "io/gguf_writer.h"

#include "io/atomic_file.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "winnow/error.h"

namespace winnow::io {

namespace {

constexpr uint64_t kAlignment = 32;

class Out {
public:
    explicit Out(const std::string& path) : path_(path), f_(path, std::ios::binary | std::ios::trunc) {
        if (!f_) throw Error(ErrorKind::io, "cannot create '" + path + "'");
    }
    void raw(const void* p, size_t n) {
        f_.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
        at_ += n;
    }
    template <typename T>
    void put(T v) { raw(&v, sizeof v); }
    void str(const std::string& s) {
        put<uint64_t>(s.size());
        raw(s.data(), s.size());
    }
    void pad() {
        static const char zeros[kAlignment] = {};
        raw(zeros, (kAlignment - at_ % kAlignment) % kAlignment);
    }
    void value(const GgufValue& v) {
        switch (v.type) {
        case GgufValueType::u8: put<uint8_t>(static_cast<uint8_t>(v.u)); break;
        case GgufValueType::i8: put<int8_t>(static_cast<int8_t>(v.i)); break;
        case GgufValueType::u16: put<uint16_t>(static_cast<uint16_t>(v.u)); break;
        case GgufValueType::i16: put<int16_t>(static_cast<int16_t>(v.i)); break;
        case GgufValueType::u32: put<uint32_t>(static_cast<uint32_t>(v.u)); break;
        case GgufValueType::i32: put<int32_t>(static_cast<int32_t>(v.i)); break;
        case GgufValueType::f32: put<float>(static_cast<float>(v.f)); break;
        case GgufValueType::boolean: put<uint8_t>(v.u ? 1 : 0); break;
        case GgufValueType::string: str(v.s); break;
        case GgufValueType::u64: put<uint64_t>(v.u); break;
        case GgufValueType::i64: put<int64_t>(v.i); break;
        case GgufValueType::f64: put<double>(v.f); break;
        case GgufValueType::array:
            put<uint32_t>(static_cast<uint32_t>(v.elem_type));
            put<uint64_t>(v.elems.size());
            for (const auto& e : v.elems) value(e);
            break;
        }
    }
    void finish() {
        f_.flush();
        f_.close();
        if (!f_) throw Error(ErrorKind::io, "cannot write '" + path_ + "' (disk full?)");
    }
    uint64_t at() const { return at_; }

private:
    std::string path_;
    std::ofstream f_;
    uint64_t at_ = 0;
};

GgufValue scalar(GgufValueType t) {
    GgufValue v;
    v.type = t;
    return v;
}

} // namespace

void GgufWriter::set(const std::string& key, const GgufValue& value) {
    for (auto& kv : kv_)
        if (kv.first == key) {
            kv.second = value;
            return;
        }
    kv_.emplace_back(key, value);
}

void GgufWriter::set_string(const std::string& key, const std::string& s) {
    GgufValue v = scalar(GgufValueType::string);
    v.s = s;
    set(key, v);
}

void GgufWriter::set_u32(const std::string& key, uint32_t x) {
    GgufValue v = scalar(GgufValueType::u32);
    v.u = x;
    set(key, v);
}

void GgufWriter::set_u64(const std::string& key, uint64_t x) {
    GgufValue v = scalar(GgufValueType::u64);
    v.u = x;
    set(key, v);
}

void GgufWriter::set_f64(const std::string& key, double x) {
    GgufValue v = scalar(GgufValueType::f64);
    v.f = x;
    set(key, v);
}

void GgufWriter::add_tensor(const std::string& name, const float* data, std::vector<uint64_t> ne) {
    tensors_.push_back({name, GgmlType::F32, std::move(ne), data, {}});
}

void GgufWriter::add_tensor(const std::string& name, GgmlType type, std::vector<uint64_t> ne, TensorBytes produce) {
    tensors_.push_back({name, type, std::move(ne), nullptr, std::move(produce)});
}

uint64_t GgufWriter::Tensor::bytes() const {
    uint64_t rows = 1;
    for (size_t i = 1; i < ne.size(); ++i) rows *= ne[i];
    return ggml_row_bytes(type, ne.empty() ? 1 : ne[0]) * rows;
}

void GgufWriter::write(const std::string& path) const {
    const std::string tmp = path + ".tmp";
    try {
        write_to(tmp);
    } catch (...) {
        std::error_code ec;
        std::filesystem::remove(tmp, ec); // best effort: the error that matters is the one being thrown
        throw;
    }
    commit_file(tmp, path);
}

void GgufWriter::write_to(const std::string& tmp) const {
    {
        Out out(tmp);
        out.raw("GGUF", 4);
        out.put<uint32_t>(3);
        out.put<uint64_t>(tensors_.size());
        out.put<uint64_t>(kv_.size());
        for (const auto& [key, v] : kv_) {
            out.str(key);
            out.put<uint32_t>(static_cast<uint32_t>(v.type));
            out.value(v);
        }
        uint64_t offset = 0;
        for (const auto& t : tensors_) {
            out.str(t.name);
            out.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
            for (uint64_t d : t.ne) out.put<uint64_t>(d);
            out.put<uint32_t>(static_cast<uint32_t>(t.type));
            out.put<uint64_t>(offset);
            offset += (t.bytes() + kAlignment - 1) / kAlignment * kAlignment;
        }
        out.pad();
        for (const auto& t : tensors_) {
            if (t.f32) {
                out.raw(t.f32, t.bytes());
            } else {
                const std::vector<uint8_t> bytes = t.produce();
                if (bytes.size() != t.bytes())
                    throw Error(ErrorKind::invalid_argument, "tensor '" + t.name + "': " + std::to_string(bytes.size()) + " bytes produced for " +
                                                         std::to_string(t.bytes()) + " in " + ggml_type_name(t.type));
                out.raw(bytes.data(), bytes.size());
            }
            out.pad();
        }
        out.finish();
    }
}

} // namespace winnow::io
