#pragma once
// Shared by the libFuzzer targets: a per-process scratch directory for loaders that read paths, splitting one input
// into several files, and the contract every target checks: a hostile input may only end in winnow::Error. Any other
// exception escapes LLVMFuzzerTestOneInput (libFuzzer reports it as a crash), as does any sanitizer report.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "winnow/error.h"

namespace winnow::fuzz {

// A directory of this process's own (several fuzzers, or -jobs, may run at once); removed at exit.
inline const std::filesystem::path& scratch_dir() {
    static const std::filesystem::path dir = [] {
        const char* tmp = std::getenv("TMPDIR");
        std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/winnow-fuzz-XXXXXX";
        if (!mkdtemp(templ.data())) std::abort();
        static std::string keep = templ;
        std::atexit([] { std::error_code ec; std::filesystem::remove_all(keep, ec); });
        return std::filesystem::path(templ);
    }();
    return dir;
}

// A fresh, empty subdirectory of the scratch directory (the same path every call).
inline std::filesystem::path fresh_dir(const std::string& name) {
    const auto d = scratch_dir() / name;
    std::error_code ec;
    std::filesystem::remove_all(d, ec);
    std::filesystem::create_directories(d);
    return d;
}

inline void write_file(const std::filesystem::path& p, std::string_view bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) std::abort(); // the harness itself failed: never a finding about winnow
}

// Splits the input at each occurrence of `sep` (at most max_parts parts; the last part keeps the rest).
inline std::vector<std::string_view> split(std::string_view s, std::string_view sep, size_t max_parts) {
    std::vector<std::string_view> parts;
    while (parts.size() + 1 < max_parts) {
        const size_t at = s.find(sep);
        if (at == std::string_view::npos) break;
        parts.push_back(s.substr(0, at));
        s.remove_prefix(at + sep.size());
    }
    parts.push_back(s);
    return parts;
}

// The separator the multi-file targets use between files (make_corpus.py writes it too).
inline constexpr std::string_view kFileSep = "\n@@@@FILE@@@@\n";

// Runs f; winnow::Error (the documented refusal) is swallowed, anything else propagates.
template <typename F>
void expect_only_winnow_errors(F&& f) {
    try {
        f();
    } catch (const winnow::Error&) {
    }
}

inline std::string_view as_view(const uint8_t* data, size_t size) { return {reinterpret_cast<const char*>(data), size}; }

} // namespace winnow::fuzz
