// winnow: command-line entry point. Every failure is one line on stderr and a non-zero exit.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>

#include <boost/program_options/errors.hpp>

#include "cli/commands.h"
#include "winnow/error.h"

namespace winnow::cli {

namespace fs = std::filesystem;

namespace {

// The model cache: $WINNOW_MODELS, else $XDG_CACHE_HOME/winnow/models, else ~/.cache/winnow/models.
fs::path model_cache_dir() {
    if (const char* m = std::getenv("WINNOW_MODELS"); m && *m) return m;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "winnow" / "models";
    if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".cache" / "winnow" / "models";
    throw Error(ErrorKind::invalid_argument, "no model given (-m) and no model cache: set WINNOW_MODELS or HOME");
}

// The fetch script shipped with winnow, found relative to this executable (nothing about the source tree is compiled
// in): installed as <prefix>/share/winnow/, or models/ of the checkout whose build/src/ holds the binary.
std::optional<fs::path> fetch_script() {
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return std::nullopt;
    const fs::path dir = exe.parent_path();
    for (const fs::path& p : {dir / ".." / "share" / "winnow" / "fetch-default-model.sh", dir / ".." / ".." / "models" / "fetch-default-model.sh"})
        if (fs::exists(p, ec)) return fs::weakly_canonical(p, ec);
    return std::nullopt;
}

std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

} // namespace

std::string resolve_model_path(const std::string& arg) {
    if (!arg.empty()) return arg;
    const fs::path dir = model_cache_dir();
    const fs::path p = dir / "SmolLM2-135M-Instruct.Q4_1.gguf";
    if (fs::exists(p)) return p.string();
    const auto script = fetch_script();
    if (!script)
        throw Error(ErrorKind::io, "the default model is not in " + dir.string() + " and fetch-default-model.sh was not found beside winnow; "
                                   "run models/fetch-default-model.sh from winnow's source, or pass -m MODEL");
    std::cerr << "winnow: the default model is missing; fetching it with " << script->string() << "\n";
    const std::string cmd = shell_quote(script->string()) + " " + shell_quote(dir.string()) + " >&2";
    if (std::system(cmd.c_str()) != 0 || !fs::exists(p)) throw Error(ErrorKind::io, "could not fetch the default model to '" + p.string() + "'");
    return p.string();
}

} // namespace winnow::cli

namespace {

void usage(std::FILE* to) {
    std::fprintf(to,
                 "usage: winnow <command> [options]\n"
                 "commands:\n"
                 "  generate -p PROMPT|-f FILE [-m MODEL] [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R]\n"
                 "           [--seed S] [--chat] [--stop STR] [--stats] [--json]   generate text, streaming\n"
                 "  chat   [-m MODEL] [--system TEXT] [sampling options]   an interactive conversation (/help inside)\n"
                 "  info   -m MODEL [--json]            architecture, shapes, tokenizer and special tokens, chat template, sampling defaults\n"
                 "  bench  decode -m MODEL [options]    prompt (ppN) and generation (tgN) tokens/s, llama-bench style\n"
                 "  bench  head -m MODEL [options]      AdaptiveSoftmax vs the exact head on real hidden states\n"
                 "  bench  finetune [-m MODEL] [options] memory policies: bytes per layer, step time, validation loss\n"
                 "  bench  gemv [options]               one GEMV per stored weight type: us and GB/s (cpu or cuda)\n"
                 "  calibrate-head -m MODEL [options]   tune the adaptive head's fudge factors, save MODEL.head.json\n"
                 "  perplexity -m MODEL --text FILE [--ctx 512] [--chunks N]   llama.cpp's perplexity protocol\n"
                 "  logits -m MODEL --ids 1,2,3|--prompt TEXT --out FILE.npy [--step prefill|decode]   next-token logits for a peer to compare\n"
                 "  calibrate-sparse -m MODEL --text FILE --out FILE [--ctx --block --method c|f|cf|coverage]   SPION block patterns\n"
                 "  bench  attention --sparse-pattern FILE [--text FILE]   dense vs block-sparse attention: op, end to end, perplexity\n"
                 "  quantize IN.gguf OUT.gguf PRESET    write a model in llama.cpp's preset types (Q4_K_M, Q5_K_M, Q6_K, Q3_K_M, Q8_0, ...)\n"
                 "  finetune -m MODEL --data FILE --out DIR [--steps --seq --batch --lr --policy ...] [--resume]\n"
                 "                                      full fine-tuning with AdamW and a memory policy; checkpoints load in generate\n"
                 "  --version                           the version and the devices this build can use\n"
                 "run 'winnow <command> --help' for its options; without -m the default model (SmolLM2-135M-Instruct Q4_1) is used.\n"
                 "generate and chat sample with the model's recommended settings, else temp 0.8, top-k 40, top-p 0.95, min-p 0.05,\n"
                 "repeat-penalty 1.1 over 64 tokens; --temp 0 is greedy.\n");
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const std::string cmd = argv[1];
    if (cmd == "-h" || cmd == "--help" || cmd == "help") {
        usage(stdout);
        return 0;
    }
    if (cmd == "--version" || cmd == "version") {
#ifdef WINNOW_HAVE_CUDA
        std::printf("winnow %s (devices: cpu, cuda)\n", WINNOW_VERSION);
#else
        std::printf("winnow %s (devices: cpu)\n", WINNOW_VERSION);
#endif
        return 0;
    }
    std::vector<std::string> args(argv + 2, argv + argc);
    const std::map<std::string, int (*)(const std::vector<std::string>&)> commands = {
        {"info", winnow::cli::cmd_info}, {"generate", winnow::cli::cmd_generate}, {"chat", winnow::cli::cmd_chat}, {"bench", winnow::cli::cmd_bench},
        {"calibrate-head", winnow::cli::cmd_calibrate_head}, {"finetune", winnow::cli::cmd_finetune},
        {"perplexity", winnow::cli::cmd_perplexity}, {"logits", winnow::cli::cmd_logits}, {"calibrate-sparse", winnow::cli::cmd_calibrate_sparse},
        {"quantize", winnow::cli::cmd_quantize}};
    auto it = commands.find(cmd);
    if (it == commands.end()) {
        std::fprintf(stderr, "winnow: unknown command '%s' (try 'winnow --help')\n", cmd.c_str());
        return 2;
    }
    try {
        return it->second(args);
    } catch (const boost::program_options::error& e) {
        std::fprintf(stderr, "winnow %s: %s\n", cmd.c_str(), e.what());
        return 2;
    } catch (const winnow::Error& e) {
        std::fprintf(stderr, "winnow %s: error (%s): %s\n", cmd.c_str(), winnow::to_string(e.kind()), e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "winnow %s: error: %s\n", cmd.c_str(), e.what());
        return 1;
    }
}
