// CUDA implementation of the quantify family (ramh/quantify.hpp); the CPU twin is cpp/src/quantify_cpu.cpp.
//
// All ROIs in one launch per phase: the erosion masks are labelled 8-connected with the CCL shared with postprocess
// (ccl.cuh), lesion_kernel counts the components large enough and keeps the largest per ROI, and count_kernel sums
// per ROI the erosion pixels, bone ∪ erosion pixels and the fixed-point probabilities (warp shuffles, then one
// atomic per warp and field). Only N small records come back (pinned), converted by finalize_erosion as on the CPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

#include "ccl.cuh"
#include "ramh/cuda_check.cuh"
#include "ramh/detail/postprocess_impl.hpp"  // score_fixed: the same 32.32 fixed point
#include "ramh/detail/quantify_impl.hpp"
#include "ramh/device.hpp"
#include "ramh/quantify.hpp"

namespace ramh::cuda {
namespace {

using ccl::Geometry;
using ccl::kNoSlot;
using ccl::kTile;
using ccl::Nodes;
using detail::QuantifyPlan;
using detail::RawErosion;

struct ProbabilityPred {
  const float* erosion;
  float threshold;
  Geometry g;
  int* bad_roi;  // lowest ROI with a value outside [0, 1] or NaN
  __device__ bool operator()(int roi, int y, int x) const {
    const float v = erosion[g.pixel(roi, y, x)];
    if (!(v >= 0.0f && v <= 1.0f)) atomicMin(bad_roi, roi);
    return v >= threshold;
  }
};

struct MaskPred {
  const uint8_t* erosion;
  Geometry g;
  __device__ bool operator()(int roi, int y, int x) const { return erosion[g.pixel(roi, y, x)] != 0; }
};

__global__ void lesion_kernel(Geometry g, Nodes nodes, int min_lesion_px, RawErosion* raw) {
  ccl::for_each_node<8>(g, nodes, [&](int roi, int node) {
    if (nodes.parent[node] != node) return;
    const int area = nodes.area[node];
    if (area < min_lesion_px) return;
    atomicAdd(&raw[roi].lesions, 1);
    atomicMax(&raw[roi].largest, area);
  });
}

__device__ __forceinline__ unsigned long long warp_sum(unsigned long long v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

// One block of 32 x 8 threads per tile, each thread 4 rows: erosion pixels are the labelled ones (slot set).
__global__ void __launch_bounds__(kTile* ccl::kBlockRows)
    count_kernel(Geometry g, Nodes nodes, const float* probabilities, const uint8_t* bones, int bone_channels,
                 RawErosion* raw) {
  const long long tile = blockIdx.x;
  const int tpp = g.tiles_per_plane();
  const int roi = static_cast<int>(tile / tpp);
  const int t = static_cast<int>(tile % tpp);
  const int ty = t / g.tiles_x, tx = t % g.tiles_x;
  const int x = tx * kTile + threadIdx.x;
  unsigned long long eroded = 0, bone = 0, prob = 0;
  for (int k = 0; k < ccl::kRowsPerThread; ++k) {
    const int y = ty * kTile + threadIdx.y + k * ccl::kBlockRows;
    if (x >= g.width || y >= g.height) continue;
    const long long px = g.pixel(roi, y, x);
    const bool e = nodes.slot[px] != kNoSlot;
    bool b = e;
    const long long in_plane = static_cast<long long>(y) * g.width + x;
    for (int c = 0; c < bone_channels && !b; ++c)
      b = bones[(static_cast<long long>(roi) * bone_channels + c) * g.plane_pixels() + in_plane] != 0;
    eroded += e;
    bone += b;
    if (e && probabilities) prob += detail::score_fixed(probabilities[px]);
  }
  eroded = warp_sum(eroded);
  bone = warp_sum(bone);
  prob = warp_sum(prob);
  if (threadIdx.x == 0) {
    if (eroded) atomicAdd(&raw[roi].eroded, eroded);
    if (bone) atomicAdd(&raw[roi].bone, bone);
    if (prob) atomicAdd(&raw[roi].prob_q, prob);
  }
}

struct Header {
  int bad_roi;
};

std::vector<ErosionRecord> run(const QuantifyPlan& p, const Tensor& erosion, const Tensor& bone_masks,
                               cudaStream_t stream) {
  const int device = erosion.device_id;
  DeviceGuard scoped(device);
  const Geometry g = ccl::make_geometry(p.n, p.h, p.w);
  ccl::check_node_space(g, ccl::SlotsPerTile<8>::value, "erosion");
  void* s = stream;
  const unsigned tiles = static_cast<unsigned>(g.total_tiles());

  // Header and per-ROI counts in one device block, cleared with one memset; read back with one copy.
  const std::size_t raw_off = sizeof(RawErosion);  // keeps RawErosion 8-byte aligned after the header
  static_assert(sizeof(Header) <= sizeof(RawErosion), "header slot");
  const std::size_t bytes = raw_off + sizeof(RawErosion) * static_cast<std::size_t>(p.n);
  DeviceBuffer out_dev(bytes, device, s);
  memset_async(out_dev.data(), 0, bytes, s);
  auto* header = static_cast<Header*>(out_dev.data());
  auto* raw = reinterpret_cast<RawErosion*>(static_cast<char*>(out_dev.data()) + raw_off);
  const int no_bad = INT_MAX;
  PinnedBuffer init_host(sizeof(int));
  std::memcpy(init_host.data(), &no_bad, sizeof no_bad);
  copy_async(&header->bad_roi, init_host.data(), sizeof(int), s);
  const SyncOnUnwind keep_staging_alive(stream);

  ccl::NodeStorage store(g, ccl::SlotsPerTile<8>::value, device, s);
  const Nodes nodes = store.view();
  const float* probs = p.probabilities ? erosion.ptr<const float>() : nullptr;
  if (p.probabilities)
    ccl::label<8>(g, ProbabilityPred{probs, p.threshold, g, &header->bad_roi}, nodes, stream);
  else
    ccl::label<8>(g, MaskPred{erosion.ptr<const uint8_t>(), g}, nodes, stream);

  const int min_lesion = static_cast<int>(std::min<int64_t>(p.min_lesion_px, INT_MAX));
  lesion_kernel<<<tiles, 64, 0, stream>>>(g, nodes, min_lesion, raw);
  RAMH_CUDA_CHECK_LAUNCH();
  count_kernel<<<tiles, dim3(kTile, ccl::kBlockRows), 0, stream>>>(g, nodes, probs, bone_masks.ptr<const uint8_t>(),
                                                                   static_cast<int>(p.k), raw);
  RAMH_CUDA_CHECK_LAUNCH();

  PinnedBuffer out_host(bytes);
  copy_async(out_host.data(), out_dev.data(), bytes, s);
  stream_synchronize(s);
  Header h;
  std::memcpy(&h, out_host.data(), sizeof h);
  if (h.bad_roi != INT_MAX) detail::throw_bad_probability(h.bad_roi);
  const auto* r = reinterpret_cast<const RawErosion*>(static_cast<const char*>(out_host.data()) + raw_off);
  std::vector<ErosionRecord> table;
  table.reserve(static_cast<std::size_t>(p.n));
  for (int64_t i = 0; i < p.n; ++i) table.push_back(detail::finalize_erosion(r[i], p, i));
  return table;
}

}  // namespace

std::vector<ErosionRecord> quantify_erosions(const Tensor& erosion, const Tensor& bone_masks, const Tensor& boxes,
                                             const std::vector<double>& spacing_mm, const QuantifyParams& params,
                                             void* stream) {
  const QuantifyPlan p = detail::plan_quantify(erosion, bone_masks, boxes, spacing_mm, params, stream);
  if (!erosion.on_cuda()) fail("cuda::quantify_erosions needs CUDA tensors, got erosion on the host");
  if (p.n * p.h * p.w >= (int64_t{1} << 31))
    fail("erosion has ", p.n * p.h * p.w, " pixels; the CUDA path takes fewer than 2^31: split the batch");
  return run(p, erosion, bone_masks, static_cast<cudaStream_t>(stream));
}

}  // namespace ramh::cuda
