#pragma once
// The adaptive head's variance options shared by generate and calibrate-head (factors calibrated with one choice are
// stored under its algorithm key, so generate must be given the same choice to find them).
#include <string>

#include <boost/program_options.hpp>

#include "head/adaptive_head.h"

namespace winnow::cli {

// basis_path: --head-basis, loaded after the model with load_head_basis.
inline void add_adaptive_head_options(boost::program_options::options_description& opts, head::AdaptiveHeadOptions& o, std::string& basis_path) {
    namespace po = boost::program_options;
    opts.add_options()("head-exact-prefix", po::value(&o.exact_prefix)->default_value(0),
                       "adaptive head (CPU): every arm reads this many of each query's heaviest columns exactly before sampling (16 in the reports)")(
        "head-row-clusters", po::value(&o.row_clusters)->default_value(0),
        "adaptive head (CPU): k-means clusters of the head's rows (at most 1024) whose centroid logits are computed exactly, only the residuals sampled (64 in the "
        "reports; the clustering runs at load, about a second on SmolLM2)")(
        "head-basis", po::value(&basis_path),
        "adaptive head (CPU and GPU): a basis file from calibrate-head --fit-head-basis (the principal axes of the model's hidden states): the head samples the "
        "rotated head A R with queries R^T x, same logits, fewer samples");
}

// Loads --head-basis (when given) into o.basis, refused in one line when it was fit on another model (the model's
// content hash is read only when there is a basis to check).
inline void load_head_basis(const std::string& basis_path, head::ModelContentHash& model_hash, int n_embd, head::AdaptiveHeadOptions& o) {
    if (!basis_path.empty()) o.basis = head::HeadBasis::load_for(basis_path, model_hash(), n_embd);
}

} // namespace winnow::cli
