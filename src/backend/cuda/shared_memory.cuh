#pragma once
// A kernel's dynamic shared memory (the launch's third configuration value), 16-byte aligned:
//     WINNOW_DYNAMIC_SHARED(float, shared); // then shared[i]
// nvcc: the usual extern __shared__ array. The SIMT emulator's build (emulator/simt.h): a pointer to the running block's
// buffer, as C++ has no extern array that differs per block.
#ifdef WINNOW_CUDA_EMULATED
#define WINNOW_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(::winnow::emu::dynamic_shared())
#else
#define WINNOW_DYNAMIC_SHARED(T, name) extern __shared__ __align__(16) T name[]
#endif
