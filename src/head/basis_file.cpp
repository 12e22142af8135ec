#include "head/basis_file.h"

#include <cmath>
#include <cstring>
#include <string_view>

#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "io/text_file.h"
#include "train/sgemm.h"
#include "winnow/error.h"

namespace winnow::head {

namespace {

constexpr const char* kArchitecture = "winnow-head-basis";
constexpr const char* kRotationTensor = "head_basis.rotation";
constexpr const char* kVarianceTensor = "head_basis.variance";

std::vector<float> variance_f32(const HeadRotation& r) { return std::vector<float>(r.variance.begin(), r.variance.end()); }

} // namespace

std::string basis_checksum(const HeadRotation& r) {
    const std::vector<float> var = variance_f32(r);
    io::Fnv1a64 h; // over R's bytes, then the fp32 variances', in place
    h.add(r.R.data(), r.R.size() * sizeof(float));
    h.add(var.data(), var.size() * sizeof(float));
    return h.hex();
}

void HeadBasis::save(const std::string& path) {
    const int d = rotation.d;
    if (d < 1 || rotation.R.size() != static_cast<size_t>(d) * d || rotation.variance.size() != static_cast<size_t>(d))
        throw Error(ErrorKind::invalid_argument, "head basis: the rotation is not d x d with d variances");
    checksum = basis_checksum(rotation);
    const std::vector<float> var = variance_f32(rotation);
    io::GgufWriter w;
    w.set_string("general.architecture", kArchitecture);
    w.set_u32("winnow.head_basis.version", kVersion);
    w.set_string("winnow.head_basis.model_hash", model_hash);
    w.set_string("winnow.head_basis.model", model);
    w.set_u64("winnow.head_basis.states", states);
    w.set_string("winnow.head_basis.source", source);
    w.set_string("winnow.head_basis.checksum", checksum);
    w.add_tensor(kRotationTensor, rotation.R.data(), {static_cast<uint64_t>(d), static_cast<uint64_t>(d)});
    w.add_tensor(kVarianceTensor, var.data(), {static_cast<uint64_t>(d)});
    w.write(path);
}

HeadBasis HeadBasis::load(const std::string& path, int expected_d) {
    const std::string where = "head basis '" + path + "'";
    const auto f = io::GgufFile::open(path); // names the file in its own errors
    if (f->get_string("general.architecture").value_or("") != kArchitecture)
        throw Error(ErrorKind::format, where + ": not a winnow head basis (general.architecture is not " + kArchitecture + ")");
    const uint64_t version = f->require_uint("winnow.head_basis.version");
    if (version != kVersion)
        throw Error(ErrorKind::unsupported, where + ": version " + std::to_string(version) + " (this winnow reads " + std::to_string(kVersion) + ")");
    HeadBasis b;
    b.model_hash = f->require_string("winnow.head_basis.model_hash");
    b.model = f->get_string("winnow.head_basis.model").value_or("");
    b.states = f->get_uint("winnow.head_basis.states").value_or(0);
    b.source = f->get_string("winnow.head_basis.source").value_or("");
    const std::string stored_checksum = f->require_string("winnow.head_basis.checksum");

    const io::GgufTensorInfo* R = f->find_tensor(kRotationTensor);
    const io::GgufTensorInfo* V = f->find_tensor(kVarianceTensor);
    if (!R || !V) throw Error(ErrorKind::format, where + ": missing tensor " + (R ? kVarianceTensor : kRotationTensor));
    if (R->type != GgmlType::F32 || V->type != GgmlType::F32) throw Error(ErrorKind::format, where + ": the tensors must be F32");
    const uint64_t d = R->ne[0];
    if (R->n_dims != 2 || R->ne[1] != d || d < 1 || d > static_cast<uint64_t>(kMaxBasisDim))
        throw Error(ErrorKind::format, where + ": " + kRotationTensor + " must be d x d with 1 <= d <= " + std::to_string(kMaxBasisDim));
    if (V->n_dims != 1 || V->ne[0] != d) throw Error(ErrorKind::format, where + ": " + kVarianceTensor + " must hold d = " + std::to_string(d) + " values");
    // before the checks that cost d^2 memory and d^3 work
    if (expected_d > 0 && d != static_cast<uint64_t>(expected_d))
        throw Error(ErrorKind::invalid_argument, where + " has dimension " + std::to_string(d) + ", the model's hidden size is " + std::to_string(expected_d));

    HeadRotation& r = b.rotation;
    r.d = static_cast<int>(d);
    r.R.resize(d * d);
    std::memcpy(r.R.data(), R->data, d * d * sizeof(float)); // the reader checked the bytes lie inside the file
    std::vector<float> var(d);
    std::memcpy(var.data(), V->data, d * sizeof(float));
    for (float v : r.R)
        if (!std::isfinite(v)) throw Error(ErrorKind::format, where + ": the rotation holds a non-finite value");
    for (float v : var)
        if (!std::isfinite(v) || v < 0) throw Error(ErrorKind::format, where + ": the variances must be finite and >= 0");
    r.variance.assign(var.begin(), var.end());
    b.checksum = basis_checksum(r);
    if (b.checksum != stored_checksum)
        throw Error(ErrorKind::format, where + ": checksum mismatch (stored " + stored_checksum + ", contents " + b.checksum + "): the file is damaged");

    // R^T R = I: a damaged or hand-made matrix that is not a rotation would change every logit
    std::vector<float> gram(d * d);
    train::sgemm(true, false, r.d, r.d, r.d, 1.0f, r.R.data(), r.d, r.R.data(), r.d, 0.0f, gram.data(), r.d);
    double worst = 0;
    for (uint64_t i = 0; i < d; ++i)
        for (uint64_t k = 0; k < d; ++k) worst = std::max(worst, std::abs(static_cast<double>(gram[i * d + k]) - (i == k ? 1.0 : 0.0)));
    if (!(worst <= kOrthonormalTolerance))
        throw Error(ErrorKind::format, where + ": the rotation is not orthonormal (max |R^T R - I| = " + std::to_string(worst) + ")");
    return b;
}

void HeadBasis::check_model(const std::string& path, const std::string& hash, int n_embd) const {
    if (model_hash != hash)
        throw Error(ErrorKind::invalid_argument, "head basis '" + path + "' was fit on another model (content " + model_hash + ", this model " + hash +
                                                     "): rerun winnow calibrate-head --fit-head-basis");
    if (rotation.d != n_embd)
        throw Error(ErrorKind::invalid_argument, "head basis '" + path + "' has dimension " + std::to_string(rotation.d) + ", the model's hidden size is " +
                                                     std::to_string(n_embd));
}

std::shared_ptr<const HeadBasis> HeadBasis::load_for(const std::string& path, const std::string& model_hash, int n_embd) {
    auto b = std::make_shared<HeadBasis>(load(path, n_embd));
    b->check_model(path, model_hash, n_embd);
    return b;
}

} // namespace winnow::head
