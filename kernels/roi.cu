// CUDA implementation of the roi family (ramh/roi.hpp); CPU twin: cpp/src/roi_cpu.cpp.
//
// crop: one thread per output element, all ROIs (and channels) in one launch; the per-ROI maps are computed on the
// host (from the host box table) and uploaded once.
// paste: one thread per output pixel, one launch over the output image. Each 32 x 8 tile first lists the ROIs whose
// bounding box meets it (block scan over flags, so the list keeps the ROI order) and stages their maps in shared
// memory; each pixel then loops over that short list. The combination (NaN-ignoring max, max, or) is exactly
// commutative, so the result is deterministic and equal to the CPU's.
// Sample positions and interpolation use the shared functions of ramh/detail/roi_impl.hpp (every rounding spelled
// out), so nearest results and coverage are bit-identical to the CPU twin.
#include <cuda_runtime.h>

#include <cub/block/block_scan.cuh>

#include <cstring>
#include <vector>

#include "ramh/cuda_check.cuh"
#include "ramh/detail/roi_impl.hpp"
#include "ramh/device.hpp"
#include "ramh/roi.hpp"

namespace ramh::cuda {
namespace {

using detail::CropMap;
using detail::PasteMap;

constexpr int kTileX = 32, kTileY = 8, kThreads = kTileX * kTileY;

inline unsigned int grid_rows(int64_t rows) {
  const int64_t blocks = (rows + kTileY - 1) / kTileY;
  return static_cast<unsigned int>(blocks < 65535 ? (blocks < 1 ? 1 : blocks) : 65535);
}

// Copies `bytes` of host data to a new device buffer through pinned memory (the caller synchronises the stream
// before the pinned block is released).
struct Upload {
  PinnedBuffer pinned;
  DeviceBuffer device;
  // Destroyed first: when an exception (a failed launch check, a bad dtype) skips the caller's synchronisation, the
  // pinned block must not go back to the cache with the copy still queued (the next user could overwrite it mid-copy).
  SyncOnUnwind sync;
  Upload(const void* src, std::size_t bytes, int dev, cudaStream_t s) : pinned(bytes), device(bytes, dev, s), sync(s) {
    if (bytes == 0) return;
    std::memcpy(pinned.data(), src, bytes);
    copy_async(device.data(), pinned.data(), bytes, s);
  }
};

// ---- crop ------------------------------------------------------------------------------------------------------------
template <class T, class O, bool kBilinear>
__global__ void crop_kernel(const T* __restrict__ img, int64_t channels, int64_t h, int64_t w,
                            const CropMap* __restrict__ maps, int64_t rows, int64_t oh, int64_t ow, O fill,
                            O* __restrict__ out) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kTileX + threadIdx.x;
  if (j >= ow) return;
  for (int64_t r = static_cast<int64_t>(blockIdx.y) * kTileY + threadIdx.y; r < rows;
       r += static_cast<int64_t>(gridDim.y) * kTileY) {
    const int64_t i = r % oh;
    const int64_t c = (r / oh) % channels;
    const CropMap m = maps[r / (oh * channels)];
    const T* plane = img + c * h * w;
    float px, py;
    detail::crop_point(m, i, j, &px, &py);
    if constexpr (kBilinear)
      out[r * ow + j] = detail::sample_bilinear_fill<T>(plane, h, w, px, py, fill);
    else
      out[r * ow + j] = detail::sample_nearest_fill<T>(plane, h, w, px, py, fill);
  }
}

template <class T>
void crop_typed(const Tensor& image, const CropMap* maps, int64_t n, Interpolation interp, double fill, Tensor& out,
                cudaStream_t s) {
  const int64_t channels = image.ndim() == 3 ? image.dim(0) : 1;
  const int64_t h = image.dim(-2), w = image.dim(-1), oh = out.dim(-2), ow = out.dim(-1);
  const int64_t rows = n * channels * oh;
  const dim3 block(kTileX, kTileY), grid(ceil_div(ow, kTileX), grid_rows(rows));
  if (interp == Interpolation::Bilinear)
    crop_kernel<T, float, true><<<grid, block, 0, s>>>(image.ptr<T>(), channels, h, w, maps, rows, oh, ow,
                                                        static_cast<float>(fill), out.ptr<float>());
  else
    crop_kernel<T, T, false><<<grid, block, 0, s>>>(image.ptr<T>(), channels, h, w, maps, rows, oh, ow,
                                                     static_cast<T>(fill), out.ptr<T>());
  RAMH_CUDA_CHECK_LAUNCH();
}

// ---- paste -----------------------------------------------------------------------------------------------------------
// The block is 2-D (kTileX x kTileY): CUB must be told both extents. With BlockScan<int, kThreads> (BLOCK_DIM_Y = 1)
// CUB's linear thread id would be threadIdx.x alone, so the 8 rows of the block would share 32 scan slots: wrong
// positions/totals and racing writes to tile_maps. With (kTileX, 1, kTileY) it is threadIdx.y * kTileX + threadIdx.x,
// the `tid` used below.
using FlagScan = cub::BlockScan<int, kTileX, cub::BLOCK_SCAN_RAKING, kTileY>;

template <class T>
__global__ void paste_kernel(const T* __restrict__ rois, int64_t rh, int64_t rw, const PasteMap* __restrict__ maps,
                             int n, int64_t oh, int64_t ow, PasteReduce reduce, T fill, T* __restrict__ out) {
  __shared__ PasteMap tile_maps[kThreads];
  __shared__ int tile_index[kThreads];
  __shared__ int tile_count;
  __shared__ typename FlagScan::TempStorage scan_tmp;
  const int tid = threadIdx.y * kTileX + threadIdx.x;
  const float frh = static_cast<float>(rh), frw = static_cast<float>(rw);
  const int64_t x = static_cast<int64_t>(blockIdx.x) * kTileX + threadIdx.x;
  const int64_t tx0 = static_cast<int64_t>(blockIdx.x) * kTileX;
  const int64_t tx1 = tx0 + kTileX;

  // Loop over row tiles (grid-stride in y); every thread of the block runs every iteration (barriers inside).
  for (int64_t ty0 = static_cast<int64_t>(blockIdx.y) * kTileY; ty0 < oh;
       ty0 += static_cast<int64_t>(gridDim.y) * kTileY) {
    const int64_t y = ty0 + threadIdx.y;
    const int64_t ty1 = ty0 + kTileY;
    T cur = fill;
    bool covered = false;
    for (int base = 0; base < n; base += kThreads) {
      // List the ROIs of this chunk whose bounding box meets the tile, in index order.
      const int k = base + tid;
      int flag = 0;
      PasteMap m{};
      if (k < n) {
        m = maps[k];
        flag = (m.x0 < tx1 && m.x1 > tx0 && m.y0 < ty1 && m.y1 > ty0) ? 1 : 0;
      }
      int pos = 0, total = 0;
      FlagScan(scan_tmp).ExclusiveSum(flag, pos, total);
      if (flag) {
        tile_maps[pos] = m;
        tile_index[pos] = k;
      }
      if (tid == 0) tile_count = total;
      __syncthreads();
      if (x < ow && y < oh) {
        for (int q = 0; q < tile_count; ++q) {
          const PasteMap& pm = tile_maps[q];
          if (x < pm.x0 || x >= pm.x1 || y < pm.y0 || y >= pm.y1) continue;
          float rx, ry;
          if (!detail::paste_point(pm, x, y, frw, frh, &rx, &ry)) continue;
          const T* roi = rois + static_cast<int64_t>(tile_index[q]) * rh * rw;
          if constexpr (std::is_same_v<T, float>)
            cur = detail::combine_max(cur, detail::sample_bilinear_clamp(roi, rh, rw, rx, ry), !covered);
          else
            cur = detail::combine_u8(cur, detail::sample_nearest_clamp(roi, rh, rw, rx, ry), !covered, reduce);
          covered = true;
        }
      }
      __syncthreads();  // tile_maps, tile_count and scan_tmp are reused by the next chunk
    }
    if (x < ow && y < oh) out[y * ow + x] = covered ? cur : fill;
  }
}

}  // namespace

