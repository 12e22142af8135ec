#pragma once
// The adaptive output head for a loaded model: one AdaptiveSoftmax implementation over the model's head matrix
// (the fast path on the stored values by default, or the faithful reference on an fp32 copy), and the
// calibrated fudge factors (from `winnow calibrate-head`, or the theory constants).
#include <memory>
#include <string>
#include <vector>

#include "head/adaptive_algorithm.h"
#include "head/basis_file.h"
#include "model/model.h"
#include "winnow/params.h"

namespace winnow::head {

enum class HeadImpl { fast, faithful };

struct AdaptiveHeadOptions {
    HeadImpl impl = HeadImpl::fast;
    int threads = 0;   // fast path: 0 = every core
    // cuda: the fast head's top-1 queries on the current CUDA device (cuda::adaptive::GpuFastAdaptiveSoftmax; k > 1
    // and calibration stay on the CPU). The faithful head runs on the CPU only.
    Device device = Device::cpu;
    // Issue 14's variance cuts, off by default (CPU only; bench/reports/adaptive-head-rotation-smollm2.md):
    // every arm reads the query's exact_prefix heaviest columns exactly before any sampling (FastOptions /
    // FaithfulOptions::exact_prefix), and the head's rows are split into row_clusters k-means clusters whose centroid
    // logits are computed exactly, so that only the residuals are sampled (RowClusters). Calibrated factors belong to
    // one choice of both: algorithm_key names it.
    int exact_prefix = 0;
    int row_clusters = 0; // at most kMaxRowClusters
    // A stored basis (HeadBasis, from calibrate-head --fit-head-basis): the head samples A R with queries R^T x,
    // wrapped in RotatedAlgorithm so callers still pass hidden states in the model's basis. The fast head keeps A R's
    // columns in the stored format's precision and the model's own rows for its exact finish. null: the model's basis.
    // Also on the GPU (its exact rows get the query turned back on the host).
    std::shared_ptr<const HeadBasis> basis = nullptr;
};
inline constexpr int kMaxRowClusters = 1024;

// The key calibration files store factors under: "fast" or "faithful", then "+pca" with a basis, "+prefixN" and
// "+clustersK" for the options that are not 0 (e.g. "fast+pca+prefix16+clusters64"). Entries made with a basis also
// record its checksum (calibration_basis), so factors tuned in one basis are never applied in another.
std::string algorithm_key(const AdaptiveHeadOptions& o);
// The basis's checksum, or "" without one.
std::string calibration_basis(const AdaptiveHeadOptions& o);
// Throws a one-line winnow::Error unless a head of n rows and d columns can take the options' exact prefix, row
// clusters and basis (of dimension d; on the GPU, none of the three). AdaptiveHead checks this; the API checks it at model load.
void check_options(const AdaptiveHeadOptions& o, int n, int d);
// Parses "fast" or "faithful" (throws winnow::Error otherwise).
HeadImpl parse_head_impl(const std::string& s);

class ColumnMajorHead;

// The fast head's columns for these options on the CPU: the model's stored head as columns, or A (A R with a basis)
// or its rows' cluster residuals in the stored format's precision, the exact rows the model's. Immutable, so every
// session of a model may share one (the API does: the rotation and the clustering cost about a second each on
// SmolLM2, the columns n d bytes). Throws what check_options throws.
std::shared_ptr<const ColumnMajorHead> fast_head_columns(const LoadedModel& model, const AdaptiveHeadOptions& options);

class AdaptiveHead {
public:
    // columns: for the fast head on the CPU, fast_head_columns(model, options) made earlier for the same options (null:
    // made here); columns whose basis use, cluster count or shape differ are refused. Other heads ignore it.
    explicit AdaptiveHead(const LoadedModel& model, AdaptiveHeadOptions options = {}, std::shared_ptr<const ColumnMajorHead> columns = nullptr);
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
    std::vector<float> rotated_; // the faithful head's A R (the faithful head keeps its matrix by reference)
    std::unique_ptr<AdaptiveAlgorithm> algo_;
};

// What identifies a model's weights: its bytes (a .gguf file; for a directory its regular files in name order) read
// once through four interleaved FNV-1a-64 lanes over 64-bit words, with the byte count: "<bytes>:<16 hex digits>".
// Not cryptographic; it tells a re-quantized, fine-tuned or replaced file from the one a calibration was made on.
// Cost: ~0.05 s for the 98 MB SmolLM2 Q4_1 file from the page cache (bytewise FNV-1a: 0.55 s). Throws winnow::Error
// when the path cannot be read.
std::string model_content_hash(const std::string& path);

// model_content_hash(path), read on the first call and remembered: a command checks a basis file and a calibration
// file against the model, and only when it has them.
class ModelContentHash {
public:
    explicit ModelContentHash(std::string path) : path_(std::move(path)) {}
    const std::string& operator()() {
        if (hash_.empty()) hash_ = model_content_hash(path_);
        return hash_;
    }

private:
    std::string path_, hash_;
};

// Calibrated factors per algorithm and delta, stored as JSON:
// {"model": path, "model_hash": model_content_hash, "epsilon": .., "factors": [{"algorithm", "delta", "fudge_best",
// "fudge_norm", "met", "basis"}]}; met = false: even the theory constants missed the tuning budget; basis: the checksum
// of the HeadBasis the factors were tuned in (absent without one).
struct HeadCalibrationFile {
    std::string model;      // the path it was calibrated on (informational)
    std::string model_hash; // model_content_hash of that model ("" in files from before it was recorded)
    double epsilon = 0.3;
    struct Entry { std::string algorithm; double delta, fudge_best, fudge_norm; bool met = true; std::string basis = {}; };
    std::vector<Entry> factors;
    static HeadCalibrationFile load(const std::string& path); // throws winnow::Error
    // Throws a one-line winnow::Error unless the file was calibrated on this model content and for this epsilon
    // (factors tuned for another model or epsilon do not carry the guarantee over). `path`: the file, for the message.
    void check_matches(const std::string& path, const std::string& model_hash, double epsilon) const;
    // load() and check_matches() for a run of `model` at `epsilon`.
    static HeadCalibrationFile load_for(const std::string& path, const LoadedModel& model, double epsilon);
    void save(const std::string& path) const;                  // atomic: temp file + rename
    // The entry for (algorithm, delta, basis checksum), or nullptr.
    const Entry* find(const std::string& algorithm, double delta, const std::string& basis = "") const;
    // The entry for the head `o` describes at delta (its key and its basis's checksum), or nullptr.
    const Entry* find(const AdaptiveHeadOptions& o, double delta) const { return find(algorithm_key(o), delta, calibration_basis(o)); }
    // Adds the entry, replacing one with the same algorithm and delta whatever its basis (the file keeps the factors of
    // the basis calibrated last: a refit basis file replaces the old one under the same name).
    void put(const Entry& e);
};

// The fudge factors a run of the head `o` at `delta` takes from a calibration file (`cal` null: none was found), and a
// note saying where they come from, for --stats, --json and GenerateResult::head_factors: "calibrated (PATH)";
// "calibrated, tuning budget not met even by the theory constants (PATH)" for an entry with met = false (its factors
// are applied: the smallest that fail no more often than the theory constants did); or "theory constants (...)" with
// the reason (no file; no entry for this head, basis and delta).
struct HeadFactors {
    double fudge_best = 1.0, fudge_norm = 1.0;
    std::string note;
};
HeadFactors head_factors(const HeadCalibrationFile* cal, const std::string& path, const AdaptiveHeadOptions& o, double delta);

} // namespace winnow::head
