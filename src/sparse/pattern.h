#pragma once
// SPION block-sparse attention patterns for a causal decoder (../shared/specs/spion.md; the causal adaptation is
// winnow's own, spec section 6): per layer, the head-mean attention map captured on calibration text -> a 31-tap
// diagonal convolution -> BxB average pooling -> SPION-C (top-k blocks) or SPION-F/CF (quantile threshold + the
// greedy walk from the top-row and left-column seeds) -> AND with the causal block triangle; the first (sink) block
// column, the diagonal blocks and the blocks just left of them are always kept (a local window of at least one block).
//
// A pattern is calibrated at one length (calib_ctx, nb blocks). At a shorter context its top-left corner is used
// (blocks are absolute positions). Beyond it, rows past the calibrated ones are extended Toeplitz-style (spec 6.3a):
// a "slash" offset d = qb - kb is kept where at least half the calibrated rows keep it, a "vertical" key block kb
// where at least half the calibrated rows below it keep it; diagonal and sink as always.
#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/model_config.h"

namespace winnow::sparse {

enum class Method { c, f, cf, coverage };
const char* to_string(Method m);
Method parse_method(const std::string& s); // "c", "f", "cf", "coverage"

// The default of the runtime's dense_below: queries at positions below it attend densely. Measured on the 2-core
// development machine with SmolLM2-135M (bench/reports/spion-attention-cpu.md): below ~1K tokens the whole attention
// costs less than the model's matrix products, so dropping keys there saves little time and still costs accuracy.
constexpr int kDenseBelow = 1024;

struct PatternOptions {
    int block = 64;
    Method method = Method::cf;
    double density = 0.1;   // C: fraction of the causal blocks kept (diagonal and sink included)
    double quantile = 0.96; // F/CF: blocks scoring above this quantile of the causal block scores may be marked
    int conv_taps = 31;     // C/CF: the diagonal convolution's length (odd)
    double coverage = 0.9;  // coverage: each query block row keeps its heaviest blocks until they hold this share of its attention mass
    int window = 2;         // blocks always kept at the diagonal: the diagonal block and window - 1 to its left
    // Causal adaptation: score a row's probabilities relative to uniform attention over its keys (p * (i + 1)), so
    // that rows of every length compete on equal terms; raw probabilities favour the short early rows, whose few keys
    // each get a large share, and starve the long rows where sparsity pays.
    bool relative = true;
    bool per_group = false; // one pattern per KV head group (heads that share a KV head) instead of one per layer
};

// Block scores of one layer from a causal head-mean attention map A (row i: keys 0..i at A + i * stride, n rows):
// the diagonal convolution (taps = 1: none), then the average over each B x B block (nb = ceil(n / B)).
// Only causal blocks (kb <= qb) are scored; the others are 0. With `relative`, row i's entries are scaled by i + 1.
std::vector<double> block_scores(const float* A, int n, int64_t stride, int block, int taps, bool relative = false);

// The attention mass in each causal B x B block (the sum of its probabilities; a query block row of r rows holds r).
std::vector<double> block_mass(const float* A, int n, int64_t stride, int block);

// The kept blocks (nb x nb, row = query block) chosen from averaged block scores (methods c, f, cf) or block masses
// (coverage, winnow's causal method: per query block row, the forced blocks, then the heaviest blocks until the kept
// mass reaches o.coverage of the row's; rows whose attention spreads far keep more, local rows fewer).
std::vector<uint8_t> select_blocks(const std::vector<double>& scores, int nb, const PatternOptions& o);

// The share of the attention mass a kept-block matrix holds (mean over query block rows of kept / row mass).
double kept_mass_share(const std::vector<double>& mass, const std::vector<uint8_t>& keep, int nb);

struct LayerPattern {
    std::vector<uint8_t> keep; // groups x nb x nb at the calibrated length
    std::vector<uint8_t> slash, vertical; // the extension rule's profiles (groups x nb each)
    double kept_mass = 0; // the calibration attention mass the mask holds (kept_mass_share); 0: not recorded
};

struct SparsePattern {
    static constexpr int kVersion = 1;
    std::string model;       // the model's name (general.name), as a check
    int n_layer = 0, n_embd = 0, n_head = 0, n_vocab = 0;
    int n_head_kv = 0;       // 0: not recorded (older files)
    int groups = 1;          // 1: one pattern per layer for all heads; n_head_kv: one per KV head group
    int block = 0, calib_ctx = 0, calib_chunks = 0;
    int window = 2;          // forced local blocks (PatternOptions::window)
    bool relative = false;   // scores relative to uniform attention (PatternOptions::relative)
    Method method = Method::cf;
    double density = 0, quantile = 0, coverage = 0;
    std::string text_fnv1a;  // the calibration text's hash
    std::vector<LayerPattern> layers;

    int n_blocks() const { return (calib_ctx + block - 1) / block; }
    // The layer's mask for a context of n_ctx tokens (see the extension rule above). Query blocks that end at or
    // before position dense_below keep every causal block: short contexts run dense (see kDenseBelow).
    BlockMask mask(int layer, int n_ctx, SparseDenominator denominator = SparseDenominator::standard, int dense_below = 0) const;
    // Every layer's mask for n_ctx tokens, in layer order.
    std::vector<BlockMask> masks(int n_ctx, SparseDenominator denominator = SparseDenominator::standard, int dense_below = 0) const;
    // Fraction of causal blocks a mask keeps.
    // with select_tokens, as if each row also kept that many keys of its dropped blocks (query-aware selection)
    static double density_of(const BlockMask& m, int select_tokens = 0);
    // Fills the extension profiles of every layer from its keep matrix.
    void derive_profiles();

    void save(const std::string& path) const;                     // atomic: temp file, fsync, rename
    static SparsePattern load(const std::string& path);           // throws winnow::Error naming the file and field
    void check_model(const ModelConfig& c, const std::string& path) const; // throws when the pattern is for another model
};

} // namespace winnow::sparse
