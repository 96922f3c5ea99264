// CUDA implementation of the postprocess family (ramh/postprocess.hpp); the CPU twin is cpp/src/postprocess_cpu.cpp.
//
// Every phase is one launch over all (image, channel) planes; nothing loops over channels on the host:
//   [multiclass] argmax_kernel: argmax channel, max logit and softmax denominator per pixel (+ NaN check)
//   ccl::label<8>: foreground components (tiles, edge merge, roots; see ccl.cuh) (+ NaN check in multilabel)
//   largest_kernel: per plane the largest root, ties to the lowest first pixel (64-bit atomicMax on a packed key)
//   select_kernel: kept roots -> a bit at their first pixel in a per-row bitmask, and a per-row count
//   scan_rows_kernel / scan_planes_kernel: prefix sums -> every kept root's rank in raster order of first pixels
//   assign_kernel: instance id = plane offset + rank (so the table comes out sorted), initialised accumulators
//   [fill_holes] ccl::label<4> of the complement of the kept set; hole_owner_kernel: holes (components not
//       touching the border) go to the instance holding the pixel left of their first pixel
//   finalize_kernel: per pixel its instance (kept component or hole owner) -> mask byte, and integer moment sums
//       plus the fixed-point score, accumulated per thread over 4 rows, merged per warp, then global atomics
// Only the header and the instance table come back to the host (pinned buffer); the float statistics are derived
// on the host by finalize_instance, the same code as for the CPU.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cub/block/block_scan.cuh>

#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <vector>

#include "ccl.cuh"
#include "ramh/cuda_check.cuh"
#include "ramh/detail/postprocess_impl.hpp"
#include "ramh/device.hpp"
#include "ramh/postprocess.hpp"

