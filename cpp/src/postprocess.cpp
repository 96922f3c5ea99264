// postprocess family: argument validation shared by both devices, the float statistics derived from the raw integer
// sums (one code path for both devices), and dispatch on the device of the logits.
#include <algorithm>
#include <cmath>

#include "ramh/detail/postprocess_impl.hpp"
#include "ramh/postprocess.hpp"

namespace ramh {
namespace detail {

PostprocessPlan plan_postprocess(const Tensor& logits, const Tensor& masks, const PostprocessParams& params) {
  require_ndim(logits, "logits", {3, 4});
  require_dtype(logits, "logits", {DType::F32, DType::F16});
  require_nonempty(logits, "logits");
  if (!logits.data) fail("logits has no data pointer");
  require_dtype(masks, "masks", {DType::U8});
  if (masks.shape != logits.shape)
    fail("masks must have the shape of logits ", logits.shape_str(), ", got ", masks.shape_str());
  require_same_device(logits, "logits", masks, "masks");
  if (!masks.data) fail("masks has no data pointer");

  PostprocessPlan p;
  const bool batched = logits.ndim() == 4;
  p.n = batched ? logits.dim(0) : 1;
  p.c = logits.dim(-3);
  p.h = logits.dim(-2);
  p.w = logits.dim(-1);
  p.half = logits.dtype == DType::F16;
  if (p.c > 65535) fail("logits may have at most 65535 channels, got ", p.c);
  if (p.h * p.w >= (int64_t{1} << 31))
    fail("logits planes must have fewer than 2^31 pixels, got ", p.h, " x ", p.w);

  if (params.mode != MaskMode::Multilabel && params.mode != MaskMode::Multiclass)
    fail("mode must be multilabel or multiclass, got ", static_cast<int>(params.mode));
  p.mode = params.mode;

  const auto& t = params.thresholds;
  if (p.mode == MaskMode::Multilabel) {
    if (t.size() != 1 && t.size() != static_cast<std::size_t>(p.c))
      fail("threshold must be a scalar or have one value per channel (C=", p.c, "), got ", t.size(), " values");
    p.thresholds.resize(static_cast<std::size_t>(p.c));
    for (int64_t k = 0; k < p.c; ++k) {
      const float v = t.size() == 1 ? t[0] : t[static_cast<std::size_t>(k)];
      if (std::isnan(v)) fail("threshold must not be NaN (channel ", k, ")");
      p.thresholds[static_cast<std::size_t>(k)] = v;
    }
  } else {
    for (std::size_t k = 0; k < t.size(); ++k)
      if (t[k] != 0.0f)
        fail("threshold is not used in multiclass mode (pixels take their argmax channel); got ", t[k],
             " — leave it at 0");
  }

  const auto& keep = params.keep;
  if (keep.size() != 1 && keep.size() != static_cast<std::size_t>(p.c))
    fail("keep must be one mode or one per channel (C=", p.c, "), got ", keep.size(), " entries");
  p.keep_all.resize(static_cast<std::size_t>(p.c));
  for (int64_t k = 0; k < p.c; ++k) {
    const KeepMode m = keep.size() == 1 ? keep[0] : keep[static_cast<std::size_t>(k)];
    if (m != KeepMode::Largest && m != KeepMode::All)
      fail("keep must be 'largest' or 'all', got code ", static_cast<int>(m), " (channel ", k, ")");
    p.keep_all[static_cast<std::size_t>(k)] = m == KeepMode::All ? 1 : 0;
  }

  if (params.min_area < 0) fail("min_area must be >= 0, got ", params.min_area);
  p.min_area = params.min_area < 1 ? 1 : params.min_area;
  p.fill_holes = params.fill_holes;
  return p;
}

InstanceRecord finalize_instance(const RawInstance& r) {
  InstanceRecord o{};
  o.batch = r.batch;
  o.channel = r.channel;
  o.index = r.index;
  o.area = static_cast<int32_t>(r.area);
  o.bbox[0] = r.x0;
  o.bbox[1] = r.y0;
  o.bbox[2] = r.x1 + 1;
  o.bbox[3] = r.y1 + 1;
  const double n = static_cast<double>(r.area);
  o.centroid[0] = static_cast<double>(r.sx) / n + 0.5;
  o.centroid[1] = static_cast<double>(r.sy) / n + 0.5;
  // Central second moments n^2 * cov computed exactly in 128-bit integers: no cancellation, so a straight line
  // has exactly zero width and an axis-aligned shape exactly zero covariance.
  using i128 = __int128;
  const i128 N = static_cast<i128>(r.area);
  const i128 sx = static_cast<i128>(r.sx), sy = static_cast<i128>(r.sy);
  const double n2 = n * n;
  const double a = static_cast<double>(N * static_cast<i128>(r.sxx) - sx * sx) / n2;  // var x
  const double c = static_cast<double>(N * static_cast<i128>(r.syy) - sy * sy) / n2;  // var y
  const double b = static_cast<double>(N * static_cast<i128>(r.sxy) - sx * sy) / n2;  // cov xy (y down)
  // Eigenvalues of [[a, b], [b, c]] as scikit-image's inertia_tensor_eigvals (clipped at 0).
  const double mean = 0.5 * (a + c);
  const double root = std::sqrt(0.25 * (a - c) * (a - c) + b * b);
  const double l1 = mean + root;
  const double l2 = std::max(mean - root, 0.0);
  o.major_axis_length = 4.0 * std::sqrt(l1);
  o.minor_axis_length = 4.0 * std::sqrt(l2);
  // The major axis makes 0.5 * atan2(2b, a - c) with +x measured towards +y (clockwise on screen, y points down);
  // counter-clockwise as seen on screen is its negative. Map into (-90, 90] and avoid -0.
  double deg = -0.5 * std::atan2(2.0 * b, a - c) * (180.0 / 3.14159265358979323846);
  if (deg <= -90.0) deg += 180.0;
  if (deg == 0.0) deg = 0.0;
  o.orientation = deg;
  o.mean_score = static_cast<double>(r.score_q) / kScoreScale / n;
  return o;
}

void throw_nan_logits(const PostprocessPlan& plan, int64_t plane) {
  fail("logits contain NaN (first in batch ", plane / plan.c, ", channel ", plane % plan.c,
       "); NaN has no mask or score — check the model output");
}

}  // namespace detail

std::vector<InstanceRecord> postprocess_masks(const Tensor& logits, const Tensor& masks,
                                              const PostprocessParams& params, void* stream) {
  if (logits.on_cuda()) {
#ifdef RAMH_WITH_CUDA
    return cuda::postprocess_masks(logits, masks, params, stream);
#else
    (void)stream;
    fail<DeviceError>("ramh_rt was built without CUDA: logits on a CUDA device cannot be processed "
                      "(rebuild with RAMH_CUDA=ON, or pass a NumPy array)");
#endif
  }
  return cpu::postprocess_masks(logits, masks, params);
}

#ifndef RAMH_WITH_CUDA
namespace cuda {
std::vector<InstanceRecord> postprocess_masks(const Tensor&, const Tensor&, const PostprocessParams&, void*) {
  fail<DeviceError>("ramh_rt was built without CUDA: rebuild with RAMH_CUDA=ON to run postprocess_masks on a GPU");
}
}  // namespace cuda
#endif

}  // namespace ramh
