// ramh/cuda_check.cuh — CUDA error checking and small RAII helpers shared by the kernels (include only from .cu
// files).
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

// Makes `id` the current CUDA device for the guard's scope and restores the previous one after (also when an
// exception unwinds it): the core's entry points run on the device of their arrays without changing the caller's.
class DeviceGuard {
 public:
  explicit DeviceGuard(int id) {
    RAMH_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != id) RAMH_CUDA_CHECK(cudaSetDevice(id));
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
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
