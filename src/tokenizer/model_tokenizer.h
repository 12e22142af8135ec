#pragma once
// The tokenizer and chat template that come with a loaded model: from the GGUF metadata, or from the files of its HF
// checkpoint directory (tokenizer.json / tokenizer.model / vocab.json + merges.txt, tokenizer_config.json).
#include <memory>
#include <string>

#include "tokenizer/tokenizer.h"

namespace winnow {

class LoadedModel;

std::unique_ptr<Tokenizer> load_model_tokenizer(const LoadedModel& model);
// The Jinja chat template the model carries; empty when it has none.
std::string load_chat_template(const LoadedModel& model);

} // namespace winnow
