#pragma once
// Small statistics shared by the benchmark commands.
#include <algorithm>
#include <chrono>
#include <vector>

namespace winnow::cli {

// The upper median (element size/2 of the sorted values); 0 for none.
inline double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
}

// Milliseconds on the steady clock since t0.
inline double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace winnow::cli
