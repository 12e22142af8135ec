#include "head/rotation.h"

#include <algorithm>
#include <string>

#include "backend/cpu/vec_dot.h"
#include "train/sgemm.h"
#include "winnow/error.h"

extern "C" void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w, double* work, const int* lwork,
                        int* iwork, const int* liwork, int* info);

namespace winnow::head {

double HeadRotation::energy_in_leading(int k) const {
    double total = 0, lead = 0;
    for (size_t i = 0; i < variance.size(); ++i) {
        total += variance[i];
        if (static_cast<int>(i) < k) lead += variance[i];
    }
    return total > 0 ? lead / total : 0;
}

HeadRotation pca_rotation(const std::vector<std::vector<float>>& states, int d) {
    if (states.empty() || d < 1) throw Error(ErrorKind::invalid_argument, "pca rotation: no calibration states");
    // the second moment, column-major (symmetric, so the layout does not matter), in double
    std::vector<double> m(static_cast<size_t>(d) * d, 0.0);
    for (const auto& x : states) {
        if (static_cast<int>(x.size()) != d)
            throw Error(ErrorKind::invalid_argument, "pca rotation: a state has " + std::to_string(x.size()) + " values, expected " + std::to_string(d));
        for (int i = 0; i < d; ++i)
            for (int j = 0; j <= i; ++j) m[static_cast<size_t>(i) * d + j] += static_cast<double>(x[i]) * x[j];
    }
    for (int i = 0; i < d; ++i)
        for (int j = 0; j <= i; ++j) m[static_cast<size_t>(j) * d + i] = m[static_cast<size_t>(i) * d + j] /= static_cast<double>(states.size());

    std::vector<double> eig(d);
    int info = 0, lwork = -1, liwork = -1, iwork_query = 0;
    double work_query = 0;
    const char jobz = 'V', uplo = 'L';
    dsyevd_(&jobz, &uplo, &d, m.data(), &d, eig.data(), &work_query, &lwork, &iwork_query, &liwork, &info);
    lwork = static_cast<int>(work_query);
    liwork = iwork_query;
    std::vector<double> work(static_cast<size_t>(std::max(lwork, 1)));
    std::vector<int> iwork(static_cast<size_t>(std::max(liwork, 1)));
    dsyevd_(&jobz, &uplo, &d, m.data(), &d, eig.data(), work.data(), &lwork, iwork.data(), &liwork, &info);
    if (info != 0) throw Error(ErrorKind::invalid_argument, "pca rotation: the eigensolver failed (dsyevd info " + std::to_string(info) + ")");

    // dsyevd: ascending eigenvalues, eigenvector k in column k (column-major); R wants them descending
    HeadRotation r;
    r.d = d;
    r.R.resize(static_cast<size_t>(d) * d);
    r.variance.resize(d);
    for (int k = 0; k < d; ++k) {
        const int src = d - 1 - k;
        r.variance[k] = std::max(0.0, eig[src]);
        for (int i = 0; i < d; ++i) r.R[static_cast<size_t>(i) * d + k] = static_cast<float>(m[static_cast<size_t>(src) * d + i]);
    }
    return r;
}

std::vector<float> rotate_head(std::span<const float> A, int n, const HeadRotation& r) {
    if (A.size() != static_cast<size_t>(n) * r.d) throw Error(ErrorKind::invalid_argument, "rotate_head: the head is not n x d");
    std::vector<float> out(static_cast<size_t>(n) * r.d, 0.0f);
    train::sgemm(false, false, n, r.d, r.d, 1.0f, A.data(), r.d, r.R.data(), r.d, 0.0f, out.data(), r.d);
    return out;
}

std::vector<float> rotate_query(std::span<const float> x, const HeadRotation& r) {
    if (static_cast<int>(x.size()) != r.d) throw Error(ErrorKind::invalid_argument, "rotate_query: the query is not of length d");
    std::vector<float> out(r.d);
    for (int k = 0; k < r.d; ++k) {
        double s = 0;
        for (int i = 0; i < r.d; ++i) s += static_cast<double>(r.R[static_cast<size_t>(i) * r.d + k]) * x[i];
        out[k] = static_cast<float>(s);
    }
    return out;
}

QueryRotator::QueryRotator(const HeadRotation& r) : d_(r.d), y_(static_cast<size_t>(r.d)) {
    const size_t d = static_cast<size_t>(d_);
    if (r.R.size() != d * d) throw Error(ErrorKind::invalid_argument, "QueryRotator: the rotation is not d x d");
    Rt_.resize(d * d);
    for (size_t i = 0; i < d; ++i)
        for (size_t k = 0; k < d; ++k) Rt_[k * d + i] = r.R[i * d + k];
}

std::span<const float> QueryRotator::rotate(std::span<const float> x) {
    if (static_cast<int>(x.size()) != d_) throw Error(ErrorKind::invalid_argument, "the rotated head's query is not of length d");
    for (int k = 0; k < d_; ++k) y_[k] = cpu::vec_dot_f32(Rt_.data() + static_cast<size_t>(k) * d_, x.data(), d_);
    return y_;
}

RotatedAlgorithm::RotatedAlgorithm(std::unique_ptr<AdaptiveAlgorithm> inner, const HeadRotation& rotation)
    : inner_(std::move(inner)), d_(rotation.d), rotator_(rotation) {
    if (!inner_ || inner_->d() != d_) throw Error(ErrorKind::invalid_argument, "RotatedAlgorithm: the rotation does not match the head's dimension");
}

AdaptiveResult RotatedAlgorithm::run(std::span<const float> x, const AdaptiveParams& p) {
    AdaptiveResult r = inner_->run(rotator_.rotate(x), p);
    r.cost.multiply_adds += static_cast<int64_t>(d_) * d_;
    return r;
}

std::vector<int32_t> RotatedAlgorithm::best_arms_only(std::span<const float> x, const AdaptiveParams& p) { return inner_->best_arms_only(rotator_.rotate(x), p); }

} // namespace winnow::head
