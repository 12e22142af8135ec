#pragma once
// Reading JSON (HF config.json, tokenizer.json, the safetensors header and index, ...) with errors that name the
// file, and limits a hostile file cannot get past: a file above kMaxJsonFileBytes is refused before it is read, and
// the parse is refused as soon as the values would nest deeper than JsonLimits::max_depth or take more than
// JsonLimits::max_bytes of memory (estimated from nlohmann's layout as the values arrive), so no allocation grows
// with an unchecked input (issue 16 item 5: a hostile file under `ulimit -v` 1 GiB gets an error, not an
// out-of-memory kill).
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "winnow/error.h"

namespace winnow::io {

// The largest JSON file winnow reads whole (real tokenizer.json files are tens of MB). A lexer token (one string) is
// built in memory before any limit below can see it, so the file size bounds it.
inline constexpr uint64_t kMaxJsonFileBytes = 128ull << 20;

struct JsonLimits {
    int max_depth = 128;                 // containers nested deeper than this are refused (real files: < 10)
    uint64_t max_bytes = 256ull << 20;   // estimated memory of the parsed values
    bool unique_keys = false;            // refuse duplicate keys in an object (nlohmann would keep the last one)
};

// Parses `input` (a string or an istream) under `limits`; `where` prefixes every error ("'config.json'", ...).
template <typename Input>
nlohmann::json parse_json_bounded(Input&& input, const std::string& where, const JsonLimits& limits = {}) {
    using nlohmann::json;
    std::vector<std::set<std::string>> open_objects; // only with unique_keys
    std::string duplicate;
    uint64_t bytes = 0;
    // heap bytes of a std::string of n characters beyond its object (small strings live inside it), malloc header included
    auto heap = [](size_t n) -> uint64_t { return n > 15 ? n + 1 + 16 : 0; };
    auto cb = [&](int depth, json::parse_event_t event, json& parsed) {
        switch (event) {
        case json::parse_event_t::object_start:
        case json::parse_event_t::array_start:
            if (depth >= limits.max_depth)
                throw Error(ErrorKind::format, where + ": JSON nested deeper than " + std::to_string(limits.max_depth) + " levels");
            bytes += 64; // the map or vector object on the heap
            if (limits.unique_keys && event == json::parse_event_t::object_start) open_objects.emplace_back();
            break;
        case json::parse_event_t::object_end:
            if (limits.unique_keys && !open_objects.empty()) open_objects.pop_back();
            break;
        case json::parse_event_t::key: {
            const auto& k = parsed.get_ref<const std::string&>();
            bytes += 96 + heap(k.size()); // a map node: links, the key string and the value
            if (limits.unique_keys && !open_objects.empty()) {
                bytes += 64 + heap(k.size());
                if (!open_objects.back().insert(k).second && duplicate.empty()) duplicate = k;
            }
            break;
        }
        case json::parse_event_t::value:
            bytes += 32; // a slot in its array (doubling growth) or the value of a member
            if (parsed.is_string()) bytes += 48 + heap(parsed.get_ref<const std::string&>().size());
            break;
        default: break;
        }
        if (bytes > limits.max_bytes)
            throw Error(ErrorKind::format, where + ": the JSON values would take more than winnow's limit of " +
                                               std::to_string(limits.max_bytes >> 20) + " MiB in memory");
        return true;
    };
    json j;
    try {
        j = json::parse(std::forward<Input>(input), cb);
    } catch (const json::exception& e) {
        throw Error(ErrorKind::format, where + ": invalid JSON: " + e.what());
    }
    if (!duplicate.empty()) throw Error(ErrorKind::format, where + ": duplicate key '" + duplicate + "'");
    return j;
}

// Reads and parses a JSON file under `limits`; errors name the file (or `where`, when given).
inline nlohmann::json read_json_file(const std::filesystem::path& p, const JsonLimits& limits = {}, std::string where = {}) {
    if (where.empty()) { // appended, not "'" + p.string() + "'", which trips GCC 12's -Wrestrict false positive (PR 105329)
        where += '\'';
        where += p.string();
        where += '\'';
    }
    std::error_code ec;
    const auto size = std::filesystem::file_size(p, ec);
    if (!ec && size > kMaxJsonFileBytes)
        throw Error(ErrorKind::format, where + ": " + std::to_string(size) + " bytes, larger than winnow's limit of " +
                                           std::to_string(kMaxJsonFileBytes >> 20) + " MiB for a JSON file");
    std::ifstream in(p, std::ios::binary);
    if (!in) throw Error(ErrorKind::io, "cannot open '" + p.string() + "'");
    return parse_json_bounded(in, where, limits);
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
