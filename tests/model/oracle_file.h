#pragma once
// Reader for the reference-logits files written by tests/fixtures/llama_oracle.py (format in its README).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace winnow::test {

struct OracleSequence {
    std::vector<int32_t> ids;
    std::vector<float> logits; // [ids.size()][n_vocab]
};

struct OracleFile {
    uint32_t n_vocab = 0;
    std::vector<OracleSequence> seqs;
};

// Throws on a missing, truncated, empty or inconsistent file: every sequence has tokens, in-vocabulary ids and
// finite logits that are not all zero, and nothing follows the last sequence.
inline OracleFile read_oracle(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open oracle file " + path);
    auto u32 = [&] { uint32_t v = 0; in.read(reinterpret_cast<char*>(&v), 4); return v; };
    char magic[4];
    in.read(magic, 4);
    if (std::memcmp(magic, "WLGT", 4) != 0) throw std::runtime_error("bad oracle magic in " + path);
    if (u32() != 1) throw std::runtime_error("bad oracle version in " + path);
    OracleFile f;
    const uint32_t n_seq = u32();
    f.n_vocab = u32();
    if (!in) throw std::runtime_error("truncated oracle file " + path);
    // an oracle without sequences, rows or logits would make every comparison pass vacuously
    if (n_seq == 0 || f.n_vocab == 0) throw std::runtime_error("empty oracle file " + path + " (no sequences or no vocabulary)");
    for (uint32_t s = 0; s < n_seq; ++s) {
        OracleSequence seq;
        const uint32_t n = u32();
        if (!in) throw std::runtime_error("truncated oracle file " + path);
        if (n == 0) throw std::runtime_error("oracle file " + path + ": sequence " + std::to_string(s) + " has no tokens");
        seq.ids.resize(n);
        seq.logits.resize(static_cast<size_t>(n) * f.n_vocab);
        in.read(reinterpret_cast<char*>(seq.ids.data()), n * 4);
        in.read(reinterpret_cast<char*>(seq.logits.data()), seq.logits.size() * 4);
        if (!in) throw std::runtime_error("truncated oracle file " + path);
        for (int32_t id : seq.ids)
            if (id < 0 || static_cast<uint32_t>(id) >= f.n_vocab)
                throw std::runtime_error("oracle file " + path + ": token id " + std::to_string(id) + " outside the vocabulary");
        if (!std::all_of(seq.logits.begin(), seq.logits.end(), [](float v) { return std::isfinite(v); }))
            throw std::runtime_error("oracle file " + path + ": sequence " + std::to_string(s) + " has non-finite logits");
        if (std::none_of(seq.logits.begin(), seq.logits.end(), [](float v) { return v != 0.0f; }))
            throw std::runtime_error("oracle file " + path + ": sequence " + std::to_string(s) + " has all-zero logits");
        f.seqs.push_back(std::move(seq));
    }
    if (in.peek() != std::char_traits<char>::eof()) throw std::runtime_error("trailing bytes after the last sequence in " + path);
    return f;
}

// Comparison of two logit rows: the absolute gap and the gap relative to the row's largest |logit|.
struct RowDiff {
    double max_abs = 0;
    double rel = 0;
    bool same_argmax = false;
};

inline RowDiff compare_row(const float* ours, const float* ref, size_t n) {
    RowDiff d;
    double max_ref = 0;
    size_t a = 0, b = 0;
    for (size_t i = 0; i < n; ++i) {
        d.max_abs = std::max(d.max_abs, static_cast<double>(std::abs(ours[i] - ref[i])));
        max_ref = std::max(max_ref, static_cast<double>(std::abs(ref[i])));
        if (ours[i] > ours[a]) a = i;
        if (ref[i] > ref[b]) b = i;
    }
    d.rel = max_ref > 0 ? d.max_abs / max_ref : d.max_abs;
    d.same_argmax = a == b;
    return d;
}

} // namespace winnow::test
