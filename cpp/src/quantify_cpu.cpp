// CPU twin of the quantify family (the gold reference): one ROI per OpenMP iteration, each with its own scratch; the
// erosion mask is labelled with the run labeller shared with postprocess (ramh/detail/ccl.hpp).
// See postprocess_cpu.cpp: lets GCC if-convert the FP comparisons of the row loops so that they vectorise.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <algorithm>
#include <limits>

#include "ramh/detail/ccl.hpp"
#include "ramh/detail/postprocess_impl.hpp"  // kScoreScale, sum_as_double
#include "ramh/detail/quantify_impl.hpp"
#include "ramh/quantify.hpp"

namespace ramh::cpu {
namespace {

using detail::Connectivity;
using detail::QuantifyPlan;
using detail::RawErosion;

// Row kernels over restrict pointers (vectorised); threshold_row returns 1 when a value is outside [0, 1] or NaN.
int threshold_row(const float* __restrict src, uint8_t* __restrict row, int w, float t) {
  int bad = 0;
  for (int x = 0; x < w; ++x) {
    const float v = src[x];
    row[x] = v >= t;
    bad |= !(v >= 0.0f && v <= 1.0f);
  }
  return bad;
}

void nonzero_row(const uint8_t* __restrict src, uint8_t* __restrict row, int w) {
  for (int x = 0; x < w; ++x) row[x] = src[x] != 0;
}

void or_nonzero_row(const uint8_t* __restrict src, uint8_t* __restrict row, int w) {
  for (int x = 0; x < w; ++x) row[x] |= src[x] != 0;
}

unsigned long long count_row(const uint8_t* __restrict row, int w) {
  unsigned count = 0;  // a row has fewer than 2^31 pixels
  for (int x = 0; x < w; ++x) count += row[x];
  return count;
}

struct Scratch {
  detail::RunLabeler labeler;
  std::vector<uint8_t> bone_row;
};

// Counts of one ROI; returns false when a probability is outside [0, 1] or NaN.
bool quantify_roi(const QuantifyPlan& p, const Tensor& erosion, const Tensor& bone_masks, int64_t roi, Scratch& s,
                  RawErosion& out) {
  const int H = static_cast<int>(p.h), W = static_cast<int>(p.w);
  const int64_t plane = p.h * p.w;
  int bad = 0;
  detail::RunLabeler::RowFn fill_row;
  if (p.probabilities) {
    const float* e = erosion.ptr<const float>() + roi * plane;
    const float t = p.threshold;
    fill_row = [e, W, t, &bad](int y, uint8_t* row) { bad |= threshold_row(e + static_cast<int64_t>(y) * W, row, W, t); };
  } else {
    const uint8_t* e = erosion.ptr<const uint8_t>() + roi * plane;
    fill_row = [e, W](int y, uint8_t* row) { nonzero_row(e + static_cast<int64_t>(y) * W, row, W); };
  }
  const int ncomp = s.labeler.label(H, W, Connectivity::Eight, fill_row);
  if (bad) return false;

  out = RawErosion{};
  for (int c = 0; c < ncomp; ++c) {
    const int64_t a = s.labeler.areas()[c];
    out.eroded += static_cast<unsigned long long>(a);
    if (a >= p.min_lesion_px) {
      ++out.lesions;
      out.largest = std::max(out.largest, static_cast<int>(a));
    }
  }
  if (p.probabilities) {
    const float* e = erosion.ptr<const float>() + roi * plane;
    double sum = 0.0;
    for (const auto& r : s.labeler.runs())
      sum += detail::sum_as_double(e + static_cast<int64_t>(r.y) * W + r.x0, r.x1 - r.x0);
    out.prob_q = static_cast<unsigned long long>(sum * detail::kScoreScale + 0.5);
  }

  // bone ∪ erosion: the union of the K bone masks, then the erosion runs painted in.
  const uint8_t* bones = bone_masks.ptr<const uint8_t>() + roi * p.k * plane;
  s.bone_row.resize(static_cast<std::size_t>(W));
  uint8_t* u = s.bone_row.data();
  const auto& runs = s.labeler.runs();
  std::size_t next = 0;
  for (int y = 0; y < H; ++y) {
    nonzero_row(bones + static_cast<int64_t>(y) * W, u, W);
    for (int64_t k = 1; k < p.k; ++k) or_nonzero_row(bones + k * plane + static_cast<int64_t>(y) * W, u, W);
    for (; next < runs.size() && runs[next].y == y; ++next)
      std::fill(u + runs[next].x0, u + runs[next].x1, uint8_t{1});
    out.bone += count_row(u, W);
  }
  return true;
}

}  // namespace

std::vector<ErosionRecord> quantify_erosions(const Tensor& erosion, const Tensor& bone_masks, const Tensor& boxes,
                                             const std::vector<double>& spacing_mm, const QuantifyParams& params) {
  const QuantifyPlan p = detail::plan_quantify(erosion, bone_masks, boxes, spacing_mm, params, nullptr);
  if (erosion.on_cuda()) fail("cpu::quantify_erosions needs host tensors, got erosion on CUDA device ", erosion.device_id);

  std::vector<RawErosion> raw(static_cast<std::size_t>(p.n));
  std::vector<uint8_t> ok(static_cast<std::size_t>(p.n), 1);
  const bool parallel = p.n * p.h * p.w * (1 + p.k) >= detail::kParallelMinValues;  // see kParallelMinValues
#pragma omp parallel if (parallel)
  {
    Scratch scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t r = 0; r < p.n; ++r) ok[r] = quantify_roi(p, erosion, bone_masks, r, scratch, raw[r]);
  }
  for (int64_t r = 0; r < p.n; ++r)
    if (!ok[r]) detail::throw_bad_probability(r);
  std::vector<ErosionRecord> table;
  table.reserve(raw.size());
  for (int64_t r = 0; r < p.n; ++r) table.push_back(detail::finalize_erosion(raw[r], p, r));
  return table;
}

}  // namespace ramh::cpu
