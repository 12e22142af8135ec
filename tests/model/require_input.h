#pragma once
// Inputs a test reads from disk (the fetched default model, fixture files written by the fixture.* ctest tests,
// the shared vocabulary fixtures). A missing or empty input is never a silent pass:
//   WINNOW_REQUIRE_MODELS=1 (set by scripts/test.sh and CI): the test FAILS, naming the file;
//   otherwise:                                               the test is SKIPPED, visibly, naming the file.
//
//   WINNOW_REQUIRE_FILE(path);   // in a TEST body, a SetUp(), or a void helper (it returns from that function)
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

#include <gtest/gtest.h>

namespace winnow::test {

inline bool inputs_required() {
    const char* v = std::getenv("WINNOW_REQUIRE_MODELS");
    return v != nullptr && std::string(v) == "1";
}

// Empty when `path` is a non-empty file or a directory; otherwise why it is unusable and where it comes from.
inline std::string missing_input(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto st = fs::status(path, ec);
    std::string why;
    if (fs::is_directory(st)) return {};
    if (!fs::exists(st)) why = "missing";
    else if (!fs::is_regular_file(st)) why = "not a regular file";
    else if (fs::file_size(path, ec) == 0 || ec) why = "empty";
    else return {};
    std::string hint;
    if (path == WINNOW_DEFAULT_MODEL) hint = "run scripts/fetch-model.sh";
#ifdef WINNOW_VOCAB_DIR
    else if (path.rfind(WINNOW_VOCAB_DIR, 0) == 0) hint = "run scripts/fetch-vocab.sh";
#endif
    else if (path.rfind(WINNOW_FIXTURE_DIR, 0) == 0) hint = "written by the fixture.* ctest tests: run the test through ctest";
    return "input " + why + ": " + path + (hint.empty() ? "" : " (" + hint + ")");
}

} // namespace winnow::test

#define WINNOW_REQUIRE_FILE(path)                                                                                     \
    do {                                                                                                              \
        const std::string winnow_missing_input_ = ::winnow::test::missing_input(path);                                \
        if (!winnow_missing_input_.empty()) {                                                                         \
            if (::winnow::test::inputs_required()) FAIL() << winnow_missing_input_ << " [WINNOW_REQUIRE_MODELS=1]";   \
            GTEST_SKIP() << winnow_missing_input_ << " [set WINNOW_REQUIRE_MODELS=1 to make this a failure]";         \
        }                                                                                                             \
    } while (0)
