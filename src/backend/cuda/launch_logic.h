#pragma once
// Whether the CUDA backend's kernels are launched with Programmatic Dependent Launch (launch.cuh), as a plain function
// of the device's compute capability and the WINNOW_CUDA_PDL environment variable, so that a machine without a GPU
// can test the rule (tests/ops/test_launch_logic.cpp).
#include <cstring>

namespace winnow::cuda {

// PDL needs sm_90 (Hopper) or later; WINNOW_CUDA_PDL=0 turns it off (any other value, or none, leaves it on).
inline bool pdl_wanted(int cc_major, const char* env) { return cc_major >= 9 && !(env && std::strcmp(env, "0") == 0); }

// Whether the GEMV kernels ask L2 for their weight rows before their pdl_wait() (launch.cuh's pdl_wait_prefetching):
// only with PDL on (without it a kernel starts after its predecessor has finished, and the prefetch overlaps nothing);
// WINNOW_CUDA_PREFETCH=0 turns it off, for the A/B run (bench/device/run.sh).
inline bool weight_prefetch_wanted(bool pdl_on, const char* env) { return pdl_on && !(env && std::strcmp(env, "0") == 0); }

} // namespace winnow::cuda
