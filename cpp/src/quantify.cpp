// quantify family: argument validation shared by both devices, the conversion of raw counts into the table (one code
// path for both devices), and dispatch on the device of the erosion maps.
#include <cmath>
#include <limits>

#include "ramh/detail/postprocess_impl.hpp"  // kScoreScale: the same 32.32 fixed point
#include "ramh/detail/quantify_impl.hpp"
#include "ramh/device.hpp"
#include "ramh/quantify.hpp"

namespace ramh {
namespace detail {

QuantifyPlan plan_quantify(const Tensor& erosion, const Tensor& bone_masks, const Tensor& boxes,
                           const std::vector<double>& spacing_mm, const QuantifyParams& params, void* stream) {
  require_ndim(erosion, "erosion", {3});
  require_dtype(erosion, "erosion", {DType::F32, DType::U8});
  require_nonempty(erosion, "erosion");
  if (!erosion.data) fail("erosion has no data pointer");
  require_ndim(bone_masks, "bone_masks", {3, 4});
  require_dtype(bone_masks, "bone_masks", {DType::U8});
  require_nonempty(bone_masks, "bone_masks");
  require_same_device(erosion, "erosion", bone_masks, "bone_masks");
  if (!bone_masks.data) fail("bone_masks has no data pointer");

  QuantifyPlan p;
  p.n = erosion.dim(0);
  p.h = erosion.dim(1);
  p.w = erosion.dim(2);
  p.probabilities = erosion.dtype == DType::F32;
  const bool stacked = bone_masks.ndim() == 4;
  p.k = stacked ? bone_masks.dim(1) : 1;
  if (bone_masks.dim(0) != p.n || bone_masks.dim(-2) != p.h || bone_masks.dim(-1) != p.w)
    fail("bone_masks must be N x h x w or N x K x h x w with N, h, w of erosion ", erosion.shape_str(), ", got ",
         bone_masks.shape_str());
  if (p.h * p.w >= (int64_t{1} << 31)) fail("erosion ROIs must have fewer than 2^31 pixels, got ", p.h, " x ", p.w);

  require_ndim(boxes, "boxes", {2});
  require_dtype(boxes, "boxes", {DType::F32});
  if (boxes.dim(0) != p.n || boxes.dim(1) != 5)
    fail("boxes must be N x 5 (cx, cy, w, h, angle) with N=", p.n, " ROIs, got ", boxes.shape_str());
  if (boxes.on_cuda() && (!erosion.on_cuda() || boxes.device_id != erosion.device_id))
    fail("boxes must be on the host or on the CUDA device of erosion");
  std::vector<float> b(static_cast<std::size_t>(p.n) * 5);
  if (boxes.on_cuda()) {
    copy_async(b.data(), boxes.data, b.size() * sizeof(float), stream);
    stream_synchronize(stream);
  } else {
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = boxes.ptr<const float>()[i];
  }
  p.scale.resize(static_cast<std::size_t>(p.n));
  for (int64_t r = 0; r < p.n; ++r) {
    const float* row = b.data() + 5 * r;
    for (int j = 0; j < 5; ++j)
      if (!std::isfinite(row[j])) fail("boxes must be finite, got ", row[j], " in ROI ", r);
    if (!(row[2] > 0.0f) || !(row[3] > 0.0f))
      fail("boxes must have positive w and h, got w=", row[2], ", h=", row[3], " in ROI ", r);
    p.scale[static_cast<std::size_t>(r)] =
        (static_cast<double>(row[2]) / static_cast<double>(p.w)) * (static_cast<double>(row[3]) / static_cast<double>(p.h));
  }

  if (spacing_mm.size() != static_cast<std::size_t>(p.n))
    fail("spacing_mm must have one value per ROI (N=", p.n, "), got ", spacing_mm.size());
  for (std::size_t r = 0; r < spacing_mm.size(); ++r) {
    const double s = spacing_mm[r];
    if (!std::isnan(s) && !(std::isfinite(s) && s > 0.0))
      fail("spacing_mm must be > 0 and finite, or NaN/None when unknown; got ", s, " for ROI ", r);
  }
  p.spacing_mm = spacing_mm;

  if (!(params.threshold > 0.0f && params.threshold <= 1.0f))
    fail("threshold must be in (0, 1], got ", params.threshold);
  p.threshold = params.threshold;
  if (params.min_lesion_px < 0) fail("min_lesion_px must be >= 0, got ", params.min_lesion_px);
  p.min_lesion_px = params.min_lesion_px;
  return p;
}

ErosionRecord finalize_erosion(const RawErosion& raw, const QuantifyPlan& p, int64_t roi) {
  const double scale = p.scale[static_cast<std::size_t>(roi)];
  const double spacing = p.spacing_mm[static_cast<std::size_t>(roi)];
  ErosionRecord o{};
  o.eroded_roi_px = static_cast<int64_t>(raw.eroded);
  o.eroded_px = static_cast<double>(raw.eroded) * scale;
  o.eroded_mm2 = o.eroded_px * spacing * spacing;  // NaN spacing -> NaN
  o.bone_roi_px = static_cast<int64_t>(raw.bone);
  o.bone_px = static_cast<double>(raw.bone) * scale;
  o.eroded_fraction = raw.bone ? static_cast<double>(raw.eroded) / static_cast<double>(raw.bone) : 0.0;
  o.lesions = raw.lesions;
  o.largest_lesion_roi_px = raw.largest;
  o.largest_lesion_px = static_cast<double>(raw.largest) * scale;
  o.mean_probability = (p.probabilities && raw.eroded)
                           ? static_cast<double>(raw.prob_q) / kScoreScale / static_cast<double>(raw.eroded)
                           : std::numeric_limits<double>::quiet_NaN();
  return o;
}

void throw_bad_probability(int64_t roi) {
  fail("erosion must hold probabilities in [0, 1]; ROI ", roi, " has a value outside (or NaN)");
}

}  // namespace detail

std::vector<ErosionRecord> quantify_erosions(const Tensor& erosion, const Tensor& bone_masks, const Tensor& boxes,
                                             const std::vector<double>& spacing_mm, const QuantifyParams& params,
                                             void* stream) {
  if (erosion.on_cuda()) {
#ifdef RAMH_WITH_CUDA
    return cuda::quantify_erosions(erosion, bone_masks, boxes, spacing_mm, params, stream);
#else
    (void)stream;
    fail<DeviceError>("ramh_rt was built without CUDA: erosion on a CUDA device cannot be processed "
                      "(rebuild with RAMH_CUDA=ON, or pass NumPy arrays)");
#endif
  }
  return cpu::quantify_erosions(erosion, bone_masks, boxes, spacing_mm, params);
}

#ifndef RAMH_WITH_CUDA
namespace cuda {
std::vector<ErosionRecord> quantify_erosions(const Tensor&, const Tensor&, const Tensor&, const std::vector<double>&,
                                             const QuantifyParams&, void*) {
  fail<DeviceError>("ramh_rt was built without CUDA: rebuild with RAMH_CUDA=ON to run quantify_erosions on a GPU");
}
}  // namespace cuda
#endif

}  // namespace ramh
