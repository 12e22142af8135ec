#include "head/adaptive_head.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/quant.h"
#include "winnow/error.h"

namespace winnow::head {

AdaptiveHead::AdaptiveHead(const Model& model) {
    const Matrix& W = model.weights().output;
    A_.resize(static_cast<size_t>(W.rows) * W.cols);
    for (int64_t i = 0; i < W.rows; ++i) dequantize_row(W.type, W.row(i), A_.data() + static_cast<size_t>(i) * W.cols, W.cols);
    as_ = std::make_unique<AdaptiveSoftmax>(A_, static_cast<int>(W.rows), static_cast<int>(W.cols));
}

HeadCalibrationFile HeadCalibrationFile::load(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw Error(ErrorKind::io, "cannot open head calibration '" + path + "'");
    try {
        const auto j = nlohmann::json::parse(in);
        HeadCalibrationFile f;
        f.model = j.value("model", "");
        f.epsilon = j.value("epsilon", 0.3);
        for (const auto& e : j.at("factors")) f.factors.push_back({e.at("delta"), e.at("fudge_best"), e.at("fudge_norm")});
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
    for (const auto& e : factors) j["factors"].push_back({{"delta", e.delta}, {"fudge_best", e.fudge_best}, {"fudge_norm", e.fudge_norm}});
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp);
        out << j.dump(2) << "\n";
        if (!out) throw Error(ErrorKind::io, "cannot write '" + tmp + "'");
    }
    std::filesystem::rename(tmp, path);
}

const HeadCalibrationFile::Entry* HeadCalibrationFile::find(double delta) const {
    for (const auto& e : factors)
        if (std::abs(e.delta - delta) < 1e-12) return &e;
    return nullptr;
}

} // namespace winnow::head
