#pragma once
// Reading a JSON file (HF config.json, tokenizer.json, ...) with errors that name the file.
#include <filesystem>
#include <fstream>

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

} // namespace winnow::io
