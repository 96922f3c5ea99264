// ramh/device.hpp — CUDA device, stream and memory management owned by the core.
//
// Device memory comes from a stream-ordered pool (cudaMallocAsync on a pool whose release threshold keeps freed blocks
// for reuse), host staging from a cache of pinned blocks. Engines (ONNX Runtime IO binding, TensorRT) read and write
// DeviceBuffers by pointer, so Python needs no pycuda. In a build without CUDA every call that needs a device throws
// DeviceError("ramh_rt was built without CUDA ...") and cuda_available() is false.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ramh/tensor.hpp"

namespace ramh {

// True when the core was compiled with CUDA kernels.
bool cuda_compiled();
// True when the core was compiled with CUDA and at least one device can be used (driver present, device visible).
bool cuda_available();
int cuda_device_count();

struct DeviceProperties {
  int id = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;
  std::size_t total_memory = 0;
  int multiprocessors = 0;
  bool integrated = false;  // Jetson: host and device share memory, mapped host memory is zero-copy
};
DeviceProperties device_properties(int device_id);

// A CUDA stream owned by the core (nullptr stream handle = the legacy default stream).
class Stream {
 public:
  explicit Stream(int device_id = 0);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  void* handle() const { return handle_; }
  int device_id() const { return device_id_; }
  void synchronize() const;

 private:
  void* handle_ = nullptr;
  int device_id_ = 0;
};

// The process-wide stream the Python ops run on unless told otherwise.
Stream& default_stream(int device_id = 0);

// Owning device allocation from the pool; freed back to the pool on the stream it was allocated on.
class DeviceBuffer {
 public:
  DeviceBuffer(std::size_t nbytes, int device_id, void* stream);
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* data() const { return data_; }
  std::size_t size() const { return nbytes_; }
  int device_id() const { return device_id_; }

 private:
  void* data_ = nullptr;
  std::size_t nbytes_ = 0;
  int device_id_ = 0;
  void* stream_ = nullptr;
};

// Pinned (page-locked) host memory for fast, asynchronous host<->device copies; blocks are cached and reused.
class PinnedBuffer {
 public:
  explicit PinnedBuffer(std::size_t nbytes);
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void* data() const { return data_; }
  std::size_t size() const { return nbytes_; }

 private:
  void* data_ = nullptr;
  std::size_t nbytes_ = 0;
};

// Copies between host and device memory on a stream. kind is inferred by the CUDA runtime (unified addressing).
void copy_async(void* dst, const void* src, std::size_t nbytes, void* stream);
void memset_async(void* dst, int value, std::size_t nbytes, void* stream);
void stream_synchronize(void* stream);
// Makes stream `waiter` wait, on the device and without blocking the host, for the work queued on stream `producer`
// so far (an event recorded there). nullptr is the legacy default stream. Both streams belong to `device_id`.
void stream_wait(void* waiter, void* producer, int device_id);
// The CUDA device holding `ptr`, or -1 for host memory (or a build without CUDA).
int device_of_pointer(const void* ptr);

struct PoolStats {
  std::size_t reserved_bytes = 0;  // held by the pool
  std::size_t used_bytes = 0;      // handed out now
  std::size_t pinned_cached_bytes = 0;
};
PoolStats pool_stats(int device_id = 0);
// Gives cached pool memory back to the driver (e.g. before handing the GPU to another framework).
void trim_pool(int device_id = 0);

}  // namespace ramh
