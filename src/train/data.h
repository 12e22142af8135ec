#pragma once
// Training data: a text file tokenized with the model's tokenizer, split into training and validation tokens (the
// last val_fraction of the file is validation), training windows of T + 1 tokens sampled with a seeded generator,
// and fixed validation windows (the same every evaluation, so validation losses compare across steps and runs).
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace winnow::train {

struct TokenData {
    std::vector<int32_t> train, val;
    std::string hash;  // FNV-1a of the text, names the data in checkpoints and reports
    size_t text_bytes = 0;
};

// Throws winnow::Error: unreadable file, invalid UTF-8 (naming the byte offset), or too few tokens for windows of
// `seq` + 1 tokens in both splits.
TokenData load_token_data(const Tokenizer& tok, const std::string& path, double val_fraction, int seq);

// B windows of T + 1 consecutive tokens at uniformly drawn starts: inputs = window[0..T), targets = window[1..T].
void sample_batch(const std::vector<int32_t>& tokens, int B, int T, std::mt19937_64& rng, std::vector<int32_t>& inputs, std::vector<int32_t>& targets);

// The k-th of `count` validation windows (evenly spaced over the split).
void validation_window(const std::vector<int32_t>& tokens, int k, int count, int T, std::vector<int32_t>& inputs, std::vector<int32_t>& targets);

} // namespace winnow::train
