#pragma once
// Queries for the output-head tools: final-norm hidden states at the last position of sliding windows over a text
// (the window's last token, the target, is dropped), as in the AdaptiveSoftmax paper's protocol. The text is split
// once into two regions that share no token: tuning windows lie in its first `tune_share` of tokens, test windows in
// the rest, so success is measured on text the calibration never saw (overlapping windows split by a shuffle would
// put near-copies of the tuning states in the test set). With tuning texts the tuning windows come from those other
// texts instead (the text's first region is then unused), so the calibration can see more, and more varied, text
// than one preamble, while the test windows stay exactly those of the split.
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/model.h"

namespace winnow::cli {

// A window's place: which text (an index into the tuning texts, or 0 for the query text) and its first token.
struct TextWindow {
    size_t text = 0;
    size_t start = 0;
    auto operator<=>(const TextWindow&) const = default;
};

struct HeadQueries {
    std::vector<std::vector<float>> tune, test;
    std::vector<TextWindow> tune_windows; // where each tuning query comes from, in order (sorted)
    std::string text_hash; // FNV-1a of the text file, to name it in reports
    size_t text_tokens = 0;
    size_t boundary = 0;   // the test region's first token: tuning windows end before it, test windows start at or after it
    std::vector<std::string> tune_hashes; // FNV-1a of each tuning text (empty: tuning windows from the text's first region)
    std::vector<size_t> tune_text_tokens;
};

struct HeadQueryPlan {
    int window = 64;         // tokens per window (the last one is the target and dropped)
    int n_tune = 200;        // windows from the tuning region
    int n_test = 0;          // windows from the test region (0: none)
    double tune_share = 0.2; // the tuning region's share of the text's tokens, in (0, 1); sets the test region either way
    std::vector<std::string> tune_texts; // tuning windows from these files instead of the text's first region (empty: the split)
};

// `count` windows of `window` tokens spread evenly over several texts of `tokens[i]` tokens, as if their possible
// starts were laid end to end, so each text gets windows in proportion to its length and none straddles two texts.
// For one text this is head::window_starts(0, tokens[0], ...) exactly. Throws winnow::Error when the texts are too
// short together (fewer than count / 8 possible starts, the same rule as window_starts).
std::vector<TextWindow> spread_windows(const std::vector<size_t>& tokens, int window, int count);

// `cache` (optional): a file holding previously collected states for the same model content, texts, and plan.
// `device` (optional): run the forward passes there (bench head --device cuda: seconds instead of a minute of CPU);
// states from a device are cached under their own key, as they differ from the CPU's in the last bits.
HeadQueries collect_head_queries(const LoadedModel& model, const std::string& text_path, const HeadQueryPlan& plan, int threads,
                                 const std::string& cache = "", const BackendOptions* device = nullptr);

} // namespace winnow::cli
