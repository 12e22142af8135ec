#pragma once
// CUDA device discovery. Safe to call on machines without a GPU or driver: it reports zero devices.
#include <cstddef>
#include <string>

namespace winnow::cuda {

int device_count();
std::string device_name(int device);
// The memory roofline measured in the run that uses it: a device-to-device copy of `bytes` (median of `reps` timed
// copies after one warm-up), counting bytes read plus bytes written, in GB/s.
double measure_copy_bandwidth_gbps(int device, size_t bytes = size_t(1) << 30, int reps = 10);

} // namespace winnow::cuda
