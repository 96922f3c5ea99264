// Stand-in for kernels/device.cu in a build without CUDA: queries say "no CUDA", everything else refuses clearly.
#ifndef RAMH_WITH_CUDA
#include "ramh/device.hpp"

namespace ramh {

namespace {
[[noreturn]] void no_cuda() {
  fail<DeviceError>("ramh_rt was built without CUDA: rebuild with a CUDA compiler present (RAMH_CUDA=ON) to use a GPU");
}
}  // namespace

bool cuda_compiled() { return false; }
bool cuda_available() { return false; }
int cuda_device_count() { return 0; }
DeviceProperties device_properties(int) { no_cuda(); }

Stream::Stream(int) { no_cuda(); }
Stream::~Stream() = default;
void Stream::synchronize() const { no_cuda(); }
Stream& default_stream(int) { no_cuda(); }

DeviceBuffer::DeviceBuffer(std::size_t, int, void*) { no_cuda(); }
DeviceBuffer::~DeviceBuffer() = default;
PinnedBuffer::PinnedBuffer(std::size_t) { no_cuda(); }
PinnedBuffer::~PinnedBuffer() = default;

void copy_async(void*, const void*, std::size_t, void*) { no_cuda(); }
void memset_async(void*, int, std::size_t, void*) { no_cuda(); }
void stream_synchronize(void*) { no_cuda(); }
void stream_wait(void*, void*, int) { no_cuda(); }
int device_of_pointer(const void*) { return -1; }
PoolStats pool_stats(int) { return {}; }
void trim_pool(int) {}

}  // namespace ramh
#endif
