#include "tokenizer/model_tokenizer.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "io/json_file.h"
#include "model/model.h"
#include "winnow/error.h"

namespace winnow {

namespace {

std::string checkpoint_dir(const LoadedModel& model) {
    const std::filesystem::path p(model.path());
    return std::filesystem::is_directory(p) ? p.string() : p.parent_path().string();
}

} // namespace

std::unique_ptr<Tokenizer> load_model_tokenizer(const LoadedModel& model) {
    if (model.gguf()) return Tokenizer::from_gguf(*model.gguf());
    return Tokenizer::from_hf_dir(checkpoint_dir(model));
}

std::string load_chat_template(const LoadedModel& model) {
    if (model.gguf()) return model.gguf()->get_string("tokenizer.chat_template").value_or("");
    const std::string dir = checkpoint_dir(model);
    const std::filesystem::path p = std::filesystem::path(dir) / "tokenizer_config.json";
    if (!std::filesystem::exists(p)) return {};
    const auto j = io::read_json_file(p); // bounded: size, depth and memory
    return j.contains("chat_template") && j["chat_template"].is_string() ? j["chat_template"].get<std::string>() : std::string();
}

} // namespace winnow
