// When the CUDA backend launches its kernels with Programmatic Dependent Launch (backend/cuda/launch.cuh): the rule of
// backend/cuda/launch_logic.h, run on the host. The device side (each launched kernel waits first) is checked by the
// source scan tests/lint/pdl_wait_first.py (ctest lint.pdl_wait_first); what PDL saves, by bench/device/run.sh's tg128
// with WINNOW_CUDA_PDL=0 beside the default.
#include <gtest/gtest.h>

#include "backend/cuda/launch_logic.h"

namespace {

using winnow::cuda::pdl_wanted;
using winnow::cuda::weight_prefetch_wanted;

TEST(PdlLaunch, OnFromHopperUnlessTheEnvironmentSaysZero) {
    EXPECT_TRUE(pdl_wanted(9, nullptr));
    EXPECT_FALSE(pdl_wanted(9, "0"));
    EXPECT_FALSE(pdl_wanted(8, nullptr));
    EXPECT_TRUE(pdl_wanted(10, "1"));
    EXPECT_TRUE(pdl_wanted(12, nullptr));
}

TEST(PdlLaunch, OlderDevicesNeverUseIt) {
    for (int major = 0; major < 9; ++major) {
        EXPECT_FALSE(pdl_wanted(major, nullptr)) << major;
        EXPECT_FALSE(pdl_wanted(major, "1")) << major;
    }
}

// Only exactly "0" turns it off, as WINNOW_CUDA_FUSE_NORM and WINNOW_CUDA_GRAPHS read theirs.
TEST(PdlLaunch, OnlyZeroTurnsItOff) {
    EXPECT_TRUE(pdl_wanted(9, ""));
    EXPECT_TRUE(pdl_wanted(9, "00"));
    EXPECT_TRUE(pdl_wanted(9, "off"));
    EXPECT_TRUE(pdl_wanted(9, " 0"));
    EXPECT_FALSE(pdl_wanted(10, "0"));
}

// The GEMV kernels' weight prefetch before their wait: only with PDL (without it there is nothing to overlap), and
// WINNOW_CUDA_PREFETCH=0 turns it off as the other switches do.
TEST(WeightPrefetch, OnlyWithPdlAndNotTurnedOff) {
    EXPECT_TRUE(weight_prefetch_wanted(true, nullptr));
    EXPECT_TRUE(weight_prefetch_wanted(true, "1"));
    EXPECT_TRUE(weight_prefetch_wanted(true, "off"));
    EXPECT_FALSE(weight_prefetch_wanted(true, "0"));
    EXPECT_FALSE(weight_prefetch_wanted(false, nullptr));
    EXPECT_FALSE(weight_prefetch_wanted(false, "1"));
}

} // namespace