namespace ramh::cuda {
namespace {

using ccl::Geometry;
using ccl::kNoSlot;
using ccl::kTile;
using ccl::Nodes;
using detail::PostprocessPlan;
using detail::RawInstance;

constexpr int kFgSlots = ccl::SlotsPerTile<8>::value;
constexpr int kBgSlots = ccl::SlotsPerTile<4>::value;
constexpr int kNotKept = -1;
constexpr int kPending = -2;

struct Header {
  int count;      // instances
  int nan_plane;  // lowest plane holding a NaN logit, INT_MAX if none
};

__device__ __forceinline__ float load_logit(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float load_logit(const __half* p, long long i) { return __half2float(p[i]); }

// ---- foreground predicates -------------------------------------------------------------------------------------
template <class T>
struct MultilabelPred {
  const T* logits;
  const float* thresholds;  // C
  int channels;
  Geometry g;
  int* nan_plane;
  __device__ bool operator()(int plane, int y, int x) const {
    const float v = load_logit(logits, g.pixel(plane, y, x));
    if (isnan(v)) atomicMin(nan_plane, plane);
    return v > thresholds[plane % channels];
  }
};

struct MulticlassPred {
  const uint16_t* argmax;  // N x H x W
  int channels;
  Geometry g;
  __device__ bool operator()(int plane, int y, int x) const {
    const int n = plane / channels, c = plane % channels;
    return argmax[static_cast<long long>(n) * g.plane_pixels() + static_cast<long long>(y) * g.width + x] == c;
  }
};

// The instance of a pixel through the foreground labelling, or -1.
__device__ __forceinline__ int kept_instance(const Geometry& g, const Nodes& fg, const int* inst_of_node, int plane,
                                             int y, int x) {
  const uint16_t s = fg.slot[g.pixel(plane, y, x)];
  if (s == kNoSlot) return kNotKept;
  return inst_of_node[fg.parent[g.tile_of(plane, y, x) * kFgSlots + s]];
}

// Background of the kept set S, labelled 4-connected for hole filling.
struct OutsideKeptPred {
  Geometry g;
  Nodes fg;
  const int* inst_of_node;
  __device__ bool operator()(int plane, int y, int x) const {
    return kept_instance(g, fg, inst_of_node, plane, y, x) < 0;
  }
};

// ---- multiclass pre-pass -----------------------------------------------------------------------------------------
template <class T>
__global__ void argmax_kernel(const T* logits, int n_img, int channels, long long hw, uint16_t* argmax,
                              float* max_logit, float* denom, int* nan_plane) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_img * hw) return;
  const long long n = i / hw, p = i % hw;
  const T* px = logits + n * channels * hw + p;
  float best = load_logit(px, 0);
  int arg = 0, nan_channel = isnan(best) ? 0 : -1;
  for (int c = 1; c < channels; ++c) {
    const float v = load_logit(px, c * hw);
    if (v > best) {  // strict: ties keep the lowest channel, as on the CPU
      best = v;
      arg = c;
    }
    if (nan_channel < 0 && isnan(v)) nan_channel = c;
  }
  if (nan_channel >= 0) atomicMin(nan_plane, static_cast<int>(n * channels + nan_channel));
  float sum = 0.0f;
  for (int c = 0; c < channels; ++c) sum += detail::softmax_term(load_logit(px, c * hw), best);
  argmax[i] = static_cast<uint16_t>(arg);
  max_logit[i] = best;
  denom[i] = sum;
}

// ---- selection -----------------------------------------------------------------------------------------------------
__device__ __forceinline__ unsigned long long largest_key(int area, int first) {
  // More pixels first, then the lower first pixel: max of (area, ~first).
  return (static_cast<unsigned long long>(static_cast<unsigned>(area)) << 32) |
         static_cast<unsigned long long>(0xFFFFFFFFu - static_cast<unsigned>(first));
}

__global__ void largest_kernel(Geometry g, Nodes fg, const uint8_t* keep_all, int channels,
                               unsigned long long* best) {
  ccl::for_each_node<8>(g, fg, [&](int plane, int node) {
    if (keep_all[plane % channels] || fg.parent[node] != node) return;
    atomicMax(best + plane, largest_key(fg.area[node], fg.first[node]));
  });
}

__global__ void select_kernel(Geometry g, Nodes fg, const uint8_t* keep_all, int channels, long long min_area,
                              const unsigned long long* best, int* inst_of_node, int* row_count, unsigned* row_bits,
                              int words_per_row) {
  ccl::for_each_node<8>(g, fg, [&](int plane, int node) {
    if (fg.parent[node] != node) return;
    const int area = fg.area[node], first = fg.first[node];
    const bool kept = static_cast<long long>(area) >= min_area &&
                      (keep_all[plane % channels] || largest_key(area, first) == best[plane]);
    inst_of_node[node] = kept ? kPending : kNotKept;
    if (!kept) return;
    const int y = first / g.width, x = first % g.width;
    const long long row = static_cast<long long>(plane) * g.height + y;
    atomicAdd(row_count + row, 1);
    atomicOr(row_bits + row * words_per_row + x / 32, 1u << (x % 32));
  });
}

// Exclusive prefix sum of the per-row counts of one plane (one block per plane), in place; the plane's total goes
// to plane_total. Each thread sums a contiguous chunk, a block scan (CUB) gives each chunk its offset.
constexpr int kScanThreads = 256;
using ChunkScan = cub::BlockScan<int, kScanThreads>;

__global__ void __launch_bounds__(kScanThreads) scan_rows_kernel(int height, int* row_count, int* plane_total) {
  __shared__ typename ChunkScan::TempStorage scan_tmp;
  int* rc = row_count + static_cast<long long>(blockIdx.x) * height;
  const int chunk = (height + kScanThreads - 1) / kScanThreads;
  const int begin = min(height, static_cast<int>(threadIdx.x) * chunk), end = min(height, begin + chunk);
  int sum = 0;
  for (int r = begin; r < end; ++r) sum += rc[r];
  int run = 0, total = 0;
  ChunkScan(scan_tmp).ExclusiveSum(sum, run, total);
  if (threadIdx.x == 0) plane_total[blockIdx.x] = total;
  for (int r = begin; r < end; ++r) {
    const int v = rc[r];
    rc[r] = run;
    run += v;
  }
}

// Exclusive prefix sum over the planes' totals (one block); the grand total is the instance count.
__global__ void __launch_bounds__(kScanThreads) scan_planes_kernel(int planes, const int* plane_total,
                                                                   int* plane_offset, Header* header) {
  __shared__ typename ChunkScan::TempStorage scan_tmp;
  const int chunk = (planes + kScanThreads - 1) / kScanThreads;
  const int begin = min(planes, static_cast<int>(threadIdx.x) * chunk), end = min(planes, begin + chunk);
  int sum = 0;
  for (int p = begin; p < end; ++p) sum += plane_total[p];
  int run = 0, total = 0;
  ChunkScan(scan_tmp).ExclusiveSum(sum, run, total);
  if (threadIdx.x == 0) header->count = total;
  for (int p = begin; p < end; ++p) {
    plane_offset[p] = run;
    run += plane_total[p];
  }
}

// Rank of a kept root among its plane's kept roots in raster order of first pixels = kept roots in earlier rows
// (row prefix) + kept roots earlier in the same row (bits below its own).
__global__ void assign_kernel(Geometry g, Nodes fg, int channels, const int* row_prefix, const unsigned* row_bits,
                              int words_per_row, const int* plane_offset, int* inst_of_node, RawInstance* raw) {
  ccl::for_each_node<8>(g, fg, [&](int plane, int node) {
    if (fg.parent[node] != node || inst_of_node[node] != kPending) return;
    const int first = fg.first[node];
    const int y = first / g.width, x = first % g.width;
    const long long row = static_cast<long long>(plane) * g.height + y;
    const unsigned* bits = row_bits + row * words_per_row;
    int rank = row_prefix[row];
    for (int w = 0; w < x / 32; ++w) rank += __popc(bits[w]);
    rank += __popc(bits[x / 32] & ((1u << (x % 32)) - 1u));
    const int id = plane_offset[plane] + rank;
    inst_of_node[node] = id;
    RawInstance r;
    r.batch = plane / channels;
    r.channel = plane % channels;
    r.index = rank;
    r.first = first;
    r.x0 = r.y0 = INT_MAX;
    r.x1 = r.y1 = -1;
    r.area = r.sx = r.sy = r.sxx = r.syy = r.sxy = r.score_q = 0;
    raw[id] = r;
  });
}

// A hole's first pixel never lies on the border, and the pixel left of it is in the kept set (otherwise it would
// belong to the hole and come first); the kept component there encloses the hole.
__global__ void hole_owner_kernel(Geometry g, Nodes fg, Nodes bg, const int* inst_of_node, int* hole_owner) {
  ccl::for_each_node<4>(g, bg, [&](int plane, int node) {
    if (bg.parent[node] != node) return;
    if (bg.flags[node] & ccl::kBorderFlag) {
      hole_owner[node] = kNotKept;
      return;
    }
    const int left = bg.first[node] - 1;
    hole_owner[node] = kept_instance(g, fg, inst_of_node, plane, left / g.width, left % g.width);
  });
}

// ---- masks and statistics --------------------------------------------------------------------------------------
struct Acc {
  int inst;
  unsigned long long n, sx, sy, sxx, syy, sxy, q;
  int x0, y0, x1, y1;
  __device__ void start(int i) {
    inst = i;
    n = sx = sy = sxx = syy = sxy = q = 0;
    x0 = y0 = INT_MAX;
    x1 = y1 = -1;
  }
  __device__ void add(int x, int y, unsigned long long score) {
    const auto ux = static_cast<unsigned long long>(x), uy = static_cast<unsigned long long>(y);
    n += 1;
    sx += ux;
    sy += uy;
    sxx += ux * ux;
    syy += uy * uy;
    sxy += ux * uy;
    q += score;
    x0 = min(x0, x);
    y0 = min(y0, y);
    x1 = max(x1, x);
    y1 = max(y1, y);
  }
  __device__ void merge(const Acc& o) {
    n += o.n;
    sx += o.sx;
    sy += o.sy;
    sxx += o.sxx;
    syy += o.syy;
    sxy += o.sxy;
    q += o.q;
    x0 = min(x0, o.x0);
    y0 = min(y0, o.y0);
    x1 = max(x1, o.x1);
    y1 = max(y1, o.y1);
  }
  __device__ void flush(RawInstance* raw) const {
    RawInstance& r = raw[inst];
    atomicAdd(&r.area, n);
    atomicAdd(&r.sx, sx);
    atomicAdd(&r.sy, sy);
    atomicAdd(&r.sxx, sxx);
    atomicAdd(&r.syy, syy);
    atomicAdd(&r.sxy, sxy);
    atomicAdd(&r.score_q, q);
    atomicMin(&r.x0, x0);
    atomicMin(&r.y0, y0);
    atomicMax(&r.x1, x1);
    atomicMax(&r.y1, y1);
  }
};

constexpr int kFinalRowsPerThread = kTile / ccl::kBlockRows;  // consecutive rows per thread

template <class T, bool Multiclass, bool Fill>
__global__ void __launch_bounds__(kTile* ccl::kBlockRows)
    finalize_kernel(Geometry g, Nodes fg, Nodes bg, const int* inst_of_node, const int* hole_owner,
                    const T* logits, const float* max_logit, const float* denom, int channels, uint8_t* masks,
                    RawInstance* raw) {
  __shared__ Acc warp_acc[ccl::kBlockRows][kTile];
  const long long tile = blockIdx.x;
  const int tpp = g.tiles_per_plane();
  const int plane = static_cast<int>(tile / tpp);
  const int t = static_cast<int>(tile % tpp);
  const int ty = t / g.tiles_x, tx = t % g.tiles_x;
  const int lx = threadIdx.x, x = tx * kTile + lx;
  const long long img_base = static_cast<long long>(plane / channels) * g.plane_pixels();

  Acc acc;
  acc.start(kNotKept);
  for (int k = 0; k < kFinalRowsPerThread; ++k) {
    const int y = ty * kTile + threadIdx.y * kFinalRowsPerThread + k;
    int inst = kNotKept;
    if (x < g.width && y < g.height) {
      const long long px = g.pixel(plane, y, x);
      const uint16_t s = fg.slot[px];
      if (s != kNoSlot) inst = inst_of_node[fg.parent[tile * kFgSlots + s]];
      if (Fill && inst < 0) {
        const uint16_t b = bg.slot[px];
        if (b != kNoSlot) inst = hole_owner[bg.parent[tile * kBgSlots + b]];
      }
      masks[px] = inst >= 0 ? 1 : 0;
      if (inst >= 0) {
        if (inst != acc.inst) {  // a different instance in this thread's column: flush the previous one
          if (acc.inst >= 0) acc.flush(raw);
          acc.start(inst);
        }
        float p;
        if (Multiclass) {
          const long long ip = img_base + static_cast<long long>(y) * g.width + x;
          p = detail::softmax_term(load_logit(logits, px), max_logit[ip]) / denom[ip];
        } else {
          p = detail::sigmoid_score(load_logit(logits, px));
        }
        acc.add(x, y, detail::score_fixed(p));
      }
    }
  }
  // Lanes of a warp (one tile row band) holding the same instance merge into their lowest lane, which flushes.
  warp_acc[threadIdx.y][lx] = acc;
  __syncwarp();
  const unsigned group = __match_any_sync(0xffffffffu, acc.inst);
  if (acc.inst >= 0 && lx == __ffs(group) - 1) {
    Acc sum = acc;
    for (unsigned rest = group & (group - 1); rest; rest &= rest - 1) sum.merge(warp_acc[threadIdx.y][__ffs(rest) - 1]);
    sum.flush(raw);
  }
}

// ---- host ------------------------------------------------------------------------------------------------------------
template <class T>
std::vector<InstanceRecord> run(const PostprocessPlan& p, const T* logits, uint8_t* masks, int device,
                                cudaStream_t stream) {
  DeviceGuard scoped(device);
  const Geometry g = ccl::make_geometry(p.planes(), p.h, p.w);
  ccl::check_node_space(g, p.fill_holes ? kBgSlots : kFgSlots, "logits");
  void* s = stream;
  const int C = static_cast<int>(p.c);
  const int planes = g.planes;
  const int words_per_row = static_cast<int>((g.width + 31LL) / 32);  // (width + 31 overflows int near 2^31)
  const long long rows = static_cast<long long>(planes) * g.height;
  const unsigned tiles = static_cast<unsigned>(g.total_tiles());

  // Capacity of the instance table: 1 per "largest" plane, at most one per 2 x 2 cell (8-connected components
  // cannot be denser) and per min_area pixels for an "all" plane.
  long long per_all = ((g.height + 1LL) / 2) * ((g.width + 1LL) / 2);
  per_all = std::min<long long>(per_all, g.plane_pixels() / p.min_area);
  long long capacity = 0;
  for (int c = 0; c < C; ++c) capacity += p.keep_all[c] ? per_all : 1;
  capacity = std::max<long long>(capacity * p.n, 1);

  // Parameters in, one copy: header | thresholds | keep flags.
  const std::size_t thr_off = sizeof(Header), keep_off = thr_off + sizeof(float) * C;
  const std::size_t param_bytes = keep_off + C;
  PinnedBuffer params_host(param_bytes);
  {
    auto* base = static_cast<char*>(params_host.data());
    const Header h0{0, INT_MAX};
    std::memcpy(base, &h0, sizeof h0);
    if (!p.thresholds.empty()) std::memcpy(base + thr_off, p.thresholds.data(), sizeof(float) * C);
    std::memcpy(base + keep_off, p.keep_all.data(), C);
  }
  DeviceBuffer params_dev(param_bytes, device, s);
  copy_async(params_dev.data(), params_host.data(), param_bytes, s);
  const SyncOnUnwind keep_staging_alive(stream);  // an error below must not recycle params_host mid-copy
  auto* header = static_cast<Header*>(params_dev.data());
  const auto* thresholds = reinterpret_cast<const float*>(static_cast<char*>(params_dev.data()) + thr_off);
  const auto* keep_all = reinterpret_cast<const uint8_t*>(static_cast<char*>(params_dev.data()) + keep_off);

  // Foreground labelling.
  ccl::NodeStorage fg_store(g, kFgSlots, device, s);
  const Nodes fg = fg_store.view();
  const long long img_pixels = p.n * g.plane_pixels();
  DeviceBuffer argmax(p.mode == MaskMode::Multiclass ? img_pixels * sizeof(uint16_t) : 0, device, s);
  DeviceBuffer max_logit(p.mode == MaskMode::Multiclass ? img_pixels * sizeof(float) : 0, device, s);
  DeviceBuffer denom(p.mode == MaskMode::Multiclass ? img_pixels * sizeof(float) : 0, device, s);
  if (p.mode == MaskMode::Multiclass) {
    argmax_kernel<T><<<ceil_div(img_pixels, 256), 256, 0, stream>>>(
        logits, static_cast<int>(p.n), C, g.plane_pixels(), static_cast<uint16_t*>(argmax.data()),
        static_cast<float*>(max_logit.data()), static_cast<float*>(denom.data()), &header->nan_plane);
    RAMH_CUDA_CHECK_LAUNCH();
    ccl::label<8>(g, MulticlassPred{static_cast<const uint16_t*>(argmax.data()), C, g}, fg, stream);
  } else {
    ccl::label<8>(g, MultilabelPred<T>{logits, thresholds, C, g, &header->nan_plane}, fg, stream);
  }

  // Selection and raster-order numbering.
  DeviceBuffer inst_of_node(static_cast<std::size_t>(g.total_tiles()) * kFgSlots * sizeof(int), device, s);
  DeviceBuffer best(static_cast<std::size_t>(planes) * sizeof(unsigned long long), device, s);
  DeviceBuffer row_count(static_cast<std::size_t>(rows) * sizeof(int), device, s);
  DeviceBuffer row_bits(static_cast<std::size_t>(rows) * words_per_row * sizeof(unsigned), device, s);
  DeviceBuffer plane_total(static_cast<std::size_t>(planes) * sizeof(int), device, s);
  DeviceBuffer plane_offset(static_cast<std::size_t>(planes) * sizeof(int), device, s);
  DeviceBuffer raw(static_cast<std::size_t>(capacity) * sizeof(RawInstance), device, s);
  memset_async(best.data(), 0, best.size(), s);
  memset_async(row_count.data(), 0, row_count.size(), s);
  memset_async(row_bits.data(), 0, row_bits.size(), s);
  auto* inst = static_cast<int*>(inst_of_node.data());
  const long long min_area = p.min_area;  // not clamped to int: a component of INT_MAX pixels must still compare

  largest_kernel<<<tiles, 64, 0, stream>>>(g, fg, keep_all, C, static_cast<unsigned long long*>(best.data()));
  RAMH_CUDA_CHECK_LAUNCH();
  select_kernel<<<tiles, 64, 0, stream>>>(g, fg, keep_all, C, min_area,
                                          static_cast<const unsigned long long*>(best.data()), inst,
                                          static_cast<int*>(row_count.data()),
                                          static_cast<unsigned*>(row_bits.data()), words_per_row);
  RAMH_CUDA_CHECK_LAUNCH();
  scan_rows_kernel<<<planes, kScanThreads, 0, stream>>>(g.height, static_cast<int*>(row_count.data()),
                                                        static_cast<int*>(plane_total.data()));
  RAMH_CUDA_CHECK_LAUNCH();
  scan_planes_kernel<<<1, kScanThreads, 0, stream>>>(planes, static_cast<const int*>(plane_total.data()),
                                                     static_cast<int*>(plane_offset.data()), header);
  RAMH_CUDA_CHECK_LAUNCH();
  auto* raw_dev = static_cast<RawInstance*>(raw.data());
  assign_kernel<<<tiles, 64, 0, stream>>>(g, fg, C, static_cast<const int*>(row_count.data()),
                                          static_cast<const unsigned*>(row_bits.data()), words_per_row,
                                          static_cast<const int*>(plane_offset.data()), inst, raw_dev);
  RAMH_CUDA_CHECK_LAUNCH();

  // Holes.
  std::unique_ptr<ccl::NodeStorage> bg_store;
  Nodes bg{};
  DeviceBuffer hole_owner(p.fill_holes ? static_cast<std::size_t>(g.total_tiles()) * kBgSlots * sizeof(int) : 0,
                          device, s);
  if (p.fill_holes) {
    bg_store = std::make_unique<ccl::NodeStorage>(g, kBgSlots, device, s);
    bg = bg_store->view();
    ccl::label<4>(g, OutsideKeptPred{g, fg, inst}, bg, stream);
    hole_owner_kernel<<<tiles, 64, 0, stream>>>(g, fg, bg, inst, static_cast<int*>(hole_owner.data()));
    RAMH_CUDA_CHECK_LAUNCH();
  }

  // Masks and statistics.
  const dim3 block(kTile, ccl::kBlockRows);
  const auto* mx = static_cast<const float*>(max_logit.data());
  const auto* dn = static_cast<const float*>(denom.data());
  const auto* owner = static_cast<const int*>(hole_owner.data());
#define RAMH_FINALIZE(MC, FILL)                                                                                  \
  finalize_kernel<T, MC, FILL><<<tiles, block, 0, stream>>>(g, fg, bg, inst, owner, logits, mx, dn, C, masks, \
                                                            raw_dev)
  const bool mc = p.mode == MaskMode::Multiclass;
  if (mc && p.fill_holes)
    RAMH_FINALIZE(true, true);
  else if (mc)
    RAMH_FINALIZE(true, false);
  else if (p.fill_holes)
    RAMH_FINALIZE(false, true);
  else
    RAMH_FINALIZE(false, false);
#undef RAMH_FINALIZE
  RAMH_CUDA_CHECK_LAUNCH();

  // Read back: the header, then only as many records as there are instances.
  PinnedBuffer header_host(sizeof(Header));
  copy_async(header_host.data(), header, sizeof(Header), s);
  stream_synchronize(s);
  Header h;
  std::memcpy(&h, header_host.data(), sizeof h);
  if (h.nan_plane != INT_MAX) detail::throw_nan_logits(p, h.nan_plane);
  std::vector<InstanceRecord> table;
  if (h.count <= 0) return table;
  if (h.count > capacity) fail<DeviceError>("postprocess_masks: instance count ", h.count, " exceeds capacity ", capacity);
  PinnedBuffer raw_host(static_cast<std::size_t>(h.count) * sizeof(RawInstance));
  copy_async(raw_host.data(), raw_dev, static_cast<std::size_t>(h.count) * sizeof(RawInstance), s);
  stream_synchronize(s);
  const auto* r = static_cast<const RawInstance*>(raw_host.data());
  table.reserve(static_cast<std::size_t>(h.count));
  for (int i = 0; i < h.count; ++i) table.push_back(detail::finalize_instance(r[i]));
  return table;
}

}  // namespace

std::vector<InstanceRecord> postprocess_masks(const Tensor& logits, const Tensor& masks,
                                              const PostprocessParams& params, void* stream) {
  const PostprocessPlan p = detail::plan_postprocess(logits, masks, params);
  if (!logits.on_cuda()) fail("cuda::postprocess_masks needs CUDA tensors, got logits on the host");
  if (p.planes() * p.plane_size() >= (int64_t{1} << 31))
    fail("logits has ", p.planes() * p.plane_size(), " values; the CUDA path takes fewer than 2^31: split the batch");
  auto* out = masks.ptr<uint8_t>();
  auto s = static_cast<cudaStream_t>(stream);
  if (p.half) return run<__half>(p, logits.ptr<const __half>(), out, logits.device_id, s);
  return run<float>(p, logits.ptr<const float>(), out, logits.device_id, s);
}

}  // namespace ramh::cuda
