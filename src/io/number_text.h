#pragma once
// Numbers as a person writes them (six significant digits), for --help defaults and messages: 0.3, not
// 0.29999999999999999.
#include <cstdio>
#include <string>

namespace winnow {

inline std::string number_text(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

} // namespace winnow
