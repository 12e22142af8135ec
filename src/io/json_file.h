#pragma once
// Reading a JSON file (HF config.json, tokenizer.json, ...) with errors that name the file.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "winnow/error.h"

namespace winnow::io {

inline nlohmann::json read_json_file(const std::filesystem::path& p) {
    std::ifstream in(p);
    if (!in) throw Error(ErrorKind::io, "cannot open '" + p.string() + "'");
    try {
        return nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorKind::format, "'" + p.string() + "': invalid JSON: " + e.what());
    }
}

// Whether the JSON value converts to the integer type T exactly: nlohmann's get<T>() is a plain cast, so a float
// outside T's range is undefined behaviour and an integer wraps (2^32 + 16 would read as 16 in an int). A value that
// is not a number passes: reading it as T fails with a type error of its own.
template <typename T>
bool json_int_fits(const nlohmann::json& v) {
    static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
    using lim = std::numeric_limits<T>;
    if (v.is_number_unsigned()) return v.get<uint64_t>() <= static_cast<uint64_t>(lim::max());
    if (v.is_number_integer()) {
        const int64_t i = v.get<int64_t>();
        if constexpr (std::is_unsigned_v<T>) return i >= 0 && static_cast<uint64_t>(i) <= static_cast<uint64_t>(lim::max());
        else return i >= static_cast<int64_t>(lim::min()) && i <= static_cast<int64_t>(lim::max());
    }
    if (v.is_number_float()) return v.get<double>() >= static_cast<double>(lim::min()) && v.get<double>() <= static_cast<double>(lim::max());
    return true;
}

} // namespace winnow::io
