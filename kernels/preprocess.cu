// CUDA implementation of the preprocess family (ramh/preprocess.hpp); CPU twin: cpp/src/preprocess_cpu.cpp.
//
// Launch sequence on one stream, all images of the batch in each launch (grid z / y = image):
//   float images: float_stats (min, max, non-finite count; warp reductions + ordered-integer atomics)
//   no window given: histogram (shared-memory privatised integer atomics, flushed once per block: counts are exact,
//     so the result is deterministic) -> rank search (one block per image, block scan over the bins)
//     uint8: 256 bins; uint16: 256 coarse bins (v >> 8), then 2 x 256 fine bins (v & 255) of the two coarse bins that
//     hold the percentiles — the same answer as one 65536-bin histogram without 256 KB of shared memory; float32:
//     4096 bins over [min, max]
//   axis_weights (the resampling tables, same function as the CPU) -> vertical pass (resized rows x full width into a
//   device temporary) -> horizontal pass + normalise + letterbox + float32/float16 store
//   one device-to-host copy of the windows and statistics (pinned), then the stream is synchronised.
// Every float operation that reaches the output is spelled out (mul_rn/add_rn) in the CPU's order, so results are
// bit-identical to the CPU twin on x86-64.
#include <cuda_runtime.h>

#include <cub/block/block_scan.cuh>

#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "ramh/cuda_check.cuh"
#include "ramh/detail/preprocess_impl.hpp"
#include "ramh/device.hpp"
#include "ramh/hd_math.hpp"
#include "ramh/preprocess.hpp"

namespace ramh::cuda {
namespace {

using detail::ResampleAxis;
using detail::WindowCoef;

constexpr int kThreads = 256;

int sm_count(int device) {
  int n = 0;
  RAMH_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
  return n;
}

// Grid dimension y/z limit: larger extents are covered by grid-stride loops.
inline unsigned int grid_dim(int64_t n, int64_t cap = 65535) {
  return static_cast<unsigned int>(n < cap ? (n < 1 ? 1 : n) : cap);
}

// ---- float statistics --------------------------------------------------------------------------------------------
// Order-preserving map float -> uint32 (larger float, larger key), so that atomicMin/atomicMax work on floats.
__device__ __forceinline__ unsigned int float_key(float f) {
  const unsigned int u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float key_float(unsigned int k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

struct FloatStats {
  unsigned int min_key;   // float_key(min) over the finite pixels
  unsigned int max_key;   // float_key(max)
  unsigned long long nonfinite;
  unsigned long long pad_;  // keeps the struct 8-byte aligned in arrays
};

__global__ void float_stats_kernel(const float* __restrict__ img, int64_t npx, int n_img, FloatStats* stats) {
  for (int n = blockIdx.y; n < n_img; n += gridDim.y) {
    const float* p = img + static_cast<int64_t>(n) * npx;
    float mn = INFINITY, mx = -INFINITY;
    unsigned long long bad = 0;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < npx;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
      const float v = p[i];
      if (isfinite(v)) {
        mn = fminf(mn, v);
        mx = fmaxf(mx, v);
      } else {
        ++bad;
      }
    }
    for (int o = 16; o > 0; o >>= 1) {
      mn = fminf(mn, __shfl_down_sync(0xffffffffu, mn, o));
      mx = fmaxf(mx, __shfl_down_sync(0xffffffffu, mx, o));
      bad += __shfl_down_sync(0xffffffffu, bad, o);
    }
    if ((threadIdx.x & 31) == 0) {
      if (mn <= mx) {  // this warp saw at least one finite pixel
        atomicMin(&stats[n].min_key, float_key(mn));
        atomicMax(&stats[n].max_key, float_key(mx));
      }
      if (bad) atomicAdd(&stats[n].nonfinite, bad);
    }
  }
}

__global__ void init_stats_kernel(FloatStats* stats, int n_img) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n < n_img) {
    stats[n].min_key = 0xffffffffu;
    stats[n].max_key = 0u;
    stats[n].nonfinite = 0ull;
    stats[n].pad_ = 0ull;
  }
}

// ---- histograms ----------------------------------------------------------------------------------------------------
enum class HistMode { U8, U16Coarse, U16Fine, F32 };

// Per-image results of the coarse uint16 search, input of the fine pass.
struct CoarseRank {
  int bin_lo, bin_hi;          // coarse bins (v >> 8) holding the two percentiles
  unsigned int rank_lo, rank_hi;  // the percentiles' ranks inside those bins (1-based)
};

template <HistMode M>
constexpr int hist_bins() {
  return M == HistMode::F32 ? detail::kFloatHistBins : (M == HistMode::U16Fine ? 512 : 256);
}

template <HistMode M, class T>
__global__ void histogram_kernel(const T* __restrict__ img, int64_t npx, int n_img, const FloatStats* stats,
                                 const CoarseRank* coarse, unsigned int* hist) {
  constexpr int kBins = hist_bins<M>();
  __shared__ unsigned int sh[kBins];
  for (int n = blockIdx.y; n < n_img; n += gridDim.y) {
    for (int b = threadIdx.x; b < kBins; b += blockDim.x) sh[b] = 0u;
    __syncthreads();
    const T* p = img + static_cast<int64_t>(n) * npx;
    double mn = 0.0, scale = 0.0;
    bool skip = false;
    int c_lo = 0, c_hi = 0;
    if constexpr (M == HistMode::F32) {
      const float fmn = key_float(stats[n].min_key), fmx = key_float(stats[n].max_key);
      skip = !(fmn < fmx);  // constant image (or no finite pixel): the window needs no histogram
      mn = fmn;
      scale = skip ? 0.0 : detail::float_hist_scale(fmn, fmx);
    }
    if constexpr (M == HistMode::U16Fine) {
      c_lo = coarse[n].bin_lo;
      c_hi = coarse[n].bin_hi;
    }
    if (!skip) {
      for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < npx;
           i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const T v = p[i];
        if constexpr (M == HistMode::U8) {
          atomicAdd(&sh[v], 1u);
        } else if constexpr (M == HistMode::U16Coarse) {
          atomicAdd(&sh[v >> 8], 1u);
        } else if constexpr (M == HistMode::U16Fine) {
          const int c = v >> 8;
          if (c == c_lo) atomicAdd(&sh[v & 255], 1u);
          if (c == c_hi) atomicAdd(&sh[256 + (v & 255)], 1u);
        } else {
          if (isfinite(v)) atomicAdd(&sh[detail::float_bin(v, mn, scale)], 1u);
        }
      }
    }
    __syncthreads();
    unsigned int* g = hist + static_cast<int64_t>(n) * kBins;
    for (int b = threadIdx.x; b < kBins; b += blockDim.x)
      if (sh[b]) atomicAdd(&g[b], sh[b]);
    __syncthreads();
  }
}

