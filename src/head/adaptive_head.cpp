#include "head/adaptive_head.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "head/adaptive_softmax.h"
#include "head/fast_adaptive_softmax.h"
#include "io/atomic_file.h"
#include "io/json_file.h"
#include "io/quant.h"
#include "winnow/error.h"

namespace winnow::head {

std::string algorithm_key(const AdaptiveHeadOptions& o) {
    return o.impl == HeadImpl::faithful ? "faithful" : "fast";
}

HeadImpl parse_head_impl(const std::string& s) {
    if (s == "fast") return HeadImpl::fast;
    if (s == "faithful") return HeadImpl::faithful;
    throw Error(ErrorKind::invalid_argument, "--head-impl must be fast or faithful, not '" + s + "'");
}

AdaptiveHead::AdaptiveHead(const LoadedModel& model, AdaptiveHeadOptions options) : model_(model), options_(options) {
    const Matrix& W = model.weights().output;
    if (options_.impl == HeadImpl::faithful) {
        algo_ = std::make_unique<AdaptiveSoftmax>(dense_matrix(), static_cast<int>(W.rows), static_cast<int>(W.cols));
    } else {
        algo_ = std::make_unique<FastAdaptiveSoftmax>(std::make_shared<ColumnMajorHead>(W), options_.threads);
    }
}

AdaptiveHead::~AdaptiveHead() = default;

std::span<const float> AdaptiveHead::dense_matrix() {
    if (dense_.empty()) {
        const Matrix& W = model_.weights().output;
        dense_.resize(static_cast<size_t>(W.rows) * W.cols);
        for (int64_t i = 0; i < W.rows; ++i) dequantize_row(W.type, W.row(i), dense_.data() + static_cast<size_t>(i) * W.cols, W.cols);
    }
    return dense_;
}

HeadCalibrationFile HeadCalibrationFile::load(const std::string& path) {
    if (!std::ifstream(path)) throw Error(ErrorKind::io, "cannot open head calibration '" + path + "'");
    // bounded like every JSON input (size, depth, parsed memory)
    const nlohmann::json j = io::read_json_file(path, {}, "head calibration '" + path + "'");
    try {
        HeadCalibrationFile f;
        f.model = j.value("model", "");
        f.epsilon = j.value("epsilon", 0.3);
        for (const auto& e : j.at("factors"))
            f.factors.push_back({e.value("algorithm", "faithful"), e.at("delta"), e.at("fudge_best"), e.at("fudge_norm")});
        for (const auto& e : f.factors)
            if (!(e.fudge_best > 0 && e.fudge_best <= 1 && e.fudge_norm > 0 && e.fudge_norm <= 1 && e.delta > 0 && e.delta < 1))
                throw Error(ErrorKind::format, "head calibration '" + path + "': factors must be in (0, 1] and delta in (0, 1)");
        return f;
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorKind::format, "head calibration '" + path + "': " + e.what());
    }
}

void HeadCalibrationFile::save(const std::string& path) const {
    nlohmann::ordered_json j;
    j["model"] = model;
    j["epsilon"] = epsilon;
    j["factors"] = nlohmann::json::array();
    for (const auto& e : factors)
        j["factors"].push_back({{"algorithm", e.algorithm}, {"delta", e.delta}, {"fudge_best", e.fudge_best}, {"fudge_norm", e.fudge_norm}});
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp);
        out << j.dump(2) << "\n";
        out.close();
        if (!out) throw Error(ErrorKind::io, "cannot write '" + tmp + "'");
    }
    io::commit_file(tmp, path);
}

const HeadCalibrationFile::Entry* HeadCalibrationFile::find(const std::string& algorithm, double delta) const {
    for (const auto& e : factors)
        if (e.algorithm == algorithm && std::abs(e.delta - delta) < 1e-12) return &e;
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

} // namespace winnow::head
