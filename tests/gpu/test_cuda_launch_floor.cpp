// The per-kernel floor of a recorded decode step, for the GPU run (bench/device/run.sh prints it into gpu-tests.txt).
// The H200's first run (2026-12-04, bench/reports/h200-2026-12-04) found every kernel of a SmolLM2 decode step taking
// 4-9 us whatever its bytes: a 576 x 576 Q4_1 GEMV 4.6 us, a 576-element RMSNorm 3.9 us. This test says how much of
// that is the floor of one kernel in a replayed graph and how much is our kernels:
//   - N RMSNorms of 576 elements in one recording (next to no bytes: the floor itself);
//   - N 576 x 576 Q4_1 GEMVs (SmolLM2's o-projection, 207 KB each);
//   - N 1536 x 576 Q4_1 GEMVs (a gate's size, 553 KB each);
// each replayed 50 times (median), and the same issued op by op. The second test records the same GEMVs as one step
// program (WINNOW_CUDA_MEGAKERNEL=1, src/backend/cuda/step_program.h): one cooperative kernel whose stages meet at grid
// barriers, so its time per stage is a grid barrier plus a GEMV, against the kernel boundary plus a GEMV above. What it asserts is what a regression in recording
// would break: the replayed outputs equal the op-by-op outputs bit for bit. Its times are printed, never asserted (the
// name says TimePer: scripts/test-emulated.sh leaves it out).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/cuda/device.h"
#include "device_matrix.h"

namespace {

using namespace winnow;

constexpr int kKernels = 150; // about a SmolLM2 step's count (154 per token in the first run's profile)
constexpr int kReplays = 50;

class CudaLaunchFloor : public ::testing::Test {
protected:
    void SetUp() override {
        if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
        be_ = make_backend({.device = Device::cuda});
    }
    void TearDown() override { unsetenv("WINNOW_CUDA_MEGAKERNEL"); }
    Tensor random(int64_t rows, int64_t cols, uint64_t seed) {
        std::mt19937_64 rng(seed);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        std::vector<float> v(static_cast<size_t>(rows * cols));
        for (auto& x : v) x = nd(rng);
        Tensor t = be_->alloc(GgmlType::F32, rows, cols);
        be_->upload(v.data(), t);
        return t;
    }
    Matrix q4_1(int64_t rows, int64_t cols, uint64_t seed, Tensor& storage) {
        std::mt19937_64 rng(seed);
        std::normal_distribution<float> nd(0.0f, 0.05f);
        std::vector<float> w(static_cast<size_t>(rows * cols));
        for (auto& v : w) v = nd(rng);
        return gpu_test::place_matrix(*be_, GgmlType::Q4_1, rows, cols, w, storage, "floor");
    }
    std::vector<float> host(const Tensor& t) {
        std::vector<float> v(static_cast<size_t>(t.rows() * t.cols()));
        be_->download(t, v.data());
        return v;
    }
    // Median microseconds per kernel: `step` issues kKernels kernels; recorded once and replayed, or issued as is.
    double us_per_kernel(const std::function<void()>& step, bool recorded) {
        int recording = -1;
        if (recorded) {
            be_->begin_recording();
            step();
            recording = be_->end_recording();
        }
        auto run = [&] { recording >= 0 ? be_->replay(recording) : step(); };
        for (int i = 0; i < 5; ++i) run();
        be_->synchronize();
        std::vector<double> us;
        for (int i = 0; i < kReplays; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            run();
            be_->synchronize();
            us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
        }
        if (recording >= 0) be_->drop_recording(recording);
        std::sort(us.begin(), us.end());
        return us[us.size() / 2] / kKernels;
    }
    // Times `step` both ways and checks that the replayed output equals the op-by-op one bit for bit.
    void measure(const char* what, double bytes_per_kernel, const Tensor& out, const std::function<void()>& step) {
        const double eager = us_per_kernel(step, false);
        const std::vector<float> eager_out = host(out);
        const double replayed = us_per_kernel(step, true);
        const std::vector<float> replayed_out = host(out);
        ASSERT_EQ(eager_out.size(), replayed_out.size());
        EXPECT_EQ(std::memcmp(eager_out.data(), replayed_out.data(), eager_out.size() * sizeof(float)), 0) << what << ": replayed output differs";
        std::printf("launch floor: %-44s %7.2f us per kernel replayed (%6.1f GB/s), %7.2f us op by op (%d kernels, median of %d)\n", what, replayed,
                    bytes_per_kernel / (replayed * 1e3), eager, kKernels, kReplays);
    }
    // kKernels Q4_1 GEMVs at SmolLM2's o-projection size (576 x 576) and gate size (1536 x 576), each way.
    void measure_gemvs(const std::string& prefix) {
        const Tensor x = random(1, 576, 1), y = be_->alloc(GgmlType::F32, 1, 576), g = be_->alloc(GgmlType::F32, 1, 1536);
        Tensor storage_o, storage_g;
        const Matrix w_o = q4_1(576, 576, 3, storage_o), w_gate = q4_1(1536, 576, 4, storage_g);
        measure((prefix + "linear Q4_1 576 x 576 (o-proj)").c_str(), static_cast<double>(w_o.row_bytes) * w_o.rows, y, [&] {
            for (int i = 0; i < kKernels; ++i) be_->linear(w_o, nullptr, x, y);
        });
        measure((prefix + "linear Q4_1 1536 x 576 (gate)").c_str(), static_cast<double>(w_gate.row_bytes) * w_gate.rows, g, [&] {
            for (int i = 0; i < kKernels; ++i) be_->linear(w_gate, nullptr, x, g);
        });
    }
    std::unique_ptr<Backend> be_;
};

TEST_F(CudaLaunchFloor, TimePerKernelInARecordedStep) {
    const Tensor x = random(1, 576, 1), norm_w = random(1, 576, 2), y = be_->alloc(GgmlType::F32, 1, 576);
    measure("rms_norm, 576 elements", 576.0 * 4 * 3, y, [&] {
        for (int i = 0; i < kKernels; ++i) be_->rms_norm(x, norm_w, 1e-5f, y);
    });
    measure_gemvs("");
}

TEST_F(CudaLaunchFloor, TimePerStageInAStepProgram) {
    setenv("WINNOW_CUDA_MEGAKERNEL", "1", 1); // read when a backend is made
    be_ = make_backend({.device = Device::cuda});
    measure_gemvs("step program: ");
}

} // namespace