// ---- rank search -------------------------------------------------------------------------------------------------
using BlockScan = cub::BlockScan<unsigned long long, kThreads>;

struct RankResult {
  int bin;
  unsigned long long before;  // pixels in the bins below `bin`
};

// Smallest bin whose cumulative count reaches k (1-based), found by the whole block; the last bin if the histogram
// holds fewer than k pixels (only when non-finite pixels were skipped: that call fails afterwards anyway).
__device__ RankResult block_rank(const unsigned int* hist, int bins, unsigned long long k,
                                 typename BlockScan::TempStorage& scan_tmp, RankResult* shared_result) {
  const int per = (bins + kThreads - 1) / kThreads;
  const int b0 = threadIdx.x * per;
  unsigned long long sum = 0;
  for (int b = b0; b < b0 + per && b < bins; ++b) sum += hist[b];
  unsigned long long before = 0, total = 0;
  BlockScan(scan_tmp).ExclusiveSum(sum, before, total);
  if (threadIdx.x == 0) *shared_result = {bins - 1, total - hist[bins - 1]};
  __syncthreads();
  if (before < k && k <= before + sum) {  // exactly one thread
    unsigned long long cum = before;
    for (int b = b0; b < b0 + per && b < bins; ++b) {
      if (cum + hist[b] >= k) {
        *shared_result = {b, cum};
        break;
      }
      cum += hist[b];
    }
  }
  __syncthreads();
  const RankResult r = *shared_result;
  __syncthreads();  // the block may call again with the same shared slot
  return r;
}

