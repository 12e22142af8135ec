#include "train/data.h"


#include "io/text_file.h"
#include "tokenizer/pre_tokenizer.h"
#include "winnow/error.h"

namespace winnow::train {

TokenData load_token_data(const Tokenizer& tok, const std::string& path, double val_fraction, int seq) {
    if (!(val_fraction > 0 && val_fraction < 1)) throw Error(ErrorKind::invalid_argument, "--val-fraction must be in (0, 1)");
    const std::string text = io::read_text_file(path, "training data");
    if (const size_t bad = tok::find_invalid_utf8(text); bad != std::string::npos)
        throw Error(ErrorKind::format, "training data '" + path + "': invalid UTF-8 at byte " + std::to_string(bad));
    TokenData d;
    d.text_bytes = text.size();
    d.hash = io::fnv1a_hex(text);
    const std::vector<int32_t> ids = tok.encode(text, false, false);
    const size_t n_val = static_cast<size_t>(ids.size() * val_fraction);
    d.train.assign(ids.begin(), ids.end() - static_cast<std::ptrdiff_t>(n_val));
    d.val.assign(ids.end() - static_cast<std::ptrdiff_t>(n_val), ids.end());
    if (d.train.size() < static_cast<size_t>(seq) + 2 || d.val.size() < static_cast<size_t>(seq) + 1)
        throw Error(ErrorKind::invalid_argument, "training data '" + path + "' has " + std::to_string(ids.size()) + " tokens: too few for windows of " +
                                                     std::to_string(seq) + " (+1) tokens in both the training and the validation split");
    return d;
}

void sample_batch(const std::vector<int32_t>& tokens, int B, int T, std::mt19937_64& rng, std::vector<int32_t>& inputs, std::vector<int32_t>& targets) {
    inputs.resize(static_cast<size_t>(B) * T);
    targets.resize(inputs.size());
    const uint64_t span = tokens.size() - T; // starts 0 .. size - T - 1
    for (int b = 0; b < B; ++b) {
        const size_t start = static_cast<size_t>(rng() % span); // plain modulo: platform-independent, bias < 2^-40
        for (int t = 0; t < T; ++t) {
            inputs[static_cast<size_t>(b) * T + t] = tokens[start + t];
            targets[static_cast<size_t>(b) * T + t] = tokens[start + t + 1];
        }
    }
}

void validation_window(const std::vector<int32_t>& tokens, int k, int count, int T, std::vector<int32_t>& inputs, std::vector<int32_t>& targets) {
    const size_t span = tokens.size() - T - 1;
    const size_t start = count > 1 ? span * k / (count - 1) : 0;
    inputs.assign(tokens.begin() + static_cast<std::ptrdiff_t>(start), tokens.begin() + static_cast<std::ptrdiff_t>(start + T));
    targets.assign(tokens.begin() + static_cast<std::ptrdiff_t>(start + 1), tokens.begin() + static_cast<std::ptrdiff_t>(start + T + 1));
}

} // namespace winnow::train
