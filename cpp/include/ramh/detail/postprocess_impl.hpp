// ramh/detail/postprocess_impl.hpp — internals of the postprocess family shared by the CPU twin, the CUDA kernels
// and the dispatch: the validated plan, the raw per-instance accumulators both devices produce, and the per-pixel
// score formulas (one definition, compiled for host and device).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "ramh/hd_math.hpp"  // RAMH_HD
#include "ramh/postprocess.hpp"

namespace ramh::detail {

// Arguments after validation, with per-channel lists expanded to C entries.
struct PostprocessPlan {
  int64_t n = 0, c = 0, h = 0, w = 0;
  MaskMode mode = MaskMode::Multilabel;
  bool half = false;                // float16 logits
  std::vector<float> thresholds;    // C values (multilabel), empty in multiclass
  std::vector<uint8_t> keep_all;    // C values: 1 = keep every component, 0 = keep the largest
  int64_t min_area = 1;             // max(params.min_area, 1): a component has at least one pixel
  bool fill_holes = false;
  int64_t planes() const { return n * c; }
  int64_t plane_size() const { return h * w; }
};

// Checks every argument; throws ArgumentError naming the argument (by its Python name) and the offending value.
PostprocessPlan plan_postprocess(const Tensor& logits, const Tensor& masks, const PostprocessParams& params);

// What both devices accumulate per instance: integer sums, so results are exact and independent of summation
// order; the float statistics are derived from them by finalize_instance on the host (the same code for both
// devices, hence bit-identical). The score is summed in 32.32 fixed point for the same reason.
struct RawInstance {
  int32_t batch, channel, index, first;  // first: in-plane raster index (y * W + x) of the first pixel
  int32_t x0, y0, x1, y1;                // bounding box, x1/y1 INCLUSIVE while accumulating
  unsigned long long area, sx, sy, sxx, syy, sxy, score_q;
};

InstanceRecord finalize_instance(const RawInstance& raw);

[[noreturn]] void throw_nan_logits(const PostprocessPlan& plan, int64_t plane);

constexpr double kScoreScale = 4294967296.0;  // 2^32: score_q = round(p * 2^32), p in [0, 1]

RAMH_HD unsigned long long score_fixed(float p) {
  return static_cast<unsigned long long>(static_cast<double>(p) * kScoreScale + 0.5);
}

// Multilabel score of a pixel: sigmoid(logit); saturates to exactly 0 or 1 for large |logit|.
RAMH_HD float sigmoid_score(float logit) { return 1.0f / (1.0f + expf(-logit)); }

// Multiclass: exp(logit - max) with the max term exactly 1, so +inf logits give 1 instead of NaN; the channel's
// softmax probability is softmax_term(l_c, max) / sum_k softmax_term(l_k, max).
RAMH_HD float softmax_term(float logit, float max_logit) {
  return logit == max_logit ? 1.0f : expf(logit - max_logit);
}

// Sum of float values in double with four independent accumulators, in a fixed order (deterministic); the CPU twins'
// score sums (postprocess, quantify).
inline double sum_as_double(const float* __restrict v, int n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int x = 0;
  for (; x + 4 <= n; x += 4) {
    s0 += v[x];
    s1 += v[x + 1];
    s2 += v[x + 2];
    s3 += v[x + 3];
  }
  for (; x < n; ++x) s0 += v[x];
  return (s0 + s1) + (s2 + s3);
}

}  // namespace ramh::detail
