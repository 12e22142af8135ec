#include "io/atomic_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <unistd.h>

#include "winnow/error.h"

namespace winnow::io {

namespace {

void sync_path(const std::string& p, int flags, const std::string& what) {
    const int fd = ::open(p.c_str(), flags);
    if (fd < 0) throw Error(ErrorKind::io, "cannot open '" + p + "' to flush " + what + ": " + std::strerror(errno));
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) throw Error(ErrorKind::io, "cannot flush '" + p + "' to disk: " + std::strerror(err));
}

} // namespace

void commit_file(const std::string& tmp, const std::string& path) {
    sync_path(tmp, O_RDONLY, "it");
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) throw Error(ErrorKind::io, "cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
    std::string dir = std::filesystem::path(path).parent_path().string();
    if (dir.empty()) dir = ".";
    sync_path(dir, O_RDONLY | O_DIRECTORY, "the directory entry");
}

} // namespace winnow::io
