#pragma once
// The adaptive output head for a loaded model: an fp32 copy of the model's head matrix, the AdaptiveSoftmax
// preprocessing, and the calibrated fudge factors (from `winnow calibrate-head`, or the theory constants).
#include <memory>
#include <string>
#include <vector>

#include "head/adaptive_softmax.h"
#include "model/model.h"

namespace winnow::head {

class AdaptiveHead {
public:
    explicit AdaptiveHead(const Model& model);
    AdaptiveResult select(std::span<const float> hidden, const AdaptiveParams& p) { return as_->run(hidden, p); }
    std::span<const float> matrix() const { return A_; }
    AdaptiveSoftmax& softmax() { return *as_; }

private:
    std::vector<float> A_;
    std::unique_ptr<AdaptiveSoftmax> as_;
};

// Calibrated factors per delta, stored as JSON: {"model": ..., "epsilon": .., "factors": [{"delta", "fudge_best", "fudge_norm"}]}.
struct HeadCalibrationFile {
    std::string model;
    double epsilon = 0.3;
    struct Entry { double delta, fudge_best, fudge_norm; };
    std::vector<Entry> factors;
    static HeadCalibrationFile load(const std::string& path); // throws winnow::Error
    void save(const std::string& path) const;                  // atomic: temp file + rename
    // The entry for delta (exact match), or nullptr.
    const Entry* find(double delta) const;
};

} // namespace winnow::head
