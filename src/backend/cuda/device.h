#pragma once
// CUDA device discovery. Safe to call on machines without a GPU or driver: it reports zero devices.
#include <string>

namespace winnow::cuda {

int device_count();
std::string device_name(int device);

} // namespace winnow::cuda
