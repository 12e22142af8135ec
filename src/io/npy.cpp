#include "io/npy.h"

#include <bit>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "io/atomic_file.h"
#include "winnow/error.h"

namespace winnow::io {

std::string npy_header_f32(int64_t rows, int64_t cols) {
    std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " + std::to_string(cols) + "), }";
    constexpr size_t kPreamble = 10; // magic (6), version (2), header length (2)
    const size_t unpadded = kPreamble + dict.size() + 1; // + the closing newline
    dict.append((64 - unpadded % 64) % 64, ' ');
    dict += '\n';
    std::string h = "\x93NUMPY";
    h += static_cast<char>(1);
    h += static_cast<char>(0);
    h += static_cast<char>(dict.size() & 0xff);
    h += static_cast<char>(dict.size() >> 8);
    return h + dict;
}

void write_npy_f32(const std::string& path, std::span<const float> data, int64_t rows, int64_t cols) {
    static_assert(std::endian::native == std::endian::little, "the .npy writer stores the host's floats as '<f4'");
    if (rows < 0 || cols < 0 || static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols) != data.size())
        throw Error(ErrorKind::invalid_argument, "write_npy_f32: " + std::to_string(data.size()) + " values are not " + std::to_string(rows) + " x " +
                                                     std::to_string(cols));
    const std::string tmp = path + ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        if (!f) throw Error(ErrorKind::io, "cannot create '" + tmp + "'");
        const std::string header = npy_header_f32(rows, cols);
        f.write(header.data(), static_cast<std::streamsize>(header.size()));
        f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size_bytes()));
        f.flush();
        if (!f) {
            f.close();
            std::error_code ec;
            std::filesystem::remove(tmp, ec);
            throw Error(ErrorKind::io, "cannot write '" + tmp + "' (disk full?)");
        }
    }
    commit_file(tmp, path);
}

} // namespace winnow::io
