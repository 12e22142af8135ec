// winnow chat: an interactive multi-turn conversation in the terminal. The conversation stays in the KV cache, so
// each turn prefills only its own new tokens (decode/chat_session.h); answers stream; Ctrl-C stops an answer and
// returns to the prompt; Ctrl-D (or the end of a piped stdin) exits.
#include <cstdio>
#include <iostream>

#include <boost/program_options.hpp>
#include <unistd.h>

#include "backend/backend.h"
#include "chat/chat_template.h"
#include "cli/commands.h"
#include "cli/device_options.h"
#include "cli/options.h"
#include "cli/run_stats.h"
#include "cli/sampling_options.h"
#include "cli/terminal_input.h"
#include "decode/chat_session.h"
#include "decode/sampling_defaults.h"
#include "model/model.h"
#include "tokenizer/model_tokenizer.h"
#include "winnow/error.h"

namespace po = boost::program_options;

namespace winnow::cli {

namespace {

const char* kHelp =
    "  /system TEXT   set the system message (empty: the template's default); the conversation continues\n"
    "  /reset         forget the conversation (the system message stays)\n"
    "  /stats         tokens in the context, the last turn's reused and prefilled tokens, speeds, memory\n"
    "  /help          this list\n"
    "  /exit          leave (so does Ctrl-D); Ctrl-C stops an answer\n";

// Notices go to stderr, so that with a piped stdin, stdout holds only the answers.
void notice(const std::string& s) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s\n", s.c_str());
}

std::string stats_text(const ChatSession& chat, double load_seconds) {
    const ChatTurnStats& t = chat.last_turn();
    char buf[400];
    std::snprintf(buf, sizeof buf,
                  "context: %d of %d tokens | last turn: reused %d, prefilled %d, generated %d | prefill %.1f tok/s, generation %.1f tok/s | "
                  "model load: %.2f s | peak memory: %.0f MiB",
                  chat.tokens_in_context(), chat.n_ctx(), t.reused, t.prefilled, t.generated,
                  t.prefill_seconds > 0 ? t.prefilled / t.prefill_seconds : 0.0, t.generation_seconds > 0 ? t.generated / t.generation_seconds : 0.0,
                  load_seconds, peak_rss_mib());
    return buf;
}

} // namespace

