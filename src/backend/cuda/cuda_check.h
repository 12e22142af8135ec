#pragma once
// Turns a failed CUDA runtime call into a winnow::Error naming the call and the place.
#include <cuda_runtime.h>
#include <string>

#include "winnow/error.h"

#define WINNOW_CUDA_CHECK(call)                                                                                          \
    do {                                                                                                                 \
        cudaError_t err_ = (call);                                                                                       \
        if (err_ != cudaSuccess)                                                                                         \
            throw ::winnow::Error(::winnow::ErrorKind::io, std::string(#call) + " failed at " __FILE__ ":" +            \
                                                               std::to_string(__LINE__) + ": " + cudaGetErrorString(err_)); \
    } while (0)
