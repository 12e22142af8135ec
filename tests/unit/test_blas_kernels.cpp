// OpenBLAS's kernels (backend/cpu/blas.cpp): the choice of which to force, and that the OpenBLAS this process runs
// uses the vector units the CPU has after prepare_blas (Debian's 0.3.21 takes unknown CPUs for a Prescott, SSE3 only:
// 4x slower fp32 prefill on an AVX-512 VM).
#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <set>
#include <sstream>
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

// The CPU's vector units as the kernel reports them in /proc/cpuinfo (a source independent of blas.cpp's
// __builtin_cpu_supports): true when every flag in `flags` is listed.
bool cpuinfo_has(std::initializer_list<const char*> flags) {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("flags", 0) != 0) continue;
        std::istringstream words(line.substr(line.find(':') + 1));
        std::set<std::string> have{std::istream_iterator<std::string>(words), std::istream_iterator<std::string>()};
        for (const char* f : flags)
            if (!have.count(f)) return false;
        return true;
    }
    return false;
}

TEST(BlasKernels, TheRunningKernelsUseTheCpusVectorUnits) {
    if (std::getenv("OPENBLAS_CORETYPE") != nullptr) GTEST_SKIP() << "OPENBLAS_CORETYPE is set: the user's choice stands";
#if defined(__x86_64__)
    ASSERT_TRUE(std::ifstream("/proc/cpuinfo").good()) << "no /proc/cpuinfo to read the CPU's flags from";
    const bool avx512 = cpuinfo_has({"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"}), avx2_fma = cpuinfo_has({"avx2", "fma"});
    const std::string kernels = blas_kernels(), running = kernels.substr(0, kernels.find(' '));
    EXPECT_FALSE(blas_core_falls_short(running, wanted_blas_core(avx512, avx2_fma))) << "OpenBLAS runs " << kernels;
    std::printf("OpenBLAS kernels: %s\n", kernels.c_str());
#else
    GTEST_SKIP() << "x86-64 only";
#endif
}

} // namespace
