// CUDA implementation of ramh/device.hpp: device queries, streams, the stream-ordered device pool and the pinned
// host block cache. Compiled only when RAMH_WITH_CUDA; cpp/src/device_nocuda.cpp is its stand-in otherwise.
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>

#include "ramh/cuda_check.cuh"
#include "ramh/device.hpp"

namespace ramh {

bool cuda_compiled() { return true; }

int cuda_device_count() {
  int n = 0;
  // No driver or no device is not an error here: it means "no CUDA", and the caller falls back to the CPU.
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

bool cuda_available() { return cuda_device_count() > 0; }

DeviceProperties device_properties(int device_id) {
  int n = cuda_device_count();
  if (device_id < 0 || device_id >= n) fail<ArgumentError>("device ", device_id, " does not exist (", n, " CUDA devices visible)");
  cudaDeviceProp p{};
  RAMH_CUDA_CHECK(cudaGetDeviceProperties(&p, device_id));
  DeviceProperties out;
  out.id = device_id;
  out.name = p.name;
  out.cc_major = p.major;
  out.cc_minor = p.minor;
  out.total_memory = p.totalGlobalMem;
  out.multiprocessors = p.multiProcessorCount;
  out.integrated = p.integrated != 0;
  return out;
}

namespace {
// The core's own stream-ordered pool per device. Private, not the device's default pool: the release threshold set
// here (keep every freed block, since per-image buffers are the same sizes call after call) would otherwise also stop
// CuPy's MemoryAsyncPool or PyTorch's cudaMallocAsync backend, which share the default pool, from ever returning
// memory, and pool_stats/trim_pool would count and trim their blocks too.
constexpr int kMaxDevices = 64;
std::once_flag g_pool_once[kMaxDevices];
cudaMemPool_t g_pools[kMaxDevices] = {};

cudaMemPool_t core_pool(int device_id) {
  if (device_id < 0 || device_id >= kMaxDevices)
    fail<ArgumentError>("device ", device_id, " is out of range (0..", kMaxDevices - 1, ")");
  std::call_once(g_pool_once[device_id], [device_id] {
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.handleTypes = cudaMemHandleTypeNone;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = device_id;
    cudaMemPool_t pool = nullptr;
    if (cudaMemPoolCreate(&pool, &props) == cudaSuccess) {
      uint64_t threshold = UINT64_MAX;
      cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold);
    } else if (cudaDeviceGetDefaultMemPool(&pool, device_id) != cudaSuccess) {
      pool = nullptr;  // no such device: DeviceBuffer reports it
    }  // else a driver that cannot create pools: share the default one, with its threshold left as it is
    cudaGetLastError();
    g_pools[device_id] = pool;
  });
  return g_pools[device_id];
}
}  // namespace

Stream::Stream(int device_id) : device_id_(device_id) {
  if (!cuda_available()) fail<DeviceError>("no CUDA device is available");
  DeviceGuard g(device_id);
  cudaStream_t s;
  RAMH_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  handle_ = s;
}

Stream::~Stream() {
  if (handle_) cudaStreamDestroy(static_cast<cudaStream_t>(handle_));
}

void Stream::synchronize() const { RAMH_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(handle_))); }

Stream& default_stream(int device_id) {
  static std::mutex m;
  static std::map<int, std::unique_ptr<Stream>> streams;
  std::lock_guard<std::mutex> lock(m);
  auto& s = streams[device_id];
  if (!s) s = std::make_unique<Stream>(device_id);
  return *s;
}

DeviceBuffer::DeviceBuffer(std::size_t nbytes, int device_id, void* stream)
    : nbytes_(nbytes), device_id_(device_id), stream_(stream) {
  DeviceGuard g(device_id);
  cudaMemPool_t pool = core_pool(device_id);
  if (nbytes == 0) return;
  if (pool == nullptr) fail<DeviceError>("no CUDA memory pool for device ", device_id);
  RAMH_CUDA_CHECK(cudaMallocFromPoolAsync(&data_, nbytes, pool, static_cast<cudaStream_t>(stream)));
}

DeviceBuffer::~DeviceBuffer() {
  if (!data_) return;
  int previous = 0;
  cudaGetDevice(&previous);
  cudaSetDevice(device_id_);
  cudaFreeAsync(data_, static_cast<cudaStream_t>(stream_));
  cudaSetDevice(previous);
}

