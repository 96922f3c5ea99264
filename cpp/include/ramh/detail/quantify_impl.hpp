// ramh/detail/quantify_impl.hpp — internals of the quantify family shared by the CPU twin, the CUDA kernels and the
// dispatch: the validated plan and the raw per-ROI counts both devices produce (finalised by the same host code).
#pragma once

#include <cstdint>
#include <vector>

#include "ramh/quantify.hpp"

namespace ramh::detail {

struct QuantifyPlan {
  int64_t n = 0, k = 1, h = 0, w = 0;  // ROIs, bone channels, ROI size
  bool probabilities = true;           // float32 erosion (else uint8 mask)
  float threshold = 0.5f;
  int64_t min_lesion_px = 4;
  std::vector<double> scale;       // per ROI: image pixels per ROI pixel
  std::vector<double> spacing_mm;  // per ROI, NaN = unknown
};

// Checks every argument; `boxes` is read on the host (copied from the device first when it lives there, on
// `stream`). Throws ArgumentError naming the argument (by its Python name) and the offending value.
QuantifyPlan plan_quantify(const Tensor& erosion, const Tensor& bone_masks, const Tensor& boxes,
                           const std::vector<double>& spacing_mm, const QuantifyParams& params, void* stream);

// Exact per-ROI counts; the probability sum in 32.32 fixed point (CUDA) or converted from a double sum (CPU).
struct RawErosion {
  unsigned long long eroded;    // erosion pixels
  unsigned long long bone;      // pixels of bone ∪ erosion
  unsigned long long prob_q;    // sum of the probabilities of the erosion pixels * 2^32
  int lesions;
  int largest;                  // ROI pixels of the largest lesion
};

ErosionRecord finalize_erosion(const RawErosion& raw, const QuantifyPlan& plan, int64_t roi);

[[noreturn]] void throw_bad_probability(int64_t roi);

}  // namespace ramh::detail