template <HistMode M>
__global__ void rank_kernel(const unsigned int* hist, int n_img, unsigned long long k_lo, unsigned long long k_hi,
                            const FloatStats* stats, CoarseRank* coarse, float* windows) {
  constexpr int kBins = hist_bins<M>();
  __shared__ typename BlockScan::TempStorage scan_tmp;
  __shared__ RankResult result;
  for (int n = blockIdx.x; n < n_img; n += gridDim.x) {
    const unsigned int* h = hist + static_cast<int64_t>(n) * kBins;
    if constexpr (M == HistMode::U8) {
      const RankResult lo = block_rank(h, 256, k_lo, scan_tmp, &result);
      const RankResult hi = block_rank(h, 256, k_hi, scan_tmp, &result);
      if (threadIdx.x == 0) {
        windows[2 * n] = static_cast<float>(lo.bin);
        windows[2 * n + 1] = static_cast<float>(hi.bin);
      }
    } else if constexpr (M == HistMode::U16Coarse) {
      const RankResult lo = block_rank(h, 256, k_lo, scan_tmp, &result);
      const RankResult hi = block_rank(h, 256, k_hi, scan_tmp, &result);
      if (threadIdx.x == 0)
        coarse[n] = {lo.bin, hi.bin, static_cast<unsigned int>(k_lo - lo.before),
                     static_cast<unsigned int>(k_hi - hi.before)};
    } else if constexpr (M == HistMode::U16Fine) {
      const CoarseRank c = coarse[n];
      const RankResult lo = block_rank(h, 256, c.rank_lo, scan_tmp, &result);
      const RankResult hi = block_rank(h + 256, 256, c.rank_hi, scan_tmp, &result);
      if (threadIdx.x == 0) {
        windows[2 * n] = static_cast<float>(c.bin_lo * 256 + lo.bin);
        windows[2 * n + 1] = static_cast<float>(c.bin_hi * 256 + hi.bin);
      }
    } else {
      const float mn = key_float(stats[n].min_key), mx = key_float(stats[n].max_key);
      if (!(mn < mx)) {
        if (threadIdx.x == 0) windows[2 * n] = windows[2 * n + 1] = mn;
        continue;  // uniform across the block
      }
      const RankResult lo = block_rank(h, kBins, k_lo, scan_tmp, &result);
      const RankResult hi = block_rank(h, kBins, k_hi, scan_tmp, &result);
      if (threadIdx.x == 0) {
        windows[2 * n] = detail::float_bin_edge(mn, mx, lo.bin);
        windows[2 * n + 1] = detail::float_bin_edge(mn, mx, hi.bin + 1);
      }
    }
  }
}

// ---- resampling ----------------------------------------------------------------------------------------------------
__global__ void weights_kernel(ResampleAxis ay, ResampleAxis ax, int* fy, float* wy, int* fx, float* wx) {
  const int64_t o = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o < ay.n_out) {
    fy[o] = static_cast<int>(detail::axis_weights(ay, o, wy + o * ay.taps));
  } else if (o < ay.n_out + ax.n_out) {
    const int64_t q = o - ay.n_out;
    fx[q] = static_cast<int>(detail::axis_weights(ax, q, wx + q * ax.taps));
  }
}

template <class T>
__global__ void vertical_kernel(const T* __restrict__ img, int64_t h, int64_t w, int n_img, int64_t new_h, int taps,
                                const int* __restrict__ fy, const float* __restrict__ wy,
                                const float* __restrict__ windows, float* __restrict__ tmp) {
  const int64_t x = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (x >= w) return;
  for (int n = blockIdx.z; n < n_img; n += gridDim.z) {
    const WindowCoef c = detail::window_coef(windows[2 * n], windows[2 * n + 1]);
    const T* p = img + static_cast<int64_t>(n) * h * w;
    for (int64_t oy = blockIdx.y; oy < new_h; oy += gridDim.y) {
      const float* wr = wy + oy * taps;
      const T* col = p + static_cast<int64_t>(fy[oy]) * w + x;
      float acc = 0.0f;
      for (int t = 0; t < taps; ++t) {
        const float wt = wr[t];
        if (wt == 0.0f) continue;  // as on the CPU (adding +0 would not change a bit either)
        acc = add_rn(acc, mul_rn(wt, detail::apply_window(static_cast<float>(col[t * w]), c)));
      }
      tmp[(static_cast<int64_t>(n) * new_h + oy) * w + x] = acc;
    }
  }
}

