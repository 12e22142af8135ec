#include "head/adaptive_head.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#ifdef WINNOW_HAVE_CUDA
#include "backend/cuda/gpu_fast_adaptive_softmax.h"
#endif
#include "head/adaptive_softmax.h"
#include "head/fast_adaptive_softmax.h"
#include "head/rotation.h"
#include "head/row_clusters.h"
#include "io/atomic_file.h"
#include "io/json_file.h"
#include "io/number_text.h"
#include "io/quant.h"
#include "winnow/error.h"

namespace winnow::head {

std::string algorithm_key(const AdaptiveHeadOptions& o) {
    std::string key = o.impl == HeadImpl::faithful ? "faithful" : "fast";
    if (o.basis) key += "+pca";
    if (o.exact_prefix > 0) key += "+prefix" + std::to_string(o.exact_prefix);
    if (o.row_clusters > 0) key += "+clusters" + std::to_string(o.row_clusters);
    return key;
}

std::string calibration_basis(const AdaptiveHeadOptions& o) { return o.basis ? o.basis->checksum : std::string(); }

void check_options(const AdaptiveHeadOptions& o, int n, int d) {
    if (o.exact_prefix < 0 || o.exact_prefix > d)
        throw Error(ErrorKind::invalid_argument, "the adaptive head's exact prefix must be 0 to " + std::to_string(d) + " columns, not " + std::to_string(o.exact_prefix));
    // k-means holds an n x k distance block and its seeding costs k n d: beyond a thousand clusters the build takes
    // minutes and gigabytes, for residual variances the reports never needed (64 was the operating point)
    const int max_clusters = std::min(n, kMaxRowClusters);
    if (o.row_clusters < 0 || o.row_clusters > max_clusters)
        throw Error(ErrorKind::invalid_argument, "the adaptive head's row clusters must be 0 to " + std::to_string(max_clusters) + ", not " + std::to_string(o.row_clusters));
    if (o.basis && o.basis->rotation.d != d)
        throw Error(ErrorKind::invalid_argument, "the adaptive head's basis has dimension " + std::to_string(o.basis->rotation.d) + ", the head " + std::to_string(d));
    if (o.device == Device::cuda && (o.exact_prefix > 0 || o.row_clusters > 0))
        throw Error(ErrorKind::unsupported, "the adaptive head's exact prefix and row clusters run on the CPU only (--device cpu, or leave them off)");
}

HeadImpl parse_head_impl(const std::string& s) {
    if (s == "fast") return HeadImpl::fast;
    if (s == "faithful") return HeadImpl::faithful;
    throw Error(ErrorKind::invalid_argument, "--head-impl must be fast or faithful, not '" + s + "'");
}

namespace {

// The stored head as row-major fp32 [n][d].
std::vector<float> dequantize_head(const Matrix& W) {
    std::vector<float> A(static_cast<size_t>(W.rows) * W.cols);
    for (int64_t i = 0; i < W.rows; ++i) dequantize_row(W.type, W.row(i), A.data() + static_cast<size_t>(i) * W.cols, W.cols);
    return A;
}

} // namespace

AdaptiveHead::AdaptiveHead(const LoadedModel& model, AdaptiveHeadOptions options, std::shared_ptr<const ColumnMajorHead> columns)
    : model_(model), options_(options) {
    // the adaptive head estimates and ranks the raw logits; a cap changes their probabilities (not their order)
    if (model.config().final_softcap != 0)
        throw Error(ErrorKind::unsupported, "the adaptive head does not support a model that caps its logits (" + model.config().architecture() +
                                                "'s final_logit_softcapping): use the exact head");
    const Matrix& W = model.weights().output;
    const int n = static_cast<int>(W.rows), d = static_cast<int>(W.cols);
    check_options(options_, n, d);
    // columns made for other options would be read with the wrong query basis or centroids: refused
    if (columns && (columns->n() != n || columns->d() != d || columns->rotated() != static_cast<bool>(options_.basis) ||
                    columns->row_clusters().k != std::min(options_.row_clusters, n)))
        throw Error(ErrorKind::invalid_argument, "AdaptiveHead: the shared columns were not made for this head's options");
    if (options_.device == Device::cuda) {
        if (options_.impl == HeadImpl::faithful)
            throw Error(ErrorKind::invalid_argument, "the adaptive head runs on the GPU in its fast form only (--head-impl fast)");
#ifdef WINNOW_HAVE_CUDA
        // with a basis, the GPU head holds the rotated columns and each query is rotated on the host first, as on the CPU
        auto gpu = std::make_unique<cuda::adaptive::GpuFastAdaptiveSoftmax>(columns ? std::move(columns) : fast_head_columns(model, options_),
                                                                          options_.threads);
        if (options_.basis) algo_ = std::make_unique<RotatedAlgorithm>(std::move(gpu), options_.basis->rotation);
        else algo_ = std::move(gpu);
        return;
#else
        throw Error(ErrorKind::unsupported, "this winnow was built without CUDA: the adaptive head cannot run on the GPU");
#endif
    }
    if (options_.impl == HeadImpl::faithful) {
        const FaithfulOptions faithful{.exact_prefix = options_.exact_prefix, .row_clusters = options_.row_clusters};
        if (!options_.basis) {
            algo_ = std::make_unique<AdaptiveSoftmax>(dense_matrix(), n, d, faithful);
            return;
        }
        // the faithful head reads A R (fp32, held here); the model's fp32 head stays for dense_matrix()
        rotated_ = rotate_head(dense_matrix(), n, options_.basis->rotation);
        dense_ = {}; // one fp32 copy held, not two: dense_matrix() makes the model's again on demand
        algo_ = std::make_unique<RotatedAlgorithm>(std::make_unique<AdaptiveSoftmax>(rotated_, n, d, faithful), options_.basis->rotation);
        return;
    }
    auto head = std::make_unique<FastAdaptiveSoftmax>(columns ? std::move(columns) : fast_head_columns(model, options_),
                                                      FastOptions{.threads = options_.threads, .exact_prefix = options_.exact_prefix});
    if (options_.basis) algo_ = std::make_unique<RotatedAlgorithm>(std::move(head), options_.basis->rotation);
    else algo_ = std::move(head);
}

std::shared_ptr<const ColumnMajorHead> fast_head_columns(const LoadedModel& model, const AdaptiveHeadOptions& o) {
    const Matrix& W = model.weights().output;
    const int n = static_cast<int>(W.rows), d = static_cast<int>(W.cols);
    check_options(o, n, d);
    if (o.row_clusters == 0 && !o.basis) return std::make_shared<const ColumnMajorHead>(W);
    // The columns hold A (or A R), or its rows' residuals from their cluster centroids, in the stored format's
    // precision; the exact rows stay the model's (a rotated head turns the query back for them). The fp32 copies
    // made here are freed on return.
    std::vector<float> A = dequantize_head(W);
    if (o.basis) A = rotate_head(A, n, o.basis->rotation);
    RowClusters clusters = o.row_clusters > 0 ? cluster_rows(A, n, d, o.row_clusters) : RowClusters{};
    std::vector<float> R = o.basis ? o.basis->rotation.R : std::vector<float>{};
    return std::make_shared<const ColumnMajorHead>(A, n, d, ColumnMajorHead::stores_q8(W.type), W, std::move(R), std::move(clusters));
}

AdaptiveHead::~AdaptiveHead() = default;

std::span<const float> AdaptiveHead::dense_matrix() {
    if (dense_.empty()) dense_ = dequantize_head(model_.weights().output);
    return dense_;
}

namespace {

// Four FNV-1a-64 lanes over little-endian 64-bit words (word k feeds lane k mod 4): independent multiply chains, ~10x
// the bytewise loop. The bytes past the last whole 32-byte group feed lane 0 one by one.
class ContentHasher {
public:
    void add(const unsigned char* p, size_t n) {
        size_t i = 0;
        for (; i + 32 <= n; i += 32)
            for (int k = 0; k < 4; ++k) {
                uint64_t w;
                std::memcpy(&w, p + i + 8 * k, 8);
                lane_[k] = (lane_[k] ^ w) * kPrime;
            }
        for (; i < n; ++i) lane_[0] = (lane_[0] ^ p[i]) * kPrime;
        bytes_ += n;
    }
    std::string finish() const {
        uint64_t h = kBasis;
        for (uint64_t v : {lane_[0], lane_[1], lane_[2], lane_[3], bytes_}) h = (h ^ v) * kPrime;
        char buf[48];
        std::snprintf(buf, sizeof buf, "%llu:%016llx", static_cast<unsigned long long>(bytes_), static_cast<unsigned long long>(h));
        return buf;
    }

private:
    static constexpr uint64_t kBasis = 1469598103934665603ull, kPrime = 1099511628211ull;
    uint64_t lane_[4] = {kBasis, kBasis ^ 1, kBasis ^ 2, kBasis ^ 3};
    uint64_t bytes_ = 0;
};

// Feeds a file in chunks that are multiples of 32 bytes, so only the file's end takes the bytewise tail.
void hash_file(const std::filesystem::path& file, ContentHasher& h) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw Error(ErrorKind::io, "cannot read model file '" + file.string() + "' to identify it");
    std::vector<char> buf(size_t{4} << 20);
    while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        h.add(reinterpret_cast<const unsigned char*>(buf.data()), static_cast<size_t>(in.gcount()));
    }
    if (in.bad()) throw Error(ErrorKind::io, "error reading model file '" + file.string() + "'");
}

} // namespace

