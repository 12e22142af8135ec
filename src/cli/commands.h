#pragma once
// `winnow` subcommands. Each takes the arguments after its name and returns the process exit code.
#include <string>
#include <vector>

namespace winnow::cli {

int cmd_info(const std::vector<std::string>& args);
int cmd_generate(const std::vector<std::string>& args);
int cmd_chat(const std::vector<std::string>& args);
int cmd_bench(const std::vector<std::string>& args);
int cmd_bench_head(const std::vector<std::string>& args);
// bench head --device cuda (cli/cmd_bench_head_device.cpp): the exact head's kernels timed on a GPU (or, with
// --device cpu, the same rows on the CPU backend)
int cmd_bench_head_device(const std::vector<std::string>& args);
bool bench_head_wants_device(const std::vector<std::string>& args); // --device among the arguments
int cmd_calibrate_head(const std::vector<std::string>& args);
int cmd_finetune(const std::vector<std::string>& args);
int cmd_bench_finetune(const std::vector<std::string>& args);
int cmd_perplexity(const std::vector<std::string>& args);
int cmd_logits(const std::vector<std::string>& args); // float32 .npy of next-token logits (cli/cmd_logits.cpp)
int cmd_calibrate_sparse(const std::vector<std::string>& args);
int cmd_bench_attention(const std::vector<std::string>& args);
// bench gemv (cli/cmd_bench_gemv.cpp): one GEMV per stored weight type on the same shapes, time and GB/s per type.
int cmd_bench_gemv(const std::vector<std::string>& args);
// quantize (cli/cmd_quantize.cpp): a GGUF written again in a llama.cpp preset's types, as llama-quantize does.
int cmd_quantize(const std::vector<std::string>& args);

// Resolves -m: a path as given, or the default model in the model cache (fetched with models/fetch-default-model.sh).
std::string resolve_model_path(const std::string& arg);

} // namespace winnow::cli