int cmd_chat(const std::vector<std::string>& args) {
    std::string model_arg, system, dot, template_file, template_kwargs;
    GenerateOptions opt;
    SamplingArgs sampling_args;
    int n_ctx = 0, threads = 0;
    std::vector<std::string> stops;
    DeviceArgs device_args;
    po::options_description opts("winnow chat options (in the session: /help)");
    opts.add_options()("help,h", "show this help")("model,m", po::value(&model_arg), "model file (.gguf) or HF checkpoint; default: SmolLM2-135M-Instruct")(
        "system", po::value(&system), "system message (default: the template's own, if it has one)")(
        "n-predict,n", po::value(&opt.max_tokens)->default_value(-1), "tokens per answer at most (-1: until the model ends it or the context is full)")(
        "stop", po::value(&stops)->composing(), "stop string (repeatable); the answer ends before it")(
        "chat-template-file", po::value(&template_file), "Jinja chat template to use instead of the model's")(
        "chat-template-kwargs", po::value(&template_kwargs), "more variables for the template, a JSON object (e.g. '{\"enable_thinking\": false}' for Qwen3)")(
        "ctx", po::value(&n_ctx)->default_value(2048), "context length in tokens for the whole conversation (0 = the model's training context)")(
        "threads,t", po::value(&threads)->default_value(0), "CPU threads (0 = all cores)");
    add_sampling_options(opts, sampling_args);
    add_device_options(opts, device_args);
    add_dot_option(opts, dot);
    po::variables_map vm;
    if (!parse_options(opts, args, vm)) return 0;
    check_sampler_order(sampling_args);
    check_chat_template_kwargs(template_kwargs);
    if (n_ctx < 0 || threads < 0) throw Error(ErrorKind::invalid_argument, "--ctx and --threads must be >= 0");
    if (opt.max_tokens < -1) throw Error(ErrorKind::invalid_argument, "-n must be -1 (no limit) or >= 0");
    opt.stop = stops;
    const BackendOptions backend_opts = backend_options(device_args, threads, dot_mode(dot));
    const GgmlType kv_type = kv_cache_type(device_args);

    const std::string model_path = resolve_model_path(model_arg);
    const LoadTimer load_timer;
    auto model = LoadedModel::load(model_path);
    opt.sampling = resolve_sampling(vm, sampling_args, recommended_sampling(*model));
    const std::unique_ptr<Tokenizer> tokenizer = load_model_tokenizer(*model);
    const ChatTemplate chat_template = load_chat_template_for(*model, *tokenizer, {template_file, template_kwargs});
    if (chat_template.source.empty())
        throw Error(ErrorKind::unsupported, "the model has no chat template (tokenizer.chat_template); give one with --chat-template-file FILE");
    auto backend = make_backend(backend_opts);
    ChatSession chat(*model, *tokenizer, *backend, chat_template, opt, n_ctx == 0 ? 0 : std::min(n_ctx, model->config().n_ctx_train), kv_type);
    chat.set_system(system);
    const double load_seconds = load_timer.seconds();

    const bool interactive = isatty(0);
    install_interrupt_handler();
    if (interactive)
        notice("winnow chat: " + model->config().name + ", " + std::to_string(chat.n_ctx()) + " tokens of context, " + describe_sampling(opt.sampling) +
               ".\n/help lists the commands; Ctrl-C stops an answer, Ctrl-D exits.");

    LineReader reader;
    std::string line;
    for (;;) {
        if (interactive) {
            std::fputs("> ", stdout);
            std::fflush(stdout);
        }
        const ReadResult got = reader.read(line);
        if (got == ReadResult::eof) {
            if (interactive) std::fputs("\n", stdout);
            return 0;
        }
        if (got == ReadResult::interrupted) {
            notice("\n(Ctrl-D exits)");
            continue;
        }
        if (line.empty()) continue;
        if (line == "/exit" || line == "/quit") return 0;
        if (line == "/help") {
            notice(kHelp);
            continue;
        }
        if (line == "/reset") {
            chat.reset();
            notice("(the conversation is cleared)");
            continue;
        }
        if (line == "/stats") {
            notice(stats_text(chat, load_seconds));
            continue;
        }
        if (line == "/system" || line.starts_with("/system ")) {
            chat.set_system(line.size() > 8 ? line.substr(8) : "");
            notice(chat.system().empty() ? "(the system message is the template's default)" : "(the system message is set)");
            continue;
        }
        if (line[0] == '/') {
            notice("unknown command '" + line.substr(0, line.find(' ')) + "' (/help lists them)");
            continue;
        }

        g_interrupted.store(false);
        const StreamCallback print = [](std::string_view piece) {
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
            return !g_interrupted.load();
        };
        try {
            const ChatTurnStats t = chat.ask(line, print, &g_interrupted);
            std::fputs("\n", stdout);
            std::fflush(stdout);
            if (t.stop_reason == "interrupted") notice("(stopped)");
            else if (t.stop_reason == "context")
                notice("(the context is full: " + std::to_string(chat.tokens_in_context()) + " of " + std::to_string(chat.n_ctx()) +
                       " tokens; /reset starts a new conversation)");
        } catch (const ContextFull& e) {
            notice(std::string(e.what()) + "; /reset starts a new conversation (the system message stays)");
        } catch (const Error& e) {
            // e.g. a message that is not UTF-8: this turn is dropped, the session goes on
            notice(std::string("error: ") + e.what());
        }
        g_interrupted.store(false);
    }
}

} // namespace winnow::cli
