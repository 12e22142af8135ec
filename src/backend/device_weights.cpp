#include "backend/device_weights.h"

#include <map>

namespace winnow {

namespace {

struct Placer {
    Backend& be;
    DeviceWeights& out;
    std::map<const uint8_t*, Tensor> placed; // tied matrices are placed once

    Matrix matrix(const Matrix& m) {
        if (m.empty()) return m;
        Matrix d = m;
        auto it = placed.find(m.data);
        if (it == placed.end()) {
            Tensor t = be.place_readonly(GgmlType::I8, 1, static_cast<int64_t>(m.row_bytes * m.rows), m.data);
            it = placed.emplace(m.data, t).first;
            out.storage.push_back(t);
        }
        d.data = it->second.data<uint8_t>();
        return d;
    }
    Tensor vector(const Vector& v, int64_t rows = 1) {
        if (v.empty()) return {};
        return be.place_readonly(GgmlType::F32, rows, static_cast<int64_t>(v.size()) / rows, v.data());
    }
};

} // namespace

DeviceWeights place_weights(Backend& be, const Weights& w, int n_embd) {
    DeviceWeights d;
    Placer p{be, d, {}};
    d.tok_embd = p.matrix(w.tok_embd);
    d.output = p.matrix(w.output);
    if (!w.pos_embd.empty()) d.pos_embd = p.vector(w.pos_embd, static_cast<int64_t>(w.pos_embd.size()) / n_embd);
    d.out_norm = p.vector(w.out_norm);
    d.out_norm_b = p.vector(w.out_norm_b);
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
        o.ffn_norm = p.vector(l.ffn_norm);
        o.ffn_norm_b = p.vector(l.ffn_norm_b);
        o.w_gate = p.matrix(l.w_gate);
        o.w_up = p.matrix(l.w_up);
        o.w_down = p.matrix(l.w_down);
        o.b_up = p.vector(l.b_up);
        o.b_down = p.vector(l.b_down);
    }
    return d;
}

} // namespace winnow
