#include "tokenizer/model_tokenizer.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/gguf.h"
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
    std::ifstream in(std::filesystem::path(dir) / "tokenizer_config.json");
    if (!in) return {};
    try {
        const auto j = nlohmann::json::parse(in);
        return j.contains("chat_template") && j["chat_template"].is_string() ? j["chat_template"].get<std::string>() : std::string();
    } catch (const nlohmann::json::exception&) {
        throw Error(ErrorKind::format, "'" + dir + "/tokenizer_config.json': invalid JSON");
    }
}

} // namespace winnow
