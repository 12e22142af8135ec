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

// FNV-1a (64-bit) of the bytes, as 16 hex digits.
inline std::string fnv1a_hex(std::string_view s) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    char buf[20];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

} // namespace winnow::io
