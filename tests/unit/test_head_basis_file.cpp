// The adaptive head's stored basis (head/basis_file.h): a fit basis round-trips bit for bit, a damaged, hand-made or
// foreign file is refused in one line naming what is wrong, and the head built with a basis is the rotated head
// (RotatedAlgorithm over A R) whose calibrated factors are kept apart from every other basis's.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>

#include "head/adaptive_head.h"
#include "head/basis_file.h"
#include "head/column_major_head.h"
#include "head/exact_head.h"
#include "head/fast_adaptive_softmax.h"
#include "head/rotation.h"
#include "io/gguf_writer.h"
#include "model/model.h"
#include "model/require_input.h"
#include "winnow/error.h"

namespace {

using namespace winnow::head;
namespace fs = std::filesystem;

std::string scratch(const std::string& name) {
    const fs::path dir = fs::temp_directory_path() / ("winnow-basis-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    return (dir / name).string();
}

// A PCA basis of d dimensions fit on random states with a few dominant directions.
HeadRotation random_basis(int d, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<std::vector<float>> states(4 * d, std::vector<float>(d));
    for (size_t s = 0; s < states.size(); ++s)
        for (int i = 0; i < d; ++i) states[s][i] = nd(rng) * (i < 3 ? 5.0f : 1.0f);
    return pca_rotation(states, d);
}

HeadBasis basis_for(const HeadRotation& r) {
    HeadBasis b;
    b.rotation = r;
    b.model_hash = "123:00000000000000ab";
    b.model = "some/model.gguf";
    b.states = 4 * static_cast<uint64_t>(r.d);
    b.source = "random states";
    return b;
}

std::string message_of_load(const std::string& path) {
    try {
        HeadBasis::load(path);
    } catch (const winnow::Error& e) {
        return e.what();
    }
    return "accepted";
}

TEST(HeadBasisFile, RoundTripsBitForBit) {
    HeadBasis b = basis_for(random_basis(8, 1));
    const std::string path = scratch("round-trip.gguf");
    b.save(path);
    EXPECT_EQ(b.checksum.size(), 16u);
    EXPECT_FALSE(fs::exists(path + ".tmp"));
    const HeadBasis l = HeadBasis::load(path);
    EXPECT_EQ(l.rotation.d, 8);
    EXPECT_EQ(l.rotation.R, b.rotation.R);
    ASSERT_EQ(l.rotation.variance.size(), 8u);
    for (int k = 0; k < 8; ++k) EXPECT_EQ(l.rotation.variance[k], static_cast<double>(static_cast<float>(b.rotation.variance[k])));
    EXPECT_EQ(l.model_hash, b.model_hash);
    EXPECT_EQ(l.model, b.model);
    EXPECT_EQ(l.states, b.states);
    EXPECT_EQ(l.source, b.source);
    EXPECT_EQ(l.checksum, b.checksum);
    // another basis has another identity
    HeadBasis other = basis_for(random_basis(8, 2));
    other.save(scratch("other.gguf"));
    EXPECT_NE(other.checksum, b.checksum);
}

TEST(HeadBasisFile, AFlippedByteInTheRotationIsCaughtByTheChecksum) {
    HeadBasis b = basis_for(random_basis(8, 3));
    const std::string path = scratch("flipped.gguf");
    b.save(path);
    std::string bytes;
    {
        std::ifstream in(path, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    // the tensor data sit at the file's end: rotation (8 x 8 floats), padding, variances (8 floats)
    const size_t in_rotation = bytes.size() - 8 * 4 - 8 * 8 * 4 + 5;
    bytes[in_rotation] ^= 0x01;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    EXPECT_NE(message_of_load(path).find("checksum mismatch"), std::string::npos) << message_of_load(path);
}

// A file written with a consistent checksum but a matrix that is not a rotation: the orthonormality check refuses it.
TEST(HeadBasisFile, AMatrixThatIsNotARotationIsRefused) {
    HeadRotation r = random_basis(8, 4);
    r.R[0] *= 1.01f; // the first axis's first component: |axis 0| is no longer 1
    HeadBasis b = basis_for(r);
    const std::string path = scratch("not-orthonormal.gguf");
    b.save(path);
    EXPECT_NE(message_of_load(path).find("not orthonormal"), std::string::npos) << message_of_load(path);
}

TEST(HeadBasisFile, ForeignAndMalformedFilesAreRefused) {
    const HeadRotation r = random_basis(4, 5);
    const std::vector<float> var(r.variance.begin(), r.variance.end());
    const std::string checksum = basis_checksum(r);
    auto write = [&](const std::string& name, const std::string& arch, uint32_t version, bool with_variance, std::vector<uint64_t> rotation_shape,
                     const std::string& sum) {
        winnow::io::GgufWriter w;
        w.set_string("general.architecture", arch);
        w.set_u32("winnow.head_basis.version", version);
        w.set_string("winnow.head_basis.model_hash", "1:0000000000000001");
        w.set_string("winnow.head_basis.checksum", sum);
        w.add_tensor("head_basis.rotation", r.R.data(), rotation_shape);
        if (with_variance) w.add_tensor("head_basis.variance", var.data(), {4});
        const std::string path = scratch(name);
        w.write(path);
        return message_of_load(path);
    };
    EXPECT_EQ(write("valid.gguf", "winnow-head-basis", 1, true, {4, 4}, checksum), "accepted");
    EXPECT_NE(write("llama.gguf", "llama", 1, true, {4, 4}, checksum).find("not a winnow head basis"), std::string::npos);
    EXPECT_NE(write("v2.gguf", "winnow-head-basis", 2, true, {4, 4}, checksum).find("version 2"), std::string::npos);
    EXPECT_NE(write("no-variance.gguf", "winnow-head-basis", 1, false, {4, 4}, checksum).find("missing tensor head_basis.variance"), std::string::npos);
    EXPECT_NE(write("not-square.gguf", "winnow-head-basis", 1, true, {8, 2}, checksum).find("must be d x d"), std::string::npos);
    EXPECT_NE(write("bad-sum.gguf", "winnow-head-basis", 1, true, {4, 4}, "0000000000000000").find("checksum mismatch"), std::string::npos);
    // a truncated file: the GGUF reader's own refusal, naming the file
    const std::string path = scratch("truncated.gguf");
    basis_for(r).save(path);
    fs::resize_file(path, fs::file_size(path) - 20);
    EXPECT_NE(message_of_load(path).find(path), std::string::npos) << message_of_load(path);
    EXPECT_NE(message_of_load(scratch("missing.gguf")).find("missing.gguf"), std::string::npos);
}

TEST(HeadBasisFile, ABasisBelongsToOneModel) {
    const HeadBasis b = basis_for(random_basis(8, 6));
    EXPECT_NO_THROW(b.check_model("b.gguf", b.model_hash, 8));
    try {
        b.check_model("b.gguf", "123:00000000000000ac", 8);
        ADD_FAILURE() << "another model's hash was accepted";
    } catch (const winnow::Error& e) {
        EXPECT_NE(std::string(e.what()).find("fit on another model"), std::string::npos);
    }
    EXPECT_THROW(b.check_model("b.gguf", b.model_hash, 16), winnow::Error);
    // a file of another dimension is refused by load itself, before anything of its size is made
    HeadBasis saved = b;
    const std::string path = scratch("dimension.gguf");
    saved.save(path);
    try {
        HeadBasis::load(path, 16);
        ADD_FAILURE() << "a basis of dimension 8 was loaded for 16";
    } catch (const winnow::Error& e) {
        EXPECT_NE(std::string(e.what()).find("has dimension 8, the model's hidden size is 16"), std::string::npos) << e.what();
    }
    EXPECT_EQ(HeadBasis::load(path, 8).rotation.d, 8);
}

TEST(HeadBasisFile, CalibratedFactorsAreKeptPerBasis) {
    auto basis = std::make_shared<HeadBasis>(basis_for(random_basis(8, 7)));
    basis->save(scratch("calibrated.gguf"));
    const AdaptiveHeadOptions with{.exact_prefix = 16, .row_clusters = 64, .basis = basis};
    EXPECT_EQ(algorithm_key(with), "fast+pca+prefix16+clusters64");
    EXPECT_EQ(calibration_basis(with), basis->checksum);
    HeadCalibrationFile f;
    f.put({algorithm_key(with), 0.01, 0.2, 3.0, true, calibration_basis(with)});
    const std::string path = scratch("calibrated.head.json");
    f.save(path);
    const HeadCalibrationFile l = HeadCalibrationFile::load(path);
    ASSERT_NE(l.find(with, 0.01), nullptr);
    EXPECT_EQ(l.find(with, 0.01)->fudge_best, 0.2);
    // the same options in another basis (or none) find nothing
    auto other = std::make_shared<HeadBasis>(basis_for(random_basis(8, 8)));
    other->save(scratch("calibrated-other.gguf"));
    EXPECT_EQ(l.find({.exact_prefix = 16, .row_clusters = 64, .basis = other}, 0.01), nullptr);
    EXPECT_EQ(l.find("fast+pca+prefix16+clusters64", 0.01), nullptr);
}

class HeadBasisOnTinyLlama : public ::testing::Test {
protected:
    void SetUp() override {
        WINNOW_REQUIRE_FILE(WINNOW_FIXTURE_DIR "/tiny-llama.gguf");
        model_ = winnow::LoadedModel::load(WINNOW_FIXTURE_DIR "/tiny-llama.gguf");
        n_ = model_->config().n_vocab;
        d_ = model_->config().n_embd;
        std::mt19937 rng(11);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        x_.resize(d_);
        for (float& v : x_) v = nd(rng);
    }
    std::shared_ptr<HeadBasis> identity() const {
        HeadRotation r;
        r.d = d_;
        r.R.assign(static_cast<size_t>(d_) * d_, 0.0f);
        for (int i = 0; i < d_; ++i) r.R[static_cast<size_t>(i) * d_ + i] = 1.0f;
        r.variance.assign(d_, 1.0);
        auto b = std::make_shared<HeadBasis>(basis_for(r));
        b->checksum = basis_checksum(r);
        return b;
    }
    std::unique_ptr<winnow::LoadedModel> model_;
    int n_ = 0, d_ = 0;
    std::vector<float> x_;
};

// In the identity basis A R = A and R^T x = x exactly, so the rotated head must make the very same draws as the
// unrotated one: the same answer, estimate and samples. Only the rotation's products are added: the query's R^T x
// (d^2, RotatedAlgorithm) and, for the fast head, R y to turn the query back for the model's exact rows (another d^2,
// charged by columns that hold R): a head that dropped the basis would charge neither, one that wrapped unrotated
// columns only the first.
TEST_F(HeadBasisOnTinyLlama, TheIdentityBasisMakesTheSameDrawsAndChargesTheRotation) {
    for (HeadImpl impl : {HeadImpl::fast, HeadImpl::faithful}) {
        AdaptiveHead plain(*model_, {.impl = impl, .threads = 1});
        AdaptiveHead rotated(*model_, {.impl = impl, .threads = 1, .basis = identity()});
        AdaptiveParams p;
        const AdaptiveResult a = plain.select(x_, p), b = rotated.select(x_, p);
        EXPECT_EQ(a.head.top, b.head.top);
        EXPECT_EQ(a.head.p_top, b.head.p_top);
        EXPECT_EQ(a.cost.samples, b.cost.samples);
        const int64_t rotations = impl == HeadImpl::fast ? 2 : 1;
        EXPECT_EQ(b.cost.multiply_adds - a.cost.multiply_adds, rotations * d_ * d_) << (impl == HeadImpl::fast ? "fast" : "faithful");
    }
}

// In a random PCA basis the head is the fast head on A R's columns (the model's rows for its exact reads) taking
// rotated queries: built by hand from the same parts, it makes the same draws. A head that dropped the basis, or
// rotated the query one way and the columns the other, would not.
TEST_F(HeadBasisOnTinyLlama, ARandomBasisIsTheFastHeadOnTheRotatedColumns) {
    auto basis = std::make_shared<HeadBasis>(basis_for(random_basis(d_, 14)));
    basis->checksum = basis_checksum(basis->rotation);
    AdaptiveHead head(*model_, {.impl = HeadImpl::fast, .threads = 1, .basis = basis});
    const winnow::Matrix& W = model_->weights().output;
    const std::vector<float> AR = rotate_head(head.dense_matrix(), n_, basis->rotation);
    RotatedAlgorithm by_hand(std::make_unique<FastAdaptiveSoftmax>(
                                 std::make_shared<const ColumnMajorHead>(AR, n_, d_, ColumnMajorHead::stores_q8(W.type), W, basis->rotation.R), 1),
                             basis->rotation);
    AdaptiveHead unrotated(*model_, {.impl = HeadImpl::fast, .threads = 1});
    AdaptiveParams p;
    const AdaptiveResult a = head.select(x_, p), b = by_hand.run(x_, p), c = unrotated.select(x_, p);
    EXPECT_EQ(a.head.top, b.head.top);
    EXPECT_EQ(a.head.p_top, b.head.p_top);
    EXPECT_EQ(a.cost.samples, b.cost.samples);
    EXPECT_EQ(a.cost.multiply_adds, b.cost.multiply_adds);
    EXPECT_NE(a.cost.multiply_adds, c.cost.multiply_adds); // the basis changes the draws
}

// In a random PCA basis, with every column read exactly (a prefix of d), the head's answer is the model basis's exact
// answer: the queries are rotated and the logits unchanged.
TEST_F(HeadBasisOnTinyLlama, ARandomBasisGivesTheExactAnswerWhenEveryColumnIsRead) {
    auto basis = std::make_shared<HeadBasis>(basis_for(random_basis(d_, 12)));
    basis->checksum = basis_checksum(basis->rotation);
    for (HeadImpl impl : {HeadImpl::fast, HeadImpl::faithful}) {
        AdaptiveHead head(*model_, {.impl = impl, .threads = 1, .exact_prefix = d_, .basis = basis});
        AdaptiveParams p;
        const AdaptiveResult r = head.select(x_, p);
        const HeadResult exact = exact_softmax(head.dense_matrix(), n_, d_, x_);
        EXPECT_EQ(r.head.top, exact.top);
        EXPECT_NEAR(r.head.p_top, exact.p_top, 1e-4 * exact.p_top);
    }
}

// A basis of another dimension is refused. The GPU head takes a basis since 2026-12-05 (rotated columns, the exact rows
// with the query turned back): no longer refused as CPU-only. Where CUDA or a device is missing, the refusal names that;
// where a device is (the SIMT emulator's build has one), its top-1 query in a random basis is the CPU fast head's in the
// same basis. The exact prefix stays CPU-only with or without a basis.
TEST_F(HeadBasisOnTinyLlama, ABasisOfAnotherDimensionIsRefusedAndTheGpuHeadTakesOne) {
    auto small = std::make_shared<HeadBasis>(basis_for(random_basis(d_ / 2, 13)));
    EXPECT_THROW(AdaptiveHead(*model_, {.basis = small}), winnow::Error);
    auto basis = std::make_shared<HeadBasis>(basis_for(random_basis(d_, 15)));
    basis->checksum = basis_checksum(basis->rotation);
    try {
        AdaptiveHead gpu(*model_, {.threads = 1, .device = winnow::Device::cuda, .basis = basis});
        AdaptiveHead cpu(*model_, {.impl = HeadImpl::fast, .threads = 1, .basis = basis});
        AdaptiveParams p;
        const AdaptiveResult a = gpu.select(x_, p), b = cpu.select(x_, p);
        EXPECT_EQ(a.head.top, b.head.top);
        EXPECT_NEAR(a.head.p_top, b.head.p_top, 1e-4);
        EXPECT_EQ(a.cost.warmup, b.cost.warmup);
    } catch (const winnow::Error& e) {
        EXPECT_EQ(std::string(e.what()).find("CPU only"), std::string::npos) << e.what();
        EXPECT_TRUE(std::string(e.what()).find("CUDA") != std::string::npos || std::string(e.what()).find("device") != std::string::npos) << e.what();
    }
    try {
        AdaptiveHead head(*model_, {.device = winnow::Device::cuda, .exact_prefix = 4, .basis = identity()});
        ADD_FAILURE() << "an exact prefix on the GPU head was accepted";
    } catch (const winnow::Error& e) {
        EXPECT_NE(std::string(e.what()).find("CPU only"), std::string::npos) << e.what();
    }
}

} // namespace