std::string model_content_hash(const std::string& path) {
    namespace fs = std::filesystem;
    ContentHasher h;
    if (fs::is_directory(path)) {
        std::vector<fs::path> files;
        for (const auto& e : fs::directory_iterator(path))
            if (e.is_regular_file()) files.push_back(e.path());
        std::sort(files.begin(), files.end());
        for (const auto& f : files) hash_file(f, h);
    } else {
        hash_file(path, h);
    }
    return h.finish();
}

HeadCalibrationFile HeadCalibrationFile::load(const std::string& path) {
    if (!std::ifstream(path)) throw Error(ErrorKind::io, "cannot open head calibration '" + path + "'");
    // bounded like every JSON input (size, depth, parsed memory)
    const nlohmann::json j = io::read_json_file(path, {}, "head calibration '" + path + "'");
    try {
        HeadCalibrationFile f;
        f.model = j.value("model", "");
        f.model_hash = j.value("model_hash", "");
        f.epsilon = j.value("epsilon", 0.3);
        for (const auto& e : j.at("factors"))
            f.factors.push_back({e.value("algorithm", "faithful"), e.at("delta"), e.at("fudge_best"), e.at("fudge_norm"), e.value("met", true), e.value("basis", "")});
        for (const auto& e : f.factors)
            if (!(e.fudge_best > 0 && e.fudge_best <= 1 && e.fudge_norm > 0 && e.fudge_norm <= kMaxFudgeNorm && e.delta > 0 && e.delta < 1))
                throw Error(ErrorKind::format, "head calibration '" + path + "': fudge_best must be in (0, 1], fudge_norm in (0, " +
                                                   std::to_string(static_cast<int>(kMaxFudgeNorm)) + "] and delta in (0, 1)");
        return f;
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorKind::format, "head calibration '" + path + "': " + e.what());
    }
}

