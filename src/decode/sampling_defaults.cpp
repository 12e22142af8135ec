#include "decode/sampling_defaults.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "io/gguf.h"
#include "io/json_file.h"
#include "io/number_text.h"
#include "model/model.h"
#include "winnow/error.h"

namespace winnow {

namespace {

// One recommended setting: its name in winnow's terms, whether a value is usable, and where it goes.
struct Field {
    const char* name;       // as `winnow generate` spells the option, without dashes
    const char* gguf_key;
    const char* hf_key;
    bool (*valid)(double);
    void (*apply)(SamplingParams&, double);
    const char* range;      // for the `ignored` message
};

bool is_int(double v) { return std::isfinite(v) && v == std::floor(v); }

const Field kFields[] = {
    {"temp", "general.sampling.temp", "temperature", [](double v) { return std::isfinite(v) && v >= 0; },
     [](SamplingParams& p, double v) { p.temperature = static_cast<float>(v); }, ">= 0"},
    {"top-k", "general.sampling.top_k", "top_k", [](double v) { return is_int(v) && v >= 0 && v <= 1e9; },
     [](SamplingParams& p, double v) { p.top_k = static_cast<int>(v); }, "an integer >= 0"},
    {"top-p", "general.sampling.top_p", "top_p", [](double v) { return v > 0 && v <= 1; },
     [](SamplingParams& p, double v) { p.top_p = static_cast<float>(v); }, "in (0, 1]"},
    {"min-p", "general.sampling.min_p", "min_p", [](double v) { return v >= 0 && v <= 1; },
     [](SamplingParams& p, double v) { p.min_p = static_cast<float>(v); }, "in [0, 1]"},
    {"repeat-penalty", "general.sampling.penalty_repeat", "repetition_penalty", [](double v) { return std::isfinite(v) && v > 0; },
     [](SamplingParams& p, double v) { p.repeat_penalty = static_cast<float>(v); }, "> 0"},
    // llama.cpp: 0 turns the penalty off, -1 means the whole context (winnow: the whole sequence)
    {"repeat-last-n", "general.sampling.penalty_last_n", nullptr, [](double v) { return is_int(v) && v >= -1 && v <= 1e9; },
     [](SamplingParams& p, double v) { p.repeat_last_n = static_cast<int>(v); }, "an integer >= -1"},
};

// A GGUF scalar as a number, whatever its integer or float type; nullopt for other types (reported as ignored).
std::optional<double> gguf_number(const io::GgufValue& v) {
    switch (v.type) {
    case io::GgufValueType::u8: case io::GgufValueType::u16: case io::GgufValueType::u32: case io::GgufValueType::u64: return static_cast<double>(v.u);
    case io::GgufValueType::i8: case io::GgufValueType::i16: case io::GgufValueType::i32: case io::GgufValueType::i64: return static_cast<double>(v.i);
    case io::GgufValueType::f32: case io::GgufValueType::f64: return v.f;
    default: return std::nullopt;
    }
}

void take(SamplingDefaults& d, const Field& f, const std::string& key, std::optional<double> v) {
    if (!v) {
        d.ignored.push_back(key + ": not a number");
    } else if (!f.valid(*v)) {
        d.ignored.push_back(key + " = " + number_text(*v) + ": must be " + f.range);
    } else {
        f.apply(d.params, *v);
        d.from_model.push_back(std::string(f.name) + "=" + number_text(*v) + " (" + key + ")");
    }
}

void from_gguf(const io::GgufFile& g, SamplingDefaults& d) {
    for (const Field& f : kFields)
        if (const io::GgufValue* v = g.find(f.gguf_key)) take(d, f, f.gguf_key, gguf_number(*v));
}

void from_generation_config(const std::filesystem::path& file, SamplingDefaults& d) {
    nlohmann::json j;
    try {
        j = io::read_json_file(file);
    } catch (const Error& e) {
        d.ignored.push_back(std::string("generation_config.json: ") + e.what());
        return;
    }
    if (!j.is_object()) {
        d.ignored.push_back("generation_config.json: not a JSON object");
        return;
    }
    for (const Field& f : kFields) {
        if (!f.hf_key || !j.contains(f.hf_key) || j[f.hf_key].is_null()) continue;
        const auto& v = j[f.hf_key];
        take(d, f, std::string("generation_config.json ") + f.hf_key, v.is_number() ? std::optional<double>(v.get<double>()) : std::nullopt);
    }
    // transformers samples only with do_sample true: false (explicitly) is the model asking for greedy decoding
    if (j.contains("do_sample") && j["do_sample"].is_boolean() && !j["do_sample"].get<bool>()) {
        d.params.temperature = 0;
        d.from_model.push_back("temp=0 (generation_config.json do_sample=false: greedy)");
    }
}

} // namespace

SamplingParams builtin_sampling_defaults() {
    SamplingParams p;
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.repeat_penalty = 1.1f;
    p.repeat_last_n = 64;
    p.order = SamplerOrder::llama_cpp;
    return p;
}

std::string SamplingDefaults::source() const {
    if (from_model.empty()) return "winnow's defaults (llama-cli's, with repeat-penalty 1.1); the model recommends none";
    std::string s = "the model: ";
    for (size_t i = 0; i < from_model.size(); ++i) s += (i ? ", " : "") + from_model[i];
    return s + "; the rest winnow's defaults";
}

bool SamplingDefaults::model_sets(const std::string& field) const {
    for (const auto& f : from_model)
        if (f.starts_with(field + "=")) return true;
    return false;
}

SamplingDefaults recommended_sampling(const LoadedModel& model) {
    SamplingDefaults d;
    d.params = builtin_sampling_defaults();
    if (const io::GgufFile* g = model.gguf()) {
        from_gguf(*g, d);
    } else {
        namespace fs = std::filesystem;
        const fs::path p(model.path());
        const fs::path file = (fs::is_directory(p) ? p : p.parent_path()) / "generation_config.json";
        if (fs::exists(file)) from_generation_config(file, d);
    }
    return d;
}

} // namespace winnow
