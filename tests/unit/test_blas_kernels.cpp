// OpenBLAS's kernels (backend/cpu/blas.cpp): the choice of which to force, and that the OpenBLAS this process runs
// uses the vector units the CPU has after prepare_blas (Debian's 0.3.21 takes unknown CPUs for a Prescott, SSE3 only:
// 4x slower fp32 prefill on an AVX-512 VM).
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "backend/cpu/blas.h"

namespace {

using namespace winnow::cpu;

TEST(BlasKernels, WantedCoreFollowsTheVectorUnits) {
    EXPECT_EQ(wanted_blas_core(true, true), "SkylakeX");
    EXPECT_EQ(wanted_blas_core(false, true), "Haswell");
    EXPECT_EQ(wanted_blas_core(false, false), "");
}

TEST(BlasKernels, OnlyAChoiceBelowAvx2IsOverridden) {
    EXPECT_TRUE(blas_core_falls_short("Prescott", "SkylakeX"));
    EXPECT_TRUE(blas_core_falls_short("Prescott", "Haswell"));
    EXPECT_TRUE(blas_core_falls_short("Sandybridge", "Haswell"));
    EXPECT_TRUE(blas_core_falls_short("", "Haswell"));
    EXPECT_FALSE(blas_core_falls_short("SkylakeX", "Haswell")); // never downgraded
    EXPECT_FALSE(blas_core_falls_short("Cooperlake", "SkylakeX"));
    EXPECT_FALSE(blas_core_falls_short("SKYLAKEX", "SkylakeX")); // names compare without case
    EXPECT_FALSE(blas_core_falls_short("Zen", "Haswell"));
    EXPECT_FALSE(blas_core_falls_short("Haswell", "SkylakeX")); // a recognised CPU keeps OpenBLAS's choice
    EXPECT_FALSE(blas_core_falls_short("Zen", "SkylakeX"));
    EXPECT_FALSE(blas_core_falls_short("Prescott", "")); // a CPU without AVX2: OpenBLAS's choice stands
}

TEST(BlasKernels, TheRunningKernelsUseTheCpusVectorUnits) {
    if (std::getenv("OPENBLAS_CORETYPE") != nullptr) GTEST_SKIP() << "OPENBLAS_CORETYPE is set: the user's choice stands";
#if defined(__x86_64__)
    const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512cd");
    const bool avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    prepare_blas();
    const std::string kernels = blas_kernels(), running = kernels.substr(0, kernels.find(' '));
    EXPECT_FALSE(blas_core_falls_short(running, wanted_blas_core(avx512, avx2_fma))) << "OpenBLAS runs " << kernels;
    std::printf("OpenBLAS kernels: %s\n", kernels.c_str());
#else
    GTEST_SKIP() << "x86-64 only";
#endif
}

} // namespace