void HeadCalibrationFile::save(const std::string& path) const {
    nlohmann::ordered_json j;
    j["model"] = model;
    j["model_hash"] = model_hash;
    j["epsilon"] = epsilon;
    j["factors"] = nlohmann::json::array();
    for (const auto& e : factors) {
        nlohmann::ordered_json ej = {{"algorithm", e.algorithm}, {"delta", e.delta}, {"fudge_best", e.fudge_best}, {"fudge_norm", e.fudge_norm}, {"met", e.met}};
        if (!e.basis.empty()) ej["basis"] = e.basis;
        j["factors"].push_back(ej);
    }
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp);
        out << j.dump(2) << "\n";
        out.close();
        if (!out) throw Error(ErrorKind::io, "cannot write '" + tmp + "'");
    }
    io::commit_file(tmp, path);
}

void HeadCalibrationFile::check_matches(const std::string& path, const std::string& hash, double eps) const {
    if (model_hash.empty())
        throw Error(ErrorKind::invalid_argument, "head calibration '" + path + "' does not say which model it was made on (no model_hash): rerun winnow calibrate-head");
    if (model_hash != hash)
        throw Error(ErrorKind::invalid_argument, "head calibration '" + path + "' was made on another model (content " + model_hash + ", this model " + hash +
                                                     "): rerun winnow calibrate-head");
    if (std::abs(epsilon - eps) > 1e-12 * std::max(1.0, std::abs(eps)))
        throw Error(ErrorKind::invalid_argument, "head calibration '" + path + "' was made for eps = " + number_text(epsilon) + ", this run uses eps = " + number_text(eps) +
                                                     ": pass --eps " + number_text(epsilon) + " or rerun winnow calibrate-head --eps " + number_text(eps));
}

HeadCalibrationFile HeadCalibrationFile::load_for(const std::string& path, const LoadedModel& model, double eps) {
    HeadCalibrationFile f = load(path);
    f.check_matches(path, model_content_hash(model.path()), eps);
    return f;
}

const HeadCalibrationFile::Entry* HeadCalibrationFile::find(const std::string& algorithm, double delta, const std::string& basis) const {
    for (const auto& e : factors)
        if (e.algorithm == algorithm && e.basis == basis && std::abs(e.delta - delta) < 1e-12) return &e;
    return nullptr;
}

void HeadCalibrationFile::put(const Entry& e) {
    for (auto& f : factors)
        if (f.algorithm == e.algorithm && std::abs(f.delta - e.delta) < 1e-12) {
            f = e;
            return;
        }
    factors.push_back(e);
}

HeadFactors head_factors(const HeadCalibrationFile* cal, const std::string& path, const AdaptiveHeadOptions& o, double delta) {
    if (!cal) return {.note = "theory constants (uncalibrated)"};
    const HeadCalibrationFile::Entry* e = cal->find(o, delta);
    if (!e)
        return {.note = "theory constants (" + path + " has no entry for " + algorithm_key(o) + (o.basis ? " with basis " + o.basis->checksum : std::string()) +
                        " at this delta)"};
    return {e->fudge_best, e->fudge_norm,
            e->met ? "calibrated (" + path + ")" : "calibrated, tuning budget not met even by the theory constants (" + path + ")"};
}

} // namespace winnow::head
