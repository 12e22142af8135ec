// Debian 12's OpenBLAS (0.3.21, built DYNAMIC_ARCH) picks its kernels when it is loaded, from the CPU's family and model
// numbers, and takes a model it has no entry for for a Prescott: SSE3 kernels on a CPU with AVX-512. CPUs newer than the
// library get that, and so do virtual machines that hide the model ("Intel(R) Xeon(R) Processor"), such as the 2-core
// AVX-512 VM this project is built on: there SmolLM2-135M Q4_1's pp512 ran at 112 tok/s on the Prescott kernels and
// at 446 tok/s on the SkylakeX ones (bench/reports/cpu-blas-kernels.md).
//
// So when OpenBLAS's choice uses none of the CPU's AVX2 or AVX-512 units (its feature flags, which
// __builtin_cpu_supports reports only where the OS has enabled them), prepare_blas has OpenBLAS choose again with
// OPENBLAS_CORETYPE set, through the library's own gotoblas_dynamic_quit / gotoblas_dynamic_init (exported by
// DYNAMIC_ARCH builds; looked up at run time, so a build without them keeps its choice). A user's OPENBLAS_CORETYPE
// is theirs, and left alone.
#include "backend/cpu/blas.h"

#include <dlfcn.h>

#include <cblas.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <mutex>

namespace winnow::cpu {

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// Whether the kernel set `core` uses AVX2 or AVX-512 (OpenBLAS 0.3.21's x86-64 names for those).
bool uses_avx2_or_wider(const std::string& core) {
    const std::string c = lower(core);
    return c == "haswell" || c == "zen" || c == "skylakex" || c == "cooperlake" || c == "sapphirerapids";
}

std::string current_core() {
    const char* name = openblas_get_corename();
    return name ? name : "";
}

std::string g_chosen_by_openblas; // set when prepare_blas overrode it

// gotoblas_dynamic_quit / _init of the OpenBLAS this process runs: looked up in the very library that defines
// openblas_get_corename (it may be loaded privately, e.g. under a Python extension, out of RTLD_DEFAULT's reach).
bool choose_again(const std::string& core) {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&openblas_get_corename), &info) == 0 || info.dli_fname == nullptr) return false;
    void* lib = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (lib == nullptr) return false;
    auto quit = reinterpret_cast<void (*)()>(dlsym(lib, "gotoblas_dynamic_quit"));
    auto init = reinterpret_cast<void (*)()>(dlsym(lib, "gotoblas_dynamic_init"));
    bool done = false;
    if (quit && init) {
        // init reads OPENBLAS_CORETYPE; it is unset again afterwards, so the environment is as the user left it
        setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
        quit();
        init();
        unsetenv("OPENBLAS_CORETYPE");
        done = true;
    }
    dlclose(lib);
    return done;
}

} // namespace

std::string wanted_blas_core(bool avx512, bool avx2_fma) {
    if (avx512) return "SkylakeX";
    if (avx2_fma) return "Haswell";
    return "";
}

// Only a choice below AVX2 is overridden: that is OpenBLAS not knowing the CPU. A recognised CPU keeps OpenBLAS's
// choice (an AMD Zen 4 with AVX-512 gets its Zen kernels: nothing here measured SkylakeX's to be faster there).
bool blas_core_falls_short(const std::string& current, const std::string& wanted) {
    return !wanted.empty() && !uses_avx2_or_wider(current);
}

void prepare_blas() {
    static std::once_flag once;
    std::call_once(once, [] {
        openblas_set_num_threads(1);
        if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
#if defined(__x86_64__)
        const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                            __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512cd");
        const bool avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        const std::string before = current_core(), wanted = wanted_blas_core(avx512, avx2_fma);
        if (!blas_core_falls_short(before, wanted)) return;
        // (gotoblas_dynamic_init keeps the thread count set above)
        if (choose_again(wanted) && lower(current_core()) != lower(before)) g_chosen_by_openblas = before;
#endif
    });
}

std::string blas_kernels() {
    prepare_blas();
    const std::string now = current_core();
    return g_chosen_by_openblas.empty() ? now : now + " (OpenBLAS chose " + g_chosen_by_openblas + ")";
}

} // namespace winnow::cpu