namespace {
// Pinned blocks are expensive to allocate (page locking): keep them, keyed by a power-of-two size class.
struct PinnedCache {
  std::mutex m;
  std::multimap<std::size_t, void*> free_blocks;
  std::unordered_map<void*, std::size_t> sizes;
  std::size_t cached = 0;
};
PinnedCache& pinned_cache() {
  static PinnedCache* c = new PinnedCache();  // leaked on purpose: freed blocks may outlive static destruction
  return *c;
}
std::size_t size_class(std::size_t n) {
  std::size_t s = 4096;
  while (s < n) s <<= 1;
  return s;
}
}  // namespace

PinnedBuffer::PinnedBuffer(std::size_t nbytes) : nbytes_(nbytes) {
  if (nbytes == 0) return;
  auto& c = pinned_cache();
  std::size_t cls = size_class(nbytes);
  {
    std::lock_guard<std::mutex> lock(c.m);
    auto it = c.free_blocks.find(cls);
    if (it != c.free_blocks.end()) {
      data_ = it->second;
      c.free_blocks.erase(it);
      c.cached -= cls;
      return;
    }
  }
  // Mapped + portable: on integrated GPUs (Jetson) the device can read these pages directly (zero copy).
  RAMH_CUDA_CHECK(cudaHostAlloc(&data_, cls, cudaHostAllocPortable | cudaHostAllocMapped));
  std::lock_guard<std::mutex> lock(c.m);
  c.sizes[data_] = cls;
}

PinnedBuffer::~PinnedBuffer() {
  if (!data_) return;
  auto& c = pinned_cache();
  std::lock_guard<std::mutex> lock(c.m);
  std::size_t cls = c.sizes[data_];
  c.free_blocks.emplace(cls, data_);
  c.cached += cls;
}

void copy_async(void* dst, const void* src, std::size_t nbytes, void* stream) {
  if (nbytes == 0) return;
  RAMH_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, static_cast<cudaStream_t>(stream)));
}

void memset_async(void* dst, int value, std::size_t nbytes, void* stream) {
  if (nbytes == 0) return;
  RAMH_CUDA_CHECK(cudaMemsetAsync(dst, value, nbytes, static_cast<cudaStream_t>(stream)));
}

void stream_synchronize(void* stream) { RAMH_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream))); }

void stream_wait(void* waiter, void* producer, int device_id) {
  if (waiter == producer) return;  // one stream is ordered already
  DeviceGuard g(device_id);
  cudaEvent_t e;
  RAMH_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  cudaError_t err = cudaEventRecord(e, static_cast<cudaStream_t>(producer));
  if (err == cudaSuccess) err = cudaStreamWaitEvent(static_cast<cudaStream_t>(waiter), e, 0);
  cudaEventDestroy(e);  // legal once the wait is enqueued: the event is released when it completes
  RAMH_CUDA_CHECK(err);
}

int device_of_pointer(const void* ptr) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, ptr) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  return (attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged) ? attr.device : -1;
}

PoolStats pool_stats(int device_id) {
  PoolStats st;
  if (cudaMemPool_t pool = core_pool(device_id)) {
    uint64_t v = 0;
    if (cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &v) == cudaSuccess) st.reserved_bytes = v;
    if (cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &v) == cudaSuccess) st.used_bytes = v;
  }
  cudaGetLastError();
  auto& c = pinned_cache();
  std::lock_guard<std::mutex> lock(c.m);
  st.pinned_cached_bytes = c.cached;
  return st;
}

void trim_pool(int device_id) {
  if (cudaMemPool_t pool = core_pool(device_id)) {
    // cudaDeviceSynchronize waits for the *current* device: make it device_id, or the frees queued on that device's
    // streams may still be pending and the trim keeps their blocks (multi-GPU).
    DeviceGuard g(device_id);
    RAMH_CUDA_CHECK(cudaDeviceSynchronize());
    RAMH_CUDA_CHECK(cudaMemPoolTrimTo(pool, 0));
  }
  auto& c = pinned_cache();
  std::lock_guard<std::mutex> lock(c.m);
  for (auto& kv : c.free_blocks) {
    cudaFreeHost(kv.second);
    c.sizes.erase(kv.second);
  }
  c.free_blocks.clear();
  c.cached = 0;
}

}  // namespace ramh
