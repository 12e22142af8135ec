// winnow quantize IN.gguf OUT.gguf PRESET: llama-quantize's job, with llama.cpp's presets (model/quant_presets.h)
// and winnow's encoders (io/quant.h). Each tensor is reported on stderr as it is written (--quiet: not), the summary
// on stdout (--json: one JSON object).
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "model/quantize_model.h"
#include "winnow/error.h"

namespace po = boost::program_options;

namespace winnow::cli {

namespace {

std::string preset_list() {
    std::string s;
    for (const QuantPreset& p : quant_presets()) s += std::string("  ") + p.name + std::string(8 - std::string(p.name).size(), ' ') + p.summary + "\n";
    return s;
}

} // namespace

int cmd_quantize(const std::vector<std::string>& args) {
    std::string in_path, out_path, preset_name;
    QuantizeOptions options;
    bool json = false, quiet = false;
    std::string output_type, token_embedding_type;
    po::options_description opts("usage: winnow quantize IN.gguf OUT.gguf PRESET [options]\n\n"
                                 "Writes IN again with its matrices in a llama.cpp preset's types, as llama-quantize does; the\n"
                                 "norms and other vectors keep their type. Presets:\n" +
                                 preset_list() + "\noptions");
    opts.add_options()("help,h", "show this help")("allow-requantize", po::bool_switch(&options.allow_requantize),
                                                   "quantize tensors that are already quantized (their decoded values: a second rounding)")(
        "pure", po::bool_switch(&options.pure), "every matrix in the preset's base type (no Q6_K output, no per-layer mix)")(
        "output-tensor-type", po::value(&output_type), "the output matrix's type (the token embedding's where they are tied), e.g. q8_0")(
        "token-embedding-type", po::value(&token_embedding_type), "the token embedding's type, e.g. q8_0")(
        "threads,t", po::value(&options.threads)->default_value(0), "threads (0: all cores)")("json", po::bool_switch(&json), "the summary as one JSON object")(
        "quiet,q", po::bool_switch(&quiet), "no line per tensor on stderr");
    po::options_description hidden;
    hidden.add_options()("in", po::value(&in_path))("out", po::value(&out_path))("preset", po::value(&preset_name));
    po::options_description all;
    all.add(opts).add(hidden);
    po::positional_options_description positional;
    positional.add("in", 1).add("out", 1).add("preset", 1);
    po::variables_map vm;
    po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
    if (vm.count("help")) {
        std::printf("%s\n", [&] { std::ostringstream o; o << opts; return o.str(); }().c_str());
        return 0;
    }
    po::notify(vm);
    if (in_path.empty() || out_path.empty() || preset_name.empty())
        throw Error(ErrorKind::invalid_argument, "quantize needs IN.gguf OUT.gguf PRESET (try 'winnow quantize --help')");
    options.preset = find_quant_preset(preset_name);
    if (!options.preset) {
        std::string names;
        for (const QuantPreset& p : quant_presets()) names += std::string(names.empty() ? "" : ", ") + p.name;
        throw Error(ErrorKind::invalid_argument, "unknown preset '" + preset_name + "' (winnow writes " + names + ")");
    }
    if (options.threads < 0) throw Error(ErrorKind::invalid_argument, "--threads must be >= 0");
    if (!output_type.empty()) options.output_type = require_written_type(output_type, "--output-tensor-type");
    if (!token_embedding_type.empty()) options.token_embedding_type = require_written_type(token_embedding_type, "--token-embedding-type");

    const auto start = std::chrono::steady_clock::now();
    const QuantizeSummary s = quantize_model(in_path, out_path, options, [quiet](int i, int n, const std::string& name, GgmlType from, GgmlType to) {
        if (!quiet) std::fprintf(stderr, "[%4d/%4d] %-40s %5s -> %s\n", i + 1, n, name.c_str(), ggml_type_name(from), ggml_type_name(to));
    });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double bits = s.weights ? 8.0 * static_cast<double>(s.bytes_out) / static_cast<double>(s.weights) : 0.0;
    if (json) {
        nlohmann::json j = {{"input", in_path}, {"output", out_path}, {"preset", options.preset->name}, {"tensors", s.tensors},
                            {"quantized", s.quantized}, {"bytes_in", s.bytes_in}, {"bytes_out", s.bytes_out}, {"bits_per_weight", bits},
                            {"types", s.types_out}, {"seconds", seconds}};
        std::printf("%s\n", j.dump().c_str());
        return 0;
    }
    std::string types;
    for (const auto& [name, n] : s.types_out) types += std::string(types.empty() ? "" : ", ") + name + " x" + std::to_string(n);
    std::printf("wrote %s: %s, %d tensors (%d encoded, the rest as stored): %s; %.1f MB -> %.1f MB, %.2f bits a weight, %.1f s\n", out_path.c_str(),
                options.preset->name, s.tensors, s.quantized, types.c_str(), s.bytes_in / 1e6, s.bytes_out / 1e6, bits, seconds);
    return 0;
}

} // namespace winnow::cli