template <class O>
__device__ __forceinline__ void store_out(O* dst, float v);
template <>
__device__ __forceinline__ void store_out<float>(float* dst, float v) {
  *dst = v;
}
template <>
__device__ __forceinline__ void store_out<uint16_t>(uint16_t* dst, float v) {
  *dst = float_to_half_bits(v);
}

template <class O>
__global__ void horizontal_kernel(const float* __restrict__ tmp, int64_t w, int n_img, int64_t new_h, int64_t new_w,
                                  int64_t out_h, int64_t out_w, int64_t pad_y, int64_t pad_x, int taps,
                                  const int* __restrict__ fx, const float* __restrict__ wx, float mean, float std_,
                                  float pad, O* __restrict__ out) {
  const int64_t x = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (x >= out_w) return;
  const int64_t ox = x - pad_x;
  for (int n = blockIdx.z; n < n_img; n += gridDim.z) {
    for (int64_t y = blockIdx.y; y < out_h; y += gridDim.y) {
      O* dst = out + (static_cast<int64_t>(n) * out_h + y) * out_w + x;
      const int64_t oy = y - pad_y;
      if (oy < 0 || oy >= new_h || ox < 0 || ox >= new_w) {
        store_out(dst, pad);
        continue;
      }
      const float* src = tmp + (static_cast<int64_t>(n) * new_h + oy) * w + fx[ox];
      const float* wr = wx + ox * taps;
      float acc = 0.0f;
      for (int t = 0; t < taps; ++t) acc = add_rn(acc, mul_rn(wr[t], src[t]));
      store_out(dst, detail::normalise(acc, mean, std_));
    }
  }
}

// ---- host side -----------------------------------------------------------------------------------------------------
template <HistMode M, class T>
void launch_histogram(const T* img, int64_t npx, int n_img, int blocks_x, const FloatStats* stats,
                      const CoarseRank* coarse, unsigned int* hist, cudaStream_t s) {
  dim3 grid(blocks_x, grid_dim(n_img));
  histogram_kernel<M, T><<<grid, kThreads, 0, s>>>(img, npx, n_img, stats, coarse, hist);
  RAMH_CUDA_CHECK_LAUNCH();
}

template <HistMode M>
void launch_rank(const unsigned int* hist, int n_img, int64_t k_lo, int64_t k_hi, const FloatStats* stats,
                 CoarseRank* coarse, float* windows, cudaStream_t s) {
  rank_kernel<M><<<grid_dim(n_img), kThreads, 0, s>>>(hist, n_img, static_cast<unsigned long long>(k_lo),
                                                      static_cast<unsigned long long>(k_hi), stats, coarse, windows);
  RAMH_CUDA_CHECK_LAUNCH();
}

