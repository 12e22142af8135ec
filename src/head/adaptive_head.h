#pragma once
// The adaptive output head for a loaded model: one AdaptiveSoftmax implementation over the model's head matrix
// (the fast path on the stored values by default, or the faithful reference on an fp32 copy), and the
// calibrated fudge factors (from `winnow calibrate-head`, or the theory constants).
#include <memory>
#include <string>
#include <vector>

#include "head/adaptive_algorithm.h"
#include "model/model.h"

namespace winnow::head {

enum class HeadImpl { fast, faithful };

struct AdaptiveHeadOptions {
    HeadImpl impl = HeadImpl::fast;
    int threads = 0;   // fast path: 0 = every core
};

// "fast", "faithful": the key calibration files store factors under.
std::string algorithm_key(const AdaptiveHeadOptions& o);
// Parses "fast" or "faithful" (throws winnow::Error otherwise).
HeadImpl parse_head_impl(const std::string& s);

class AdaptiveHead {
public:
    explicit AdaptiveHead(const LoadedModel& model, AdaptiveHeadOptions options = {});
    ~AdaptiveHead();
    AdaptiveResult select(std::span<const float> hidden, const AdaptiveParams& p) { return algo_->run(hidden, p); }
    AdaptiveAlgorithm& algorithm() { return *algo_; }
    const AdaptiveHeadOptions& options() const { return options_; }
    // The head's values as row-major fp32 [n][d] (what the exact head computes with), built on first use.
    std::span<const float> dense_matrix();

private:
    const LoadedModel& model_;
    AdaptiveHeadOptions options_;
    std::vector<float> dense_;
    std::unique_ptr<AdaptiveAlgorithm> algo_;
};

// Calibrated factors per algorithm and delta, stored as JSON:
// {"model": ..., "epsilon": .., "factors": [{"algorithm", "delta", "fudge_best", "fudge_norm"}]}.
struct HeadCalibrationFile {
    std::string model;
    double epsilon = 0.3;
    struct Entry { std::string algorithm; double delta, fudge_best, fudge_norm; };
    std::vector<Entry> factors;
    static HeadCalibrationFile load(const std::string& path); // throws winnow::Error
    void save(const std::string& path) const;                  // atomic: temp file + rename
    // The entry for (algorithm, delta), or nullptr.
    const Entry* find(const std::string& algorithm, double delta) const;
    // Adds the entry, replacing one with the same algorithm and delta.
    void put(const Entry& e);
};

} // namespace winnow::head
