#pragma once
// Whole text files (training data, benchmark texts) and the FNV-1a hash that names them in caches and reports.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "winnow/error.h"

namespace winnow::io {

// The file's bytes; `what` names it in the error ("cannot open <what> '<path>'").
inline std::string read_text_file(const std::string& path, const std::string& what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(ErrorKind::io, "cannot open " + what + " '" + path + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// FNV-1a (64-bit), fed in pieces: the hash of the pieces' concatenation.
class Fnv1a64 {
public:
    void add(const void* data, size_t n) {
        const auto* b = static_cast<const unsigned char*>(data);
        for (size_t i = 0; i < n; ++i) h_ = (h_ ^ b[i]) * 1099511628211ull;
    }
    // 16 hex digits
    std::string hex() const {
        char buf[20];
        std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h_));
        return buf;
    }

private:
    uint64_t h_ = 1469598103934665603ull;
};

// FNV-1a (64-bit) of the bytes, as 16 hex digits.
inline std::string fnv1a_hex(std::string_view s) {
    Fnv1a64 h;
    h.add(s.data(), s.size());
    return h.hex();
}

} // namespace winnow::io
