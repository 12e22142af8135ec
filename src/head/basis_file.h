#pragma once
// The adaptive head's stored basis (issue 14): the principal axes of a model's final hidden states, fit once by
// `winnow calibrate-head --fit-head-basis` and loaded by generate and the API, so the head samples the rotated head
// A R with queries R^T x (head/rotation.h) and a few leading columns carry most of each logit.
//
// The file is a GGUF v3 (read by the hardened, fuzzed GGUF reader; written to PATH.tmp, fsync'd and renamed):
//   general.architecture          "winnow-head-basis"
//   winnow.head_basis.version     u32, kVersion
//   winnow.head_basis.model_hash  the model's content hash (model_content_hash): a basis belongs to one model's weights
//   winnow.head_basis.model       the model's path when it was fit (informational)
//   winnow.head_basis.states      u64, how many hidden states the axes were fit on
//   winnow.head_basis.source      what they came from (text file and windows; informational)
//   winnow.head_basis.checksum    FNV-1a-64 of the two tensors' bytes (16 hex digits); also the basis's identity, under
//                                 which calibration files keep the factors tuned with it
//   tensor head_basis.rotation    F32 [d][d] (ne = {d, d}): row i, column k is axis k's i-th component (HeadRotation::R)
//   tensor head_basis.variance    F32 [d]: each axis's mean square over the states, descending as fit (informational:
//                                 energy shares in reports; not checked on load)
// Loading checks, in order: the format, version, shapes (1 <= d <= kMaxBasisDim, and d = the expected dimension when
// one is given, before anything of size d^2 is made), finite values, the checksum, and that R is orthonormal
// (max |R^T R - I| <= kOrthonormalTolerance): a matrix that is not a rotation changes the logits.
#include <cstdint>
#include <memory>
#include <string>

#include "head/rotation.h"

namespace winnow::head {

struct HeadBasis {
    static constexpr uint32_t kVersion = 1;
    static constexpr int kMaxBasisDim = 16384; // the largest hidden size of today's open models
    static constexpr double kOrthonormalTolerance = 1e-3;

    HeadRotation rotation;
    std::string model_hash;
    std::string model;
    uint64_t states = 0;
    std::string source;
    std::string checksum; // of rotation.R and rotation.variance as stored (fp32); set by save() and load()

    // Writes the file (atomic) and sets `checksum`. Throws winnow::Error (io) naming the file.
    void save(const std::string& path);
    // Reads and validates the file (see above); expected_d > 0: refused unless d is that. Throws a one-line
    // winnow::Error naming the file and what is wrong.
    static HeadBasis load(const std::string& path, int expected_d = 0);
    // load(path, n_embd), then the model check: the basis was fit on the model with this content hash
    // (model_content_hash, which reads the whole model: callers compute it once).
    static std::shared_ptr<const HeadBasis> load_for(const std::string& path, const std::string& model_hash, int n_embd);
    // Throws unless the basis was fit on this model content and has its dimension. `path`: the file, for the message.
    void check_model(const std::string& path, const std::string& model_hash, int n_embd) const;
};

// FNV-1a-64 (16 hex digits) of R's and then the variances' fp32 bytes, as the file stores them.
std::string basis_checksum(const HeadRotation& r);

} // namespace winnow::head
