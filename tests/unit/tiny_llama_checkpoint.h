#pragma once
// Test helper: the tiny llama safetensors checkpoint (tests/fuzz/tiny_model.h) in a fresh folder, its config.json
// edited first, for the tests of what a config.json may say (test_hf_config_rope.cpp, test_head_width_config.cpp).
#include <filesystem>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "../fuzz/fuzz_util.h"
#include "../fuzz/tiny_model.h"

namespace winnow::test {

inline std::filesystem::path tiny_llama_checkpoint(const std::string& name, const std::function<void(nlohmann::json&)>& edit_config) {
    nlohmann::json cfg = nlohmann::json::parse(winnow::fuzz::kTinyLlamaConfig);
    edit_config(cfg);
    const auto dir = winnow::fuzz::fresh_dir(name);
    winnow::fuzz::write_file(dir / "model.safetensors", winnow::fuzz::tiny_llama_safetensors());
    winnow::fuzz::write_file(dir / "config.json", cfg.dump());
    return dir;
}

} // namespace winnow::test
