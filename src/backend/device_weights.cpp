#include "backend/device_weights.h"

#include <cmath>
#include <cstring>
#include <map>

#include "io/quant.h"

namespace winnow {

namespace {

// The matrix decoded and stored as `to` (F16 or F32); false, with `bytes` incomplete, when a decoded value is beyond
// F16's range (65504) and `to` is F16.
bool encode_as(const Matrix& m, GgmlType to, std::vector<uint8_t>& bytes) {
    std::vector<float> row(static_cast<size_t>(m.cols));
    const uint64_t row_bytes = ggml_row_bytes(to, static_cast<uint64_t>(m.cols));
    bytes.resize(row_bytes * static_cast<size_t>(m.rows));
    for (int64_t r = 0; r < m.rows; ++r) {
        dequantize_row(m.type, m.row(r), row.data(), row.size());
        uint8_t* dst = bytes.data() + static_cast<size_t>(r) * row_bytes;
        if (to == GgmlType::F32) {
            std::memcpy(dst, row.data(), row_bytes);
            continue;
        }
        for (float x : row)
            if (!(std::abs(x) <= 65504.0f)) return false;
        quantize_row_ref(GgmlType::F16, row.data(), dst, row.size());
    }
    return true;
}

// A matrix that placed_as_f16 names, decoded and stored as F16: 2 bytes a weight instead of ~0.6, but one rounding of
// each decoded weight (at most 2^-11 relative, 2^-25 absolute below F16's normal range). A matrix with a decoded value
// beyond F16's range (65504) is stored as F32 instead (decoded a second time: rare). Returns the bytes and sets the
// matrix's type and row stride.
std::vector<uint8_t> converted(Matrix& m) {
    std::vector<uint8_t> bytes;
    const GgmlType to = encode_as(m, GgmlType::F16, bytes) ? GgmlType::F16 : GgmlType::F32;
    if (to == GgmlType::F32) encode_as(m, GgmlType::F32, bytes);
    m.type = to;
    m.row_bytes = ggml_row_bytes(to, static_cast<uint64_t>(m.cols));
    return bytes;
}

struct Placer {
    Backend& be;
    DeviceWeights& out;
    std::map<const uint8_t*, Matrix> placed; // tied matrices are placed once

    Matrix matrix(const Matrix& m) {
        if (m.empty()) return m;
        auto it = placed.find(m.data);
        if (it == placed.end()) {
            Matrix d = m;
            std::vector<uint8_t> bytes;
            if (placed_as_f16(be, m.type)) bytes = converted(d);
            const void* host = bytes.empty() ? m.data : bytes.data();
            Tensor t = be.place_readonly(GgmlType::I8, 1, static_cast<int64_t>(d.row_bytes * d.rows), host);
            if (!bytes.empty() && be.device() == Device::cpu) out.converted.push_back(std::move(bytes)); // the CPU borrows it
            out.storage.push_back(t);
            d.data = t.data<uint8_t>();
            it = placed.emplace(m.data, d).first;
        }
        Matrix d = it->second;
        d.name = m.name;
        return d;
    }
    Tensor vector(const Vector& v, int64_t rows = 1) {
        if (v.empty()) return {};
        return be.place_readonly(GgmlType::F32, rows, static_cast<int64_t>(v.size()) / rows, v.data());
    }
};

} // namespace

bool placed_as_f16(const Backend& be, GgmlType type) {
    if (!is_preset_type(type)) return false;
    for (Op op : {Op::linear, Op::linear_parts, Op::linear_add, Op::linear_swiglu, Op::get_rows})
        if (!be.supports(op, type)) return true;
    return false;
}

DeviceWeights place_weights(Backend& be, const Weights& w, int n_embd) {
    DeviceWeights d;
    Placer p{be, d, {}};
    d.tok_embd = p.matrix(w.tok_embd);
    d.output = p.matrix(w.output);
    if (!w.pos_embd.empty()) d.pos_embd = p.vector(w.pos_embd, static_cast<int64_t>(w.pos_embd.size()) / n_embd);
    d.out_norm = p.vector(w.out_norm);
    d.out_norm_b = p.vector(w.out_norm_b);
    d.rope_freqs = p.vector(w.rope_freqs);
    for (const LayerWeights& l : w.layers) {
        DeviceLayerWeights& o = d.layers.emplace_back();
        o.attn_norm = p.vector(l.attn_norm);
        o.attn_norm_b = p.vector(l.attn_norm_b);
        o.wq = p.matrix(l.wq);
        o.wk = p.matrix(l.wk);
        o.wv = p.matrix(l.wv);
        o.wo = p.matrix(l.wo);
        o.bq = p.vector(l.bq);
        o.bk = p.vector(l.bk);
        o.bv = p.vector(l.bv);
        o.bo = p.vector(l.bo);
        o.q_norm = p.vector(l.q_norm);
        o.k_norm = p.vector(l.k_norm);
        o.ffn_norm = p.vector(l.ffn_norm);
        o.ffn_norm_b = p.vector(l.ffn_norm_b);
        o.w_gate = p.matrix(l.w_gate);
        o.w_up = p.matrix(l.w_up);
        o.w_down = p.matrix(l.w_down);
        o.b_up = p.vector(l.b_up);
        o.b_down = p.vector(l.b_down);
        o.post_attn_norm = p.vector(l.post_attn_norm);
        o.post_ffn_norm = p.vector(l.post_ffn_norm);
    }
    return d;
}

} // namespace winnow
