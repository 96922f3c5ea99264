// ramh/cuda_check.cuh — CUDA error checking for the kernels (include only from .cu files).
#pragma once
#include <cuda_runtime.h>

#include <exception>

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

// Makes device `id` current for the enclosing scope and restores the previous one on exit (the entry points take a
// tensor's device id and may be called from any host thread).
struct DeviceGuard {
  int previous = 0;
  explicit DeviceGuard(int id) {
    RAMH_CUDA_CHECK(cudaGetDevice(&previous));
    if (previous != id) RAMH_CUDA_CHECK(cudaSetDevice(id));
  }
  ~DeviceGuard() { cudaSetDevice(previous); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;
};

// Synchronises the stream when destroyed by an exception unwinding the stack: declared right after a pinned
// staging buffer, it keeps that buffer from returning to the pinned cache while a queued copy still reads it.
class SyncOnUnwind {
 public:
  explicit SyncOnUnwind(cudaStream_t stream) : stream_(stream), pending_(std::uncaught_exceptions()) {}
  ~SyncOnUnwind() {
    if (std::uncaught_exceptions() > pending_) cudaStreamSynchronize(stream_);
  }
  SyncOnUnwind(const SyncOnUnwind&) = delete;
  SyncOnUnwind& operator=(const SyncOnUnwind&) = delete;

 private:
  cudaStream_t stream_;
  int pending_;
};
}  // namespace ramh
