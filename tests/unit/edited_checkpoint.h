#pragma once
// Test helpers for the HF-config tests: a fixture checkpoint copied with its config.json edited, and a model's logits on
// a fixed 40-token sequence (CPU, exact f32 dots) to tell two configurations' computations apart.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../fuzz/fuzz_util.h"
#include "backend/backend.h"
#include "decode/forward.h"
#include "model/model.h"

namespace winnow::test {

// The checkpoint folder `fixture` (config.json, model.safetensors) in a fresh folder `name`, its config.json edited first.
inline std::filesystem::path edited_checkpoint(const std::filesystem::path& fixture, const std::string& name,
                                               const std::function<void(nlohmann::json&)>& edit) {
    std::ifstream in(fixture / "config.json");
    nlohmann::json cfg = nlohmann::json::parse(in);
    edit(cfg);
    const auto dir = fuzz::fresh_dir(name);
    std::filesystem::copy_file(fixture / "model.safetensors", dir / "model.safetensors");
    fuzz::write_file(dir / "config.json", cfg.dump());
    return dir;
}

// Every row's logits for the ids (i * 53 + 7) % 319, i < 40 (the tiny fixtures' vocabulary has 320 entries).
inline std::vector<float> fixed_sequence_logits(const LoadedModel& m) {
    auto be = make_cpu_backend(1, CpuDotMode::f32);
    Forward f(m, *be, 40);
    std::vector<int32_t> ids;
    for (int i = 0; i < 40; ++i) ids.push_back((i * 53 + 7) % 319);
    return f.eval(ids, true);
}

} // namespace winnow::test
