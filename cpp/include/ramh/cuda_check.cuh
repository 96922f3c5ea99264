// ramh/cuda_check.cuh — CUDA error checking for the kernels (include only from .cu files).
#pragma once
#include <cuda_runtime.h>

#include "ramh/tensor.hpp"

#define RAMH_CUDA_CHECK(expr)                                                                              \
  do {                                                                                                     \
    cudaError_t ramh_err_ = (expr);                                                                        \
    if (ramh_err_ != cudaSuccess)                                                                          \
      ::ramh::fail<::ramh::DeviceError>("CUDA error ", cudaGetErrorName(ramh_err_), " (",                \
                                        cudaGetErrorString(ramh_err_), ") at ", __FILE__, ":", __LINE__, \
                                        " in ", #expr);                                                    \
  } while (0)

// Checks the launch of the kernel just issued (configuration errors); execution errors surface at the next sync.
#define RAMH_CUDA_CHECK_LAUNCH() RAMH_CUDA_CHECK(cudaGetLastError())

namespace ramh {
inline unsigned int ceil_div(long long a, long long b) { return static_cast<unsigned int>((a + b - 1) / b); }
}  // namespace ramh
