#include "sparse/calibrate.h"

#include <algorithm>

#include "decode/forward.h"
#include "winnow/error.h"

namespace winnow::sparse {

SparsePattern calibrate(const LoadedModel& model, const std::vector<int32_t>& tokens, const CalibrationOptions& o,
                        const std::function<void(int, int)>& progress) {
    const ModelConfig& c = model.config();
    const PatternOptions& po = o.pattern;
    if (o.ctx < po.block || o.ctx > c.n_ctx_train)
        throw Error(ErrorKind::invalid_argument, "calibration length " + std::to_string(o.ctx) + " must be between the block size " + std::to_string(po.block) +
                                                     " and the model's context " + std::to_string(c.n_ctx_train));
    if (po.block < 1 || po.window < 1 || po.conv_taps < 1 || po.conv_taps % 2 == 0 || !(po.density > 0 && po.density <= 1) || !(po.quantile >= 0 && po.quantile < 1) || !(po.coverage > 0 && po.coverage <= 1))
        throw Error(ErrorKind::invalid_argument, "pattern options: need block >= 1, window >= 1, odd conv taps, density in (0, 1], quantile in [0, 1), coverage in (0, 1]");
    int chunks = static_cast<int>(tokens.size() / o.ctx);
    if (o.max_chunks > 0) chunks = std::min(chunks, o.max_chunks);
    if (chunks < 1) throw Error(ErrorKind::invalid_argument, "the calibration text has " + std::to_string(tokens.size()) + " tokens, fewer than one chunk of " + std::to_string(o.ctx));

    auto be = make_cpu_backend(o.threads);
    Forward f(model, *be, o.ctx);
    const int nb = (o.ctx + po.block - 1) / po.block;
    const int taps = po.method == Method::f ? 1 : po.conv_taps;
    const int groups = po.per_group ? c.n_head_kv : 1;
    // [layer * groups + group] -> nb x nb
    std::vector<std::vector<double>> scores(static_cast<size_t>(c.n_layer) * groups, std::vector<double>(static_cast<size_t>(nb) * nb, 0.0)), mass = scores;
    f.set_attention_capture(
        [&](int layer, int group, const float* P, int n, int64_t stride) {
            const size_t at = static_cast<size_t>(layer) * groups + group;
            const auto m = block_mass(P, n, stride, po.block);
            for (size_t i = 0; i < m.size(); ++i) mass[at][i] += m[i];
            if (po.method == Method::coverage) return;
            const auto s = block_scores(P, n, stride, po.block, taps, po.relative);
            for (size_t i = 0; i < s.size(); ++i) scores[at][i] += s[i];
        },
        po.per_group);
    std::vector<int32_t> chunk(o.ctx);
    for (int k = 0; k < chunks; ++k) {
        std::copy(tokens.begin() + static_cast<size_t>(k) * o.ctx, tokens.begin() + static_cast<size_t>(k + 1) * o.ctx, chunk.begin());
        if (o.bos >= 0) chunk[0] = o.bos;
        f.reset();
        f.eval(chunk, false);
        if (progress) progress(k + 1, chunks);
    }

    SparsePattern p;
    p.model = c.name;
    p.n_layer = c.n_layer;
    p.n_embd = c.n_embd;
    p.n_head = c.n_head;
    p.n_vocab = c.n_vocab;
    p.block = po.block;
    p.calib_ctx = o.ctx;
    p.calib_chunks = chunks;
    p.method = po.method;
    p.density = po.density;
    p.quantile = po.quantile;
    p.window = po.window;
    p.relative = po.relative;
    p.coverage = po.coverage;
    p.n_head_kv = c.n_head_kv;
    p.groups = groups;
    for (int l = 0; l < c.n_layer; ++l) {
        LayerPattern lp;
        for (int g = 0; g < groups; ++g) {
            const size_t at = static_cast<size_t>(l) * groups + g;
            for (double& v : scores[at]) v /= chunks;
            const auto keep = select_blocks(po.method == Method::coverage ? mass[at] : scores[at], nb, po);
            lp.keep.insert(lp.keep.end(), keep.begin(), keep.end());
            lp.kept_mass += kept_mass_share(mass[at], keep, nb) / groups;
        }
        p.layers.push_back(std::move(lp));
    }
    p.derive_profiles();
    return p;
}

} // namespace winnow::sparse
