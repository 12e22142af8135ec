// winnow: command-line entry point. Every failure is one line on stderr and a non-zero exit.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>

#include <boost/program_options/errors.hpp>

#include "cli/commands.h"
#include "winnow/error.h"

namespace winnow::cli {

namespace fs = std::filesystem;

std::string resolve_model_path(const std::string& arg) {
    if (!arg.empty()) return arg;
    // The default model lives in <repo>/models; WINNOW_MODELS_DIR overrides the folder.
    const char* env = std::getenv("WINNOW_MODELS_DIR");
    const fs::path dir = env ? fs::path(env) : fs::path(WINNOW_SOURCE_DIR) / "models";
    const fs::path p = dir / "SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!fs::exists(p)) {
        const std::string fetch = std::string(WINNOW_SOURCE_DIR) + "/scripts/fetch-model.sh >&2";
        std::cerr << "winnow: default model missing, fetching it with scripts/fetch-model.sh\n";
        if (std::system(fetch.c_str()) != 0 || !fs::exists(p))
            throw Error(ErrorKind::io, "could not fetch the default model to '" + p.string() + "'");
    }
    return p.string();
}

} // namespace winnow::cli

namespace {

void usage(std::FILE* to) {
    std::fprintf(to,
                 "usage: winnow <command> [options]\n"
                 "commands:\n"
                 "  generate -p PROMPT [-m MODEL] [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R]\n"
                 "           [--seed S] [--chat] [--stop STR] [--stats] [--json]   generate text, streaming\n"
                 "  info   -m MODEL [--json]            architecture, shapes, tensor types, tokenizer, context\n"
                 "  bench  decode -m MODEL [options]    prompt (ppN) and generation (tgN) tokens/s, llama-bench style\n"
                 "  bench  head -m MODEL [options]      AdaptiveSoftmax vs the exact head on real hidden states\n"
                 "  bench  finetune [-m MODEL] [options] memory policies: bytes per layer, step time, validation loss\n"
                 "  calibrate-head -m MODEL [options]   tune the adaptive head's fudge factors, save MODEL.head.json\n"
                 "  finetune -m MODEL --data FILE --out DIR [--steps --seq --batch --lr --policy ...] [--resume]\n"
                 "                                      full fine-tuning with AdamW and a memory policy; checkpoints load in generate\n"
                 "run 'winnow <command> --help' for its options; without -m the default model (SmolLM2-135M-Instruct Q4_1) is used.\n");
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
    std::vector<std::string> args(argv + 2, argv + argc);
    const std::map<std::string, int (*)(const std::vector<std::string>&)> commands = {
        {"info", winnow::cli::cmd_info}, {"generate", winnow::cli::cmd_generate}, {"bench", winnow::cli::cmd_bench},
        {"calibrate-head", winnow::cli::cmd_calibrate_head}, {"finetune", winnow::cli::cmd_finetune}};
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
