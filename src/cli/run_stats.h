#pragma once
// What --stats reports beside speeds: how long the model took to load and the process's peak memory.
#include <chrono>

#include <sys/resource.h>

namespace winnow::cli {

// Started where loading begins; seconds() is the time since.
class LoadTimer {
public:
    double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }

private:
    std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

// Peak resident memory of this process in MiB (getrusage: Linux reports ru_maxrss in KiB). The model file is mapped,
// so its pages count once they have been read.
inline double peak_rss_mib() {
    rusage u{};
    if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
    return static_cast<double>(u.ru_maxrss) / 1024.0;
}

} // namespace winnow::cli
