#pragma once
// Calibrating a SPION pattern on text: chunks of ctx tokens run through the dense model on the CPU with the attention
// capture on; each layer's head-mean map becomes block scores (sparse/pattern.h), averaged over the chunks, then
// blocks are selected per layer. Deterministic for a given model, text and options.
#include <cstdint>
#include <functional>
#include <vector>

#include "model/model.h"
#include "sparse/pattern.h"

namespace winnow::sparse {

struct CalibrationOptions {
    int ctx = 1024;       // calibration length (the pattern's calib_ctx)
    int max_chunks = 4;   // chunks of ctx tokens averaged (0: all the text holds)
    int32_t bos = -1;     // >= 0: each chunk starts with BOS, as in perplexity
    int threads = 0;
    PatternOptions pattern;
};

SparsePattern calibrate(const LoadedModel& model, const std::vector<int32_t>& tokens, const CalibrationOptions& o,
                        const std::function<void(int chunk, int chunks)>& progress = {});

} // namespace winnow::sparse
