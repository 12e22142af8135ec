#pragma once
// Queries for the output-head tools: final-norm hidden states at the last position of sliding windows over a text
// (the window's last token, the target, is dropped), as in the AdaptiveSoftmax paper's protocol. The text is split
// once into two regions that share no token: tuning windows lie in its first `tune_share` of tokens, test windows in
// the rest, so success is measured on text the calibration never saw (overlapping windows split by a shuffle would
// put near-copies of the tuning states in the test set).
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/model.h"

namespace winnow::cli {

struct HeadQueries {
    std::vector<std::vector<float>> tune, test;
    std::string text_hash; // FNV-1a of the text file, to name it in reports
    size_t text_tokens = 0;
    size_t boundary = 0;   // the test region's first token: tuning windows end before it, test windows start at or after it
};

struct HeadQueryPlan {
    int window = 64;         // tokens per window (the last one is the target and dropped)
    int n_tune = 200;        // windows from the tuning region
    int n_test = 0;          // windows from the test region (0: none)
    double tune_share = 0.2; // the tuning region's share of the text's tokens, in (0, 1)
};

// `cache` (optional): a file holding previously collected states for the same model content, text, and plan.
// `device` (optional): run the forward passes there (bench head --device cuda: seconds instead of a minute of CPU);
// states from a device are cached under their own key, as they differ from the CPU's in the last bits.
HeadQueries collect_head_queries(const LoadedModel& model, const std::string& text_path, const HeadQueryPlan& plan, int threads,
                                 const std::string& cache = "", const BackendOptions* device = nullptr);

} // namespace winnow::cli
