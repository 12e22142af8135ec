#pragma once
// The sampling options of `winnow generate` and `winnow chat`. They have no fixed defaults: a value not given on the
// command line comes from the model's recommended settings, else winnow's defaults (decode/sampling_defaults.h), so
// the options are parsed first and applied once the model is loaded. An option given explicitly always wins.
#include <cstdint>
#include <string>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "io/number_text.h"
#include "decode/sampling_defaults.h"
#include "winnow/error.h"

namespace winnow::cli {

struct SamplingArgs {
    float temp = 0, top_p = 0, min_p = 0, repeat_penalty = 0;
    int top_k = 0, repeat_last_n = 0;
    uint64_t seed = 0;
    std::string order;
};

inline void add_sampling_options(boost::program_options::options_description& opts, SamplingArgs& a) {
    namespace po = boost::program_options;
    const SamplingParams d = builtin_sampling_defaults();
    auto dflt = [](double v) { return " (default " + number_text(v) + ")"; };
    po::options_description group(
        "sampling: an option not given takes the value the model recommends (GGUF general.sampling.*, HF\n"
        "generation_config.json) where it has one, else the default shown (llama-cli's, with a mild repetition penalty;\n"
        "`winnow info` shows a model's). --temp 0 is plain greedy: no repetition penalty unless --repeat-penalty is given");
    group.add_options()("temp", po::value(&a.temp)->value_name("T"), ("temperature; 0 = greedy" + dflt(d.temperature)).c_str())(
        "top-k", po::value(&a.top_k)->value_name("K"), ("keep the K most likely tokens; 0 = off" + dflt(d.top_k)).c_str())(
        "top-p", po::value(&a.top_p)->value_name("P"), ("nucleus sampling mass; 1 = off" + dflt(d.top_p)).c_str())(
        "min-p", po::value(&a.min_p)->value_name("P"), ("drop tokens below P x the top probability; 0 = off" + dflt(d.min_p)).c_str())(
        "repeat-penalty", po::value(&a.repeat_penalty)->value_name("R"),
        ("repetition penalty (divides positive logits of recent tokens); 1 = off" + dflt(d.repeat_penalty)).c_str())(
        "repeat-last-n", po::value(&a.repeat_last_n)->value_name("N"),
        ("tokens the penalty looks back over; -1 = the whole sequence" + dflt(d.repeat_last_n)).c_str())(
        "seed", po::value(&a.seed)->value_name("S")->default_value(0), "random seed: sampling is reproducible for a given seed")(
        "sampler-order", po::value(&a.order)->value_name("ORDER")->default_value("llama.cpp"),
        "llama.cpp (penalty, top-k, top-p, min-p, temperature last) or hf (temperature first, as HF generate())");
    opts.add(group);
}

// --sampler-order's value, checked before the model loads.
inline void check_sampler_order(const SamplingArgs& a) {
    if (a.order != "hf" && a.order != "llama.cpp") throw Error(ErrorKind::invalid_argument, "--sampler-order must be hf or llama.cpp");
}

// The settings to sample with: the model's recommendations (already in `recommended`), then every option given.
inline SamplingParams resolve_sampling(const boost::program_options::variables_map& vm, const SamplingArgs& a, const SamplingDefaults& recommended) {
    SamplingParams s = recommended.params;
    if (vm.count("temp")) s.temperature = a.temp;
    if (vm.count("top-k")) s.top_k = a.top_k;
    if (vm.count("top-p")) s.top_p = a.top_p;
    if (vm.count("min-p")) s.min_p = a.min_p;
    if (vm.count("repeat-penalty")) s.repeat_penalty = a.repeat_penalty;
    if (vm.count("repeat-last-n")) s.repeat_last_n = a.repeat_last_n;
    // Greedy means plain greedy (argmax, as llama.cpp's --temp 0 and HF's do_sample=False): winnow's own repetition
    // penalty goes with its sampling defaults; one the model recommends or the command line gives stays.
    if (s.temperature <= 0 && !vm.count("repeat-penalty") && !recommended.model_sets("repeat-penalty")) s.repeat_penalty = 1.0f;
    s.seed = a.seed;
    check_sampler_order(a);
    s.order = a.order == "hf" ? SamplerOrder::hf : SamplerOrder::llama_cpp;
    s.validate();
    return s;
}

// The settings and where they came from, for --json.
inline nlohmann::ordered_json sampling_json(const SamplingParams& s, const SamplingDefaults& recommended) {
    return {{"temp", s.temperature}, {"top_k", s.top_k}, {"top_p", s.top_p}, {"min_p", s.min_p}, {"repeat_penalty", s.repeat_penalty},
            {"repeat_last_n", s.repeat_last_n}, {"seed", s.seed}, {"order", s.order == SamplerOrder::hf ? "hf" : "llama.cpp"},
            {"defaults_from", recommended.source()}};
}

// One line for --stats: the settings in effect.
inline std::string describe_sampling(const SamplingParams& s) {
    char buf[200];
    if (s.temperature <= 0) {
        if (s.repeat_penalty == 1.0f) std::snprintf(buf, sizeof buf, "greedy (temp 0), no repetition penalty");
        else std::snprintf(buf, sizeof buf, "greedy (temp 0), repeat-penalty %g over %d", s.repeat_penalty, s.repeat_last_n);
    } else {
        std::snprintf(buf, sizeof buf, "temp %g, top-k %d, top-p %g, min-p %g, repeat-penalty %g over %d, seed %llu, order %s", s.temperature, s.top_k,
                      s.top_p, s.min_p, s.repeat_penalty, s.repeat_last_n, static_cast<unsigned long long>(s.seed),
                      s.order == SamplerOrder::hf ? "hf" : "llama.cpp");
    }
    return buf;
}

} // namespace winnow::cli
