#pragma once
// Test helper: the one-line message of the winnow::Error that f throws, or "(no error)".
#include <functional>
#include <string>

#include "winnow/error.h"

namespace winnow::test {

inline std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const winnow::Error& e) {
        return e.what();
    }
    return "(no error)";
}

} // namespace winnow::test
