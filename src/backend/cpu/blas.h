#pragma once
// OpenBLAS as winnow uses it: the fp32 prefill products (gemm_f32.cpp) and fine-tuning's matrix products
// (train/sgemm.cpp).
#include <string>

namespace winnow::cpu {

// Sets OpenBLAS up once, before the first product: one thread per call (winnow's own OpenMP threads split the work
// among themselves), and kernels that use the vector units the CPU has (blas.cpp says why OpenBLAS may not pick them
// itself). Thread-safe; everything that calls cblas_* calls this first.
void prepare_blas();

// After prepare_blas: the kernel set OpenBLAS runs ("SkylakeX", "Haswell", ...), and with it, when prepare_blas
// overrode OpenBLAS's own choice, what that choice was (e.g. "SkylakeX (OpenBLAS chose Prescott)").
std::string blas_kernels();

// The kernel set a CPU with these features should run, by OpenBLAS's name ("SkylakeX", "Haswell"), or "" when no
// override is called for; and whether OpenBLAS's choice `current` falls short of it (uses neither AVX2 nor AVX-512: a
// CPU OpenBLAS did not recognise). Pure functions, for tests.
std::string wanted_blas_core(bool avx512, bool avx2_fma);
bool blas_core_falls_short(const std::string& current, const std::string& wanted);

} // namespace winnow::cpu
