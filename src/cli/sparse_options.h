#pragma once
// --attention dense|sparse, --sparse-pattern FILE, --sparse-denominator standard|spion, --sparse-select K: block-sparse
// (SPION) attention, optionally with query-aware blocks, for generate and perplexity.
#include <memory>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "decode/forward.h"
#include "sparse/key_summary.h"
#include "sparse/pattern.h"
#include "winnow/error.h"

namespace winnow::cli {

struct SparseArgs {
    std::string attention = "dense";
    std::string pattern_path;
    std::string denominator = "standard";
    int dense_below = sparse::kDenseBelow;
    int select_blocks = sparse::kSelectBlocks;
    int select_block_size = 0; // 0: sparse::selection_unit's default
};

inline void add_sparse_options(boost::program_options::options_description& opts, SparseArgs& a) {
    namespace po = boost::program_options;
    opts.add_options()("attention", po::value(&a.attention)->default_value("dense"), "attention: dense, or sparse (a SPION block pattern)")(
        "sparse-pattern", po::value(&a.pattern_path), "the pattern file from `winnow calibrate-sparse` (with --attention sparse)")(
        "sparse-denominator", po::value(&a.denominator)->default_value("standard"),
        "softmax over kept keys (standard) or dropped keys as logit 0 (spion)")(
        "sparse-dense-below", po::value(&a.dense_below)->default_value(sparse::kDenseBelow),
        "queries at positions below this attend densely (sparse attention does not pay there; 0: sparse everywhere)")(
        "sparse-select", po::value(&a.select_blocks)->default_value(sparse::kSelectBlocks),
        "query-aware blocks: each sparse row also reads this many of the blocks its pattern drops, those whose keys can score highest for its query "
        "(0: the pattern alone)")(
        "sparse-select-block", po::value(&a.select_block_size)->default_value(0),
        "tokens per query-aware block, dividing the pattern's block (0: 8 where it divides, else the pattern's block)");
}

// The masks one Forward uses; keeps them alive as long as it lives.
struct SparseMasks {
    sparse::SparsePattern pattern;
    std::vector<BlockMask> masks;
    double mean_density = 0;    // with query-aware selection counted as if it always found its blocks
    int select_blocks = 0, select_unit = 0; // query-aware selection: blocks per row, tokens per block
};

// Validates the options; with --attention sparse loads the pattern, builds the masks for n_ctx and installs them.
inline std::unique_ptr<SparseMasks> apply_sparse_options(const SparseArgs& a, const ModelConfig& c, Forward& f) {
    if (a.attention != "dense" && a.attention != "sparse") throw Error(ErrorKind::invalid_argument, "--attention must be dense or sparse, not '" + a.attention + "'");
    if (a.denominator != "standard" && a.denominator != "spion")
        throw Error(ErrorKind::invalid_argument, "--sparse-denominator must be standard or spion, not '" + a.denominator + "'");
    if (a.dense_below < 0) throw Error(ErrorKind::invalid_argument, "--sparse-dense-below must be >= 0");
    if (a.select_blocks < 0) throw Error(ErrorKind::invalid_argument, "--sparse-select must be >= 0");
    if (a.select_block_size < 0) throw Error(ErrorKind::invalid_argument, "--sparse-select-block must be >= 0");
    if (a.attention == "dense") {
        if (!a.pattern_path.empty()) throw Error(ErrorKind::invalid_argument, "--sparse-pattern needs --attention sparse");
        return nullptr;
    }
    if (a.pattern_path.empty()) throw Error(ErrorKind::invalid_argument, "--attention sparse needs --sparse-pattern FILE");
    auto s = std::make_unique<SparseMasks>();
    s->pattern = sparse::SparsePattern::load(a.pattern_path);
    s->pattern.check_model(c, a.pattern_path);
    const auto den = a.denominator == "spion" ? SparseDenominator::spion : SparseDenominator::standard;
    s->masks = s->pattern.masks(f.n_ctx(), den, a.dense_below);
    s->select_blocks = a.select_blocks;
    s->select_unit = sparse::selection_unit(a.select_block_size, s->pattern.block);
    const int select_tokens = a.select_blocks * s->select_unit;
    for (const BlockMask& m : s->masks) s->mean_density += sparse::SparsePattern::density_of(m, select_tokens) / c.n_layer;
    f.set_attention_masks(s->masks);
    f.set_block_selection(a.select_blocks, a.select_block_size);
    return s;
}

} // namespace winnow::cli
