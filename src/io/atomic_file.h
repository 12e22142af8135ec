#pragma once
// Durable replace-by-rename: the caller writes PATH.tmp completely, then commit_file() flushes it to disk (fsync),
// renames it over PATH and flushes the directory entry, so after a crash or power loss PATH holds either the old
// contents or the new ones, never a torn or empty file.
#include <string>

namespace winnow::io {

// Throws winnow::Error (io) naming the file on any failure.
void commit_file(const std::string& tmp, const std::string& path);

} // namespace winnow::io
