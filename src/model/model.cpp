#include "model/model.h"

#include <filesystem>

#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/loaders.h"
#include "winnow/error.h"

namespace winnow {

namespace fs = std::filesystem;

Matrix Matrix::row_slice(int64_t first, int64_t count) const {
    Matrix m = *this;
    m.rows = count;
    m.data = row(first);
    return m;
}

LoadedModel::~LoadedModel() = default;

std::unique_ptr<LoadedModel> LoadedModel::load(const std::string& path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw Error(ErrorKind::io, "model '" + path + "' does not exist");
    std::unique_ptr<LoadedModel> m(new LoadedModel());
    m->path_ = path;
    const bool is_dir = fs::is_directory(path, ec);
    if (!is_dir && fs::path(path).extension() != ".safetensors") {
        m->format_ = ModelFormat::gguf;
        GgufLoader{*m}.load();
    } else {
        m->format_ = ModelFormat::safetensors;
        SafetensorsLoader{*m}.load();
    }
    return m;
}

std::map<std::string, int> LoadedModel::matrix_type_counts() const {
    std::map<std::string, int> counts;
    auto add = [&](const Matrix& mat) { if (!mat.empty()) counts[ggml_type_name(mat.type)]++; };
    add(weights_.tok_embd);
    if (weights_.output.data != weights_.tok_embd.data) add(weights_.output);
    for (auto& l : weights_.layers) {
        // gpt2's q/k/v are views of one fused matrix: count it once
        add(l.wq);
        if (l.wk.data != l.wq.row(l.wq.rows)) { add(l.wk); add(l.wv); }
        add(l.wo); add(l.w_gate); add(l.w_up); add(l.w_down);
    }
    return counts;
}

uint64_t LoadedModel::matrix_bytes_per_token(const std::function<bool(GgmlType)>& as_f16) const {
    uint64_t bytes = 0;
    auto add = [&](const Matrix& mat) {
        if (mat.empty()) return;
        const bool f16 = as_f16 && as_f16(mat.type);
        bytes += (f16 ? ggml_row_bytes(GgmlType::F16, static_cast<uint64_t>(mat.cols)) : mat.row_bytes) * static_cast<uint64_t>(mat.rows);
    };
    add(weights_.output);
    for (auto& l : weights_.layers) { add(l.wq); add(l.wk); add(l.wv); add(l.wo); add(l.w_gate); add(l.w_up); add(l.w_down); }
    return bytes;
}

bool LoadedModel::has_matrix_type(const std::function<bool(GgmlType)>& pred) const {
    auto match = [&](const Matrix& mat) { return !mat.empty() && pred(mat.type); };
    if (match(weights_.tok_embd) || match(weights_.output)) return true;
    for (auto& l : weights_.layers)
        for (const Matrix* mat : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down})
            if (match(*mat)) return true;
    return false;
}

} // namespace winnow
