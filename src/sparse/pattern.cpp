#include "sparse/pattern.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/json_file.h"
#include "winnow/error.h"

namespace winnow::sparse {

const char* to_string(Method m) {
    switch (m) {
    case Method::c: return "c";
    case Method::f: return "f";
    case Method::cf: return "cf";
    case Method::coverage: return "coverage";
    }
    return "?";
}

Method parse_method(const std::string& s) {
    if (s == "c") return Method::c;
    if (s == "f") return Method::f;
    if (s == "cf") return Method::cf;
    if (s == "coverage") return Method::coverage;
    throw Error(ErrorKind::invalid_argument, "--method must be c, f, cf or coverage, not '" + s + "'");
}

std::vector<double> block_scores(const float* A, int n, int64_t stride, int block, int taps, bool relative) {
    const int nb = (n + block - 1) / block, half = taps / 2;
    std::vector<double> sum(static_cast<size_t>(nb) * nb, 0.0);
    std::vector<double> prefix;
    // along each causal diagonal d = i - j >= 0: conv(i, j) = sum of A over the diagonal within +-half (zero padded)
    for (int d = 0; d < n; ++d) {
        const int len = n - d; // entries (t + d, t), t < len
        prefix.assign(static_cast<size_t>(len) + 1, 0.0);
        for (int t = 0; t < len; ++t) prefix[t + 1] = prefix[t] + A[static_cast<size_t>(t + d) * stride + t] * (relative ? t + d + 1.0 : 1.0);
        for (int t = 0; t < len; ++t) {
            const double conv = prefix[std::min(len, t + half + 1)] - prefix[std::max(0, t - half)];
            sum[static_cast<size_t>((t + d) / block) * nb + t / block] += conv;
        }
    }
    // average over each block's area (clipped at the matrix edge), causal blocks only
    for (int qb = 0; qb < nb; ++qb)
        for (int kb = 0; kb < nb; ++kb) {
            const double rows = std::min(block, n - qb * block), cols = std::min(block, n - kb * block);
            double& s = sum[static_cast<size_t>(qb) * nb + kb];
            s = kb <= qb ? s / (rows * cols) : 0.0;
        }
    return sum;
}

std::vector<double> block_mass(const float* A, int n, int64_t stride, int block) {
    const int nb = (n + block - 1) / block;
    std::vector<double> mass(static_cast<size_t>(nb) * nb, 0.0);
    for (int i = 0; i < n; ++i) {
        const float* row = A + static_cast<size_t>(i) * stride;
        double* out = &mass[static_cast<size_t>(i / block) * nb];
        for (int j = 0; j <= i; ++j) out[j / block] += row[j];
    }
    return mass;
}

double kept_mass_share(const std::vector<double>& mass, const std::vector<uint8_t>& keep, int nb) {
    double share = 0;
    int rows = 0;
    for (int qb = 0; qb < nb; ++qb) {
        double total = 0, kept = 0;
        for (int kb = 0; kb <= qb; ++kb) {
            const size_t i = static_cast<size_t>(qb) * nb + kb;
            total += mass[i];
            if (keep[i]) kept += mass[i];
        }
        if (total > 0) share += kept / total, ++rows;
    }
    return rows ? share / rows : 0;
}

namespace {

// Always kept: the sink column and a local window of `window` blocks ending at the diagonal (window >= 2 means every
// query sees at least the previous `block` tokens; with the diagonal alone, a query at a block's start would see only
// the sink and itself).
bool forced(int qb, int kb, int window) { return kb == 0 || (kb <= qb && qb - kb < window); }

// SPION's greedy walk (spec 3.3) from the top-row and left-column seeds over the scores padded with a zero row and
// column; ties go diagonal; the seed cell is never marked.
std::vector<uint8_t> walk_marks(const std::vector<double>& pool, int nb, double thr) {
    auto G = [&](int x, int y) { return x < nb && y < nb ? pool[static_cast<size_t>(x) * nb + y] : 0.0; };
    std::vector<uint8_t> mark(static_cast<size_t>(nb) * nb, 0);
    auto walk = [&](int x, int y) {
        while (x < nb && y < nb) {
            const double d = G(x + 1, y), r = G(x, y + 1), g = G(x + 1, y + 1);
            if (d > r) {
                if (d > g) ++x;
                else ++x, ++y;
            } else {
                if (r > g) ++y;
                else ++x, ++y;
            }
            if (x < nb && y < nb && G(x, y) > thr) mark[static_cast<size_t>(x) * nb + y] = 1;
        }
    };
    for (int s = 0; s < nb; ++s) {
        walk(0, s);
        walk(s, 0);
    }
    return mark;
}

} // namespace

std::vector<uint8_t> select_blocks(const std::vector<double>& scores, int nb, const PatternOptions& o) {
    std::vector<uint8_t> keep(static_cast<size_t>(nb) * nb, 0);
    std::vector<std::pair<double, int>> causal; // (score, index) of the causal blocks that are not forced
    int n_causal = 0, n_forced = 0;
    for (int qb = 0; qb < nb; ++qb)
        for (int kb = 0; kb <= qb; ++kb) {
            ++n_causal;
            const int i = qb * nb + kb;
            if (forced(qb, kb, o.window)) {
                keep[i] = 1;
                ++n_forced;
            } else {
                causal.emplace_back(scores[i], i);
            }
        }
    if (o.method == Method::coverage) {
        for (int qb = 0; qb < nb; ++qb) {
            std::vector<std::pair<double, int>> row; // (mass, kb) of the blocks not forced, heaviest first
            double total = 0, kept = 0;
            for (int kb = 0; kb <= qb; ++kb) {
                const size_t i = static_cast<size_t>(qb) * nb + kb;
                total += scores[i];
                if (keep[i]) kept += scores[i];
                else row.emplace_back(scores[i], kb);
            }
            std::stable_sort(row.begin(), row.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
            for (size_t r = 0; r < row.size() && kept < o.coverage * total; ++r) {
                keep[static_cast<size_t>(qb) * nb + row[r].second] = 1;
                kept += row[r].first;
            }
        }
        return keep;
    }
    if (o.method == Method::c) {
        const int k = std::clamp(static_cast<int>(std::lround(o.density * n_causal)) - n_forced, 0, static_cast<int>(causal.size()));
        // highest scores first; ties: the lower index (the earlier query block, then key block) first
        std::stable_sort(causal.begin(), causal.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
        for (int i = 0; i < k; ++i) keep[causal[i].second] = 1;
        return keep;
    }
    // F / CF: the threshold is the quantile of all causal block scores (the causal adaptation: the reference takes it
    // over the whole nb x nb grid, half of which is empty under causality)
    std::vector<double> all;
    for (int qb = 0; qb < nb; ++qb)
        for (int kb = 0; kb <= qb; ++kb) all.push_back(scores[static_cast<size_t>(qb) * nb + kb]);
    std::sort(all.begin(), all.end());
    const double thr = all[std::min(all.size() - 1, static_cast<size_t>(o.quantile * (all.size() - 1)))];
    const auto mark = walk_marks(scores, nb, thr);
    for (int qb = 0; qb < nb; ++qb)
        for (int kb = 0; kb <= qb; ++kb)
            if (mark[static_cast<size_t>(qb) * nb + kb]) keep[static_cast<size_t>(qb) * nb + kb] = 1;
    return keep;
}

void SparsePattern::derive_profiles() {
    const int nb = n_blocks();
    for (LayerPattern& l : layers) {
        l.slash.assign(static_cast<size_t>(groups) * nb, 0);
        l.vertical.assign(static_cast<size_t>(groups) * nb, 0);
        for (int g = 0; g < groups; ++g) {
            const uint8_t* keep = l.keep.data() + static_cast<size_t>(g) * nb * nb;
            for (int d = 0; d < nb; ++d) {
                int kept = 0, rows = 0;
                for (int r = d; r < nb; ++r, ++rows) kept += keep[static_cast<size_t>(r) * nb + r - d];
                l.slash[static_cast<size_t>(g) * nb + d] = 2 * kept >= rows;
            }
            for (int c = 0; c < nb; ++c) {
                int kept = 0, rows = 0;
                for (int r = c; r < nb; ++r, ++rows) kept += keep[static_cast<size_t>(r) * nb + c];
                l.vertical[static_cast<size_t>(g) * nb + c] = 2 * kept >= rows;
            }
        }
    }
}

BlockMask SparsePattern::mask(int layer, int n_ctx, SparseDenominator denominator, int dense_below) const {
    if (layer < 0 || layer >= static_cast<int>(layers.size())) throw Error(ErrorKind::invalid_argument, "sparse pattern: no layer " + std::to_string(layer));
    const LayerPattern& l = layers[layer];
    const int nb_cal = n_blocks(), nb = std::max(1, (n_ctx + block - 1) / block);
    BlockMask m{block, nb, std::vector<uint8_t>(static_cast<size_t>(groups) * nb * nb, 0), denominator, groups};
    for (int g = 0; g < groups; ++g) {
        const uint8_t* cal = l.keep.data() + static_cast<size_t>(g) * nb_cal * nb_cal;
        const uint8_t* slash = l.slash.data() + static_cast<size_t>(g) * nb_cal;
        const uint8_t* vertical = l.vertical.data() + static_cast<size_t>(g) * nb_cal;
        for (int qb = 0; qb < nb; ++qb)
            for (int kb = 0; kb <= qb; ++kb) {
                bool keep;
                if ((qb + 1) * block <= dense_below) keep = true;
                else if (qb < nb_cal) keep = cal[static_cast<size_t>(qb) * nb_cal + kb];
                else keep = forced(qb, kb, window) || (qb - kb < nb_cal && slash[qb - kb]) || (kb < nb_cal && vertical[kb]);
                m.keep[(static_cast<size_t>(g) * nb + qb) * nb + kb] = keep || forced(qb, kb, window);
            }
    }
    return m;
}

std::vector<BlockMask> SparsePattern::masks(int n_ctx, SparseDenominator denominator, int dense_below) const {
    std::vector<BlockMask> m;
    for (int l = 0; l < static_cast<int>(layers.size()); ++l) m.push_back(mask(l, n_ctx, denominator, dense_below));
    return m;
}

double SparsePattern::density_of(const BlockMask& m, int select_tokens) {
    double kept = 0;
    int64_t causal = 0;
    for (int qb = 0; qb < m.n_blocks; ++qb)
        for (int g = 0; g < m.groups; ++g) {
            int row_kept = 0, dropped_before_diagonal = 0; // query-aware selection draws from blocks wholly left of the diagonal
            for (int kb = 0; kb <= qb; ++kb) {
                const bool keep = m.row(qb, g)[kb] != 0;
                row_kept += keep;
                dropped_before_diagonal += !keep && kb < qb;
            }
            kept += row_kept + std::min(static_cast<double>(select_tokens) / m.block, static_cast<double>(dropped_before_diagonal));
            causal += qb + 1;
        }
    return causal ? kept / static_cast<double>(causal) : 0;
}

namespace {

std::string row_bits(const std::vector<uint8_t>& v, size_t from, size_t n) {
    std::string s(n, '0');
    for (size_t i = 0; i < n; ++i) s[i] = v[from + i] ? '1' : '0';
    return s;
}

std::vector<uint8_t> parse_bits(const std::string& s, size_t n, const std::string& where) {
    if (s.size() != n) throw Error(ErrorKind::format, where + ": expected " + std::to_string(n) + " bits, found " + std::to_string(s.size()));
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) {
        if (s[i] != '0' && s[i] != '1') throw Error(ErrorKind::format, where + ": '" + std::string(1, s[i]) + "' is not a bit");
        v[i] = s[i] == '1';
    }
    return v;
}

} // namespace

void SparsePattern::save(const std::string& path) const {
    const int nb = n_blocks();
    nlohmann::ordered_json j;
    j["format"] = "winnow-sparse-pattern";
    j["version"] = kVersion;
    j["model"] = {{"name", model}, {"n_layer", n_layer}, {"n_embd", n_embd}, {"n_head", n_head}, {"n_head_kv", n_head_kv}, {"n_vocab", n_vocab}};
    j["method"] = to_string(method);
    j["block"] = block;
    j["groups"] = groups;
    j["calib_ctx"] = calib_ctx;
    j["calib_chunks"] = calib_chunks;
    j["density"] = density;
    j["quantile"] = quantile;
    j["coverage"] = coverage;
    j["window"] = window;
    j["scores"] = relative ? "relative" : "absolute";
    j["text_fnv1a"] = text_fnv1a;
    auto& ls = j["layers"] = nlohmann::ordered_json::array();
    for (const LayerPattern& l : layers) {
        nlohmann::ordered_json lj;
        lj["kept_mass"] = l.kept_mass;
        lj["keep"] = nlohmann::ordered_json::array();
        for (int r = 0; r < groups * nb; ++r) lj["keep"].push_back(row_bits(l.keep, static_cast<size_t>(r) * nb, nb));
        ls.push_back(lj);
    }
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) throw Error(ErrorKind::io, "cannot write sparse pattern '" + tmp + "'");
        out << j.dump(1) << "\n";
        out.flush();
        if (!out) throw Error(ErrorKind::io, "writing sparse pattern '" + tmp + "' failed");
    }
    io::commit_file(tmp, path);
}