void crop_rois(const Tensor& image, const std::vector<RotatedBox>& boxes, Interpolation interp, double fill,
               Tensor& out, void* stream) {
  if (boxes.empty()) return;
  DeviceGuard guard(image.device_id);
  auto s = static_cast<cudaStream_t>(stream);
  std::vector<CropMap> maps;
  maps.reserve(boxes.size());
  for (const auto& b : boxes) maps.push_back(detail::make_crop_map(b, out.dim(-2), out.dim(-1)));
  Upload up(maps.data(), sizeof(CropMap) * maps.size(), image.device_id, s);
  const auto* dmaps = static_cast<const CropMap*>(up.device.data());
  const int64_t n = static_cast<int64_t>(boxes.size());
  switch (image.dtype) {
    case DType::U8: crop_typed<uint8_t>(image, dmaps, n, interp, fill, out, s); break;
    case DType::U16: crop_typed<uint16_t>(image, dmaps, n, interp, fill, out, s); break;
    case DType::F32: crop_typed<float>(image, dmaps, n, interp, fill, out, s); break;
    default: fail("image must be uint8, uint16 or float32, got ", dtype_name(image.dtype));
  }
  RAMH_CUDA_CHECK(cudaStreamSynchronize(s));  // the pinned upload block must outlive the copy
}

void paste_rois(const Tensor& rois, const std::vector<RotatedBox>& boxes, PasteReduce reduce, double fill,
                Tensor& out, void* stream) {
  DeviceGuard guard(rois.device_id);
  auto s = static_cast<cudaStream_t>(stream);
  const int64_t rh = rois.dim(1), rw = rois.dim(2), oh = out.dim(0), ow = out.dim(1);
  std::vector<PasteMap> maps;
  maps.reserve(boxes.size());
  for (const auto& b : boxes) maps.push_back(detail::make_paste_map(b, rh, rw, oh, ow));
  if (maps.size() > static_cast<std::size_t>(INT32_MAX)) fail("paste_rois: too many ROIs (", maps.size(), ")");
  const int n = static_cast<int>(maps.size());
  // An empty upload still gives the kernel a valid (null) pointer; with n == 0 it only writes the fill value.
  Upload up(maps.data(), sizeof(PasteMap) * maps.size(), rois.device_id, s);
  const auto* dmaps = static_cast<const PasteMap*>(up.device.data());
  const dim3 block(kTileX, kTileY), grid(ceil_div(ow, kTileX), grid_rows(oh));
  if (rois.dtype == DType::F32)
    paste_kernel<float><<<grid, block, 0, s>>>(rois.ptr<float>(), rh, rw, dmaps, n, oh, ow, reduce,
                                               static_cast<float>(fill), out.ptr<float>());
  else
    paste_kernel<uint8_t><<<grid, block, 0, s>>>(rois.ptr<uint8_t>(), rh, rw, dmaps, n, oh, ow, reduce,
                                                 static_cast<uint8_t>(fill), out.ptr<uint8_t>());
  RAMH_CUDA_CHECK_LAUNCH();
  RAMH_CUDA_CHECK(cudaStreamSynchronize(s));  // the pinned upload block must outlive the copy
}

}  // namespace ramh::cuda