template <class T>
void run(const Tensor& image, const Tensor* window, const PreprocessParams& p, Tensor& out, float* window_out,
         cudaStream_t s) {
  const int dev = image.device_id;
  const int64_t batch = image.ndim() == 3 ? image.dim(0) : 1;
  if (batch > INT_MAX) fail("preprocess: at most ", INT_MAX, " images per call on CUDA, got ", batch);
  const int n_img = static_cast<int>(batch);
  const int64_t h = image.dim(-2), w = image.dim(-1), npx = h * w;
  const T* img = image.ptr<T>();
  constexpr bool kFloat = std::is_same_v<T, float>;

  // Histogram grid: enough blocks to fill the GPU a few times over, few enough that the per-block flush of the
  // shared histogram stays small next to the pixel work.
  const int64_t want = (npx + kThreads * 16 - 1) / (kThreads * 16);
  const int64_t cap = (4 * static_cast<int64_t>(sm_count(dev)) + n_img - 1) / n_img;
  const int blocks_x = static_cast<int>(want < cap ? (want < 1 ? 1 : want) : (cap < 1 ? 1 : cap));

  // Small per-image results that come back to the host in one copy: windows (2 floats) and float statistics.
  const std::size_t win_bytes = sizeof(float) * 2 * n_img;
  const std::size_t stats_off = (win_bytes + 15) / 16 * 16;
  const std::size_t small_bytes = stats_off + sizeof(FloatStats) * n_img;
  DeviceBuffer small(small_bytes, dev, s);
  float* windows = static_cast<float*>(small.data());
  FloatStats* stats = reinterpret_cast<FloatStats*>(static_cast<char*>(small.data()) + stats_off);
  PinnedBuffer host_small(small_bytes);
  // host_small feeds an asynchronous upload of the windows; if anything below throws before the final
  // cudaStreamSynchronize (a pool allocation failing, a launch check), the block must not go back to the pinned cache
  // while that copy (or the read-back) is still queued: another op would get it and write into it mid-copy.
  const SyncOnUnwind keep_host_small_alive(s);

  if constexpr (kFloat) {
    init_stats_kernel<<<ceil_div(n_img, kThreads), kThreads, 0, s>>>(stats, n_img);
    RAMH_CUDA_CHECK_LAUNCH();
    float_stats_kernel<<<dim3(blocks_x, grid_dim(n_img)), kThreads, 0, s>>>(img, npx, n_img, stats);
    RAMH_CUDA_CHECK_LAUNCH();
  }

  if (window) {
    const float* wv = window->ptr<float>();
    float* hw = static_cast<float*>(host_small.data());
    for (int i = 0; i < n_img; ++i) {
      const float* row = window->ndim() == 1 ? wv : wv + 2 * i;
      hw[2 * i] = row[0];
      hw[2 * i + 1] = row[1];
    }
    copy_async(windows, hw, win_bytes, s);
  } else {
    const int64_t k_lo = percentile_rank(p.percentile_lo, npx), k_hi = percentile_rank(p.percentile_hi, npx);
    if constexpr (std::is_same_v<T, uint8_t>) {
      DeviceBuffer hist(sizeof(unsigned int) * 256 * n_img, dev, s);
      auto* hh = static_cast<unsigned int*>(hist.data());
      memset_async(hh, 0, hist.size(), s);
      launch_histogram<HistMode::U8>(img, npx, n_img, blocks_x, nullptr, nullptr, hh, s);
      launch_rank<HistMode::U8>(hh, n_img, k_lo, k_hi, nullptr, nullptr, windows, s);
    } else if constexpr (std::is_same_v<T, uint16_t>) {
      DeviceBuffer hist(sizeof(unsigned int) * (256 + 512) * n_img + sizeof(CoarseRank) * n_img, dev, s);
      auto* coarse_h = static_cast<unsigned int*>(hist.data());
      auto* fine_h = coarse_h + 256 * n_img;
      auto* coarse = reinterpret_cast<CoarseRank*>(fine_h + 512 * n_img);
      memset_async(coarse_h, 0, sizeof(unsigned int) * (256 + 512) * n_img, s);
      launch_histogram<HistMode::U16Coarse>(img, npx, n_img, blocks_x, nullptr, nullptr, coarse_h, s);
      launch_rank<HistMode::U16Coarse>(coarse_h, n_img, k_lo, k_hi, nullptr, coarse, nullptr, s);
      launch_histogram<HistMode::U16Fine>(img, npx, n_img, blocks_x, nullptr, coarse, fine_h, s);
      launch_rank<HistMode::U16Fine>(fine_h, n_img, k_lo, k_hi, nullptr, coarse, windows, s);
    } else {
      DeviceBuffer hist(sizeof(unsigned int) * detail::kFloatHistBins * n_img, dev, s);
      auto* hh = static_cast<unsigned int*>(hist.data());
      memset_async(hh, 0, hist.size(), s);
      launch_histogram<HistMode::F32>(img, npx, n_img, blocks_x, stats, nullptr, hh, s);
      launch_rank<HistMode::F32>(hh, n_img, k_lo, k_hi, stats, nullptr, windows, s);
    }
  }

  // Resampling tables, computed on the device by the CPU's own function.
  const LetterboxGeometry g = letterbox_geometry(h, w, p.out_h, p.out_w);
  const ResampleAxis ax = detail::make_axis(g.in_w, g.new_w, p.antialias);
  const ResampleAxis ay = detail::make_axis(g.in_h, g.new_h, p.antialias);
  const std::size_t fy_bytes = sizeof(int) * g.new_h, fx_bytes = sizeof(int) * g.new_w;
  const std::size_t wy_bytes = sizeof(float) * g.new_h * ay.taps, wx_bytes = sizeof(float) * g.new_w * ax.taps;
  DeviceBuffer tables(fy_bytes + fx_bytes + wy_bytes + wx_bytes, dev, s);
  int* fy = static_cast<int*>(tables.data());
  int* fx = fy + g.new_h;
  float* wy = reinterpret_cast<float*>(fx + g.new_w);
  float* wx = wy + g.new_h * ay.taps;
  weights_kernel<<<ceil_div(g.new_h + g.new_w, kThreads), kThreads, 0, s>>>(ay, ax, fy, wy, fx, wx);
  RAMH_CUDA_CHECK_LAUNCH();

  DeviceBuffer tmp(sizeof(float) * n_img * g.new_h * w, dev, s);
  auto* tp = static_cast<float*>(tmp.data());
  vertical_kernel<T><<<dim3(ceil_div(w, kThreads), grid_dim(g.new_h), grid_dim(n_img)), kThreads, 0, s>>>(
      img, h, w, n_img, g.new_h, ay.taps, fy, wy, windows, tp);
  RAMH_CUDA_CHECK_LAUNCH();

  const float pad = p.pad_value ? *p.pad_value : detail::normalise(0.0f, p.mean, p.std);
  const dim3 hgrid(ceil_div(g.out_w, kThreads), grid_dim(g.out_h), grid_dim(n_img));
  if (out.dtype == DType::F32) {
    horizontal_kernel<float><<<hgrid, kThreads, 0, s>>>(tp, w, n_img, g.new_h, g.new_w, g.out_h, g.out_w, g.pad_y,
                                                        g.pad_x, ax.taps, fx, wx, p.mean, p.std, pad,
                                                        out.ptr<float>());
  } else {
    horizontal_kernel<uint16_t><<<hgrid, kThreads, 0, s>>>(tp, w, n_img, g.new_h, g.new_w, g.out_h, g.out_w,
                                                           g.pad_y, g.pad_x, ax.taps, fx, wx, p.mean, p.std, pad,
                                                           out.ptr<uint16_t>());
  }
  RAMH_CUDA_CHECK_LAUNCH();

  // Only what was written comes back (the statistics exist for float images only; initcheck-clean).
  copy_async(host_small.data(), small.data(), kFloat ? small_bytes : win_bytes, s);
  RAMH_CUDA_CHECK(cudaStreamSynchronize(s));

  const float* hw = static_cast<const float*>(host_small.data());
  std::memcpy(window_out, hw, win_bytes);
  if constexpr (kFloat) {
    FloatStats hs[1];
    unsigned long long bad = 0;
    const char* base = static_cast<const char*>(host_small.data()) + stats_off;
    for (int i = 0; i < n_img; ++i) {
      std::memcpy(hs, base + sizeof(FloatStats) * i, sizeof(FloatStats));
      bad += hs[0].nonfinite;
    }
    if (bad > 0)
      fail("image contains ", bad, " non-finite value", bad == 1 ? "" : "s", " (NaN or inf) out of ",
           static_cast<int64_t>(n_img) * npx, "; replace them (e.g. numpy.nan_to_num) before preprocessing");
    for (int i = 0; i < n_img; ++i) {
      std::memcpy(hs, base + sizeof(FloatStats) * i, sizeof(FloatStats));
      // Same decoding as key_float, on the host.
      auto decode = [](unsigned int k) {
        const unsigned int u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
        float f;
        std::memcpy(&f, &u, sizeof f);
        return f;
      };
      const float mn = decode(hs[0].min_key), mx = decode(hs[0].max_key);
      if (!std::isfinite(mx - mn)) {
        if (n_img > 1)
          fail("image[", i, "] has a value range max - min that overflows float32 (min ", mn, ", max ", mx, ")");
        fail("image has a value range max - min that overflows float32 (min ", mn, ", max ", mx, ")");
      }
    }
  }
}

}  // namespace

void preprocess(const Tensor& image, const Tensor* window, const PreprocessParams& params, Tensor& out,
                float* window_out, void* stream) {
  DeviceGuard guard(image.device_id);
  auto s = static_cast<cudaStream_t>(stream);
  switch (image.dtype) {
    case DType::U8: run<uint8_t>(image, window, params, out, window_out, s); break;
    case DType::U16: run<uint16_t>(image, window, params, out, window_out, s); break;
    case DType::F32: run<float>(image, window, params, out, window_out, s); break;
    default: fail("image must be uint8, uint16 or float32, got ", dtype_name(image.dtype));
  }
}

}  // namespace ramh::cuda
