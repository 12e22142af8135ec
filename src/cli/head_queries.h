#pragma once
// Queries for the output-head tools: final-norm hidden states at the last position of sliding windows over a text
// (the window's last token, the target, is dropped), as in the AdaptiveSoftmax paper's protocol.
#include <string>
#include <vector>

#include "model/model.h"

namespace winnow::cli {

struct HeadQueries {
    std::vector<std::vector<float>> queries;
    std::string text_hash; // FNV-1a of the text file, to name it in reports
    size_t text_tokens = 0;
};

// `cache` (optional): a file holding previously collected states for the same model, text, window and count.
HeadQueries collect_head_queries(const LoadedModel& model, const std::string& text_path, int window, int n_queries, int threads,
                                 const std::string& cache = "");

} // namespace winnow::cli