SparsePattern SparsePattern::load(const std::string& path) {
    if (!std::ifstream(path, std::ios::binary)) throw Error(ErrorKind::io, "cannot open sparse pattern '" + path + "'");
    const std::string where = "sparse pattern '" + path + "'";
    // bounded like every JSON input (size, depth, parsed memory): a hostile pattern file gets an error, not an OOM kill
    const nlohmann::json j = io::read_json_file(path, {}, where);
    try {
        if (!j.is_object() || j.value("format", "") != "winnow-sparse-pattern") throw Error(ErrorKind::format, where + ": not a winnow sparse pattern");
        // every integer field is range-checked before any is read as int (io::json_int_fits)
        auto int_in_range = [&](const nlohmann::json& o, const char* key) {
            if (o.is_object() && o.contains(key) && !io::json_int_fits<int>(o[key])) throw Error(ErrorKind::format, where + ": '" + key + "' is out of range");
        };
        for (const char* key : {"version", "block", "calib_ctx", "calib_chunks", "window", "groups"}) int_in_range(j, key);
        if (j.contains("model"))
            for (const char* key : {"n_layer", "n_embd", "n_head", "n_head_kv", "n_vocab"}) int_in_range(j["model"], key);
        if (j.at("version").get<int>() != kVersion)
            throw Error(ErrorKind::unsupported, where + ": version " + std::to_string(j.at("version").get<int>()) + " (this winnow reads " + std::to_string(kVersion) + ")");
        SparsePattern p;
        const auto& m = j.at("model");
        p.model = m.at("name").get<std::string>();
        p.n_layer = m.at("n_layer").get<int>();
        p.n_embd = m.at("n_embd").get<int>();
        p.n_head = m.at("n_head").get<int>();
        p.n_vocab = m.at("n_vocab").get<int>();
        const std::string method = j.at("method").get<std::string>();
        if (method != "c" && method != "f" && method != "cf" && method != "coverage")
            throw Error(ErrorKind::format, where + ": method must be c, f, cf or coverage, not '" + method + "'");
        p.method = parse_method(method);
        p.block = j.at("block").get<int>();
        p.calib_ctx = j.at("calib_ctx").get<int>();
        p.calib_chunks = j.value("calib_chunks", 0);
        p.density = j.value("density", 0.0);
        p.quantile = j.value("quantile", 0.0);
        p.coverage = j.value("coverage", 0.0);
        p.window = j.value("window", 2);
        const std::string scores = j.value("scores", "absolute");
        if (scores != "relative" && scores != "absolute") throw Error(ErrorKind::format, where + ": scores must be relative or absolute, not '" + scores + "'");
        p.relative = scores == "relative";
        p.text_fnv1a = j.value("text_fnv1a", "");
        if (p.block < 1 || p.block > 4096 || p.calib_ctx < 1 || p.calib_ctx > (1 << 20) || p.n_layer < 1 || p.n_layer > 4096 || p.window < 1 || p.window > 4096)
            throw Error(ErrorKind::format, where + ": block, calib_ctx, window or n_layer out of range");
        const int nb = p.n_blocks();
        if (nb > 4096) throw Error(ErrorKind::format, where + ": " + std::to_string(nb) + " blocks per row is too many");
        p.groups = j.value("groups", 1);
        if (p.groups < 1 || p.groups > 256) throw Error(ErrorKind::format, where + ": groups " + std::to_string(p.groups) + " out of range");
        p.n_head_kv = m.value("n_head_kv", 0);
        const auto& ls = j.at("layers");
        if (!ls.is_array() || static_cast<int>(ls.size()) != p.n_layer)
            throw Error(ErrorKind::format, where + ": " + std::to_string(ls.is_array() ? ls.size() : 0) + " layers for n_layer " + std::to_string(p.n_layer));
        for (size_t i = 0; i < ls.size(); ++i) {
            const auto& rows = ls[i].at("keep");
            const std::string lw = where + " layer " + std::to_string(i);
            if (!rows.is_array() || static_cast<int64_t>(rows.size()) != static_cast<int64_t>(p.groups) * nb)
                throw Error(ErrorKind::format, lw + ": expected " + std::to_string(static_cast<int64_t>(p.groups) * nb) + " rows");
            LayerPattern l;
            l.kept_mass = ls[i].value("kept_mass", 0.0);
            for (int gr = 0; gr < p.groups * nb; ++gr) {
                const int r = gr % nb; // the query block of this row of its group
                const auto bits = parse_bits(rows[gr].get<std::string>(), nb, lw + " row " + std::to_string(gr));
                for (int c = r + 1; c < nb; ++c)
                    if (bits[c]) throw Error(ErrorKind::format, lw + " row " + std::to_string(r) + ": block " + std::to_string(c) + " is above the causal diagonal");
                if (!bits[r] || !bits[0]) throw Error(ErrorKind::format, lw + " row " + std::to_string(r) + ": the diagonal and sink blocks must be kept");
                l.keep.insert(l.keep.end(), bits.begin(), bits.end());
            }
            p.layers.push_back(std::move(l));
        }
        p.derive_profiles();
        return p;
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorKind::format, where + ": missing or mistyped field (" + std::string(e.what()) + ")");
    }
}

void SparsePattern::check_model(const ModelConfig& c, const std::string& path) const {
    if (c.n_layer != n_layer || c.n_embd != n_embd || c.n_head != n_head || c.n_vocab != n_vocab || (n_head_kv && c.n_head_kv != n_head_kv) ||
        (groups != 1 && groups != c.n_head_kv))
        throw Error(ErrorKind::invalid_argument, "sparse pattern '" + path + "' was calibrated for another model (" + model + ": " + std::to_string(n_layer) +
                                                     " layers, d " + std::to_string(n_embd) + ")");
}

} // namespace winnow::sparse
