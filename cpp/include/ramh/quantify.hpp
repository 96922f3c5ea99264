// ramh/quantify.hpp — erosion quantification per joint ROI: eroded area (ROI pixels, image pixels, mm²), the joint's
// bone area, the eroded fraction, lesion count and size, mean erosion probability.
//
// | erosion    | N x h x w, float32 probabilities in [0, 1] or uint8 masks (nonzero = eroded), host or CUDA       |
// | bone_masks | N x h x w or N x K x h x w uint8 (nonzero = bone; the union over K is taken), same device        |
// | boxes      | N x 5 float32 (cx, cy, w, h, angle) in image pixels: the oriented boxes the ROIs were cut from;    |
// |            | host, or the device of erosion                                                                   |
// | spacing_mm | N values, mm per image pixel, each > 0 or NaN (unknown)                                          |
// | limits     | h * w < 2^31; on CUDA also N * h * w < 2^31                                                      |
//
// Definitions (identical on both devices; integer fields bit-identical, float fields within 1e-5 relative):
// - Erosion pixels: probability >= threshold (float32) or nonzero (uint8; threshold unused).
// - One ROI pixel covers (box_w / w) * (box_h / h) image pixels: *_px fields are in image pixels, *_roi_px in ROI
//   pixels, mm² = image pixels * spacing².
// - Erosion is missing bone, so the joint's original bone is bone ∪ erosion: bone_px counts that union and
//   eroded_fraction = eroded / (bone ∪ erosion), 0 when both are empty.
// - Lesions: 8-connected components of the erosion mask with at least min_lesion_px ROI pixels.
// - Probabilities outside [0, 1] or NaN are an error (ArgumentError naming the first ROI holding one).
#pragma once

#include <cstdint>
#include <vector>

#include "ramh/tensor.hpp"

namespace ramh {

struct QuantifyParams {
  float threshold = 0.5f;     // probability threshold for float32 erosion maps, in (0, 1]
  int64_t min_lesion_px = 4;  // ROI pixels, >= 0
};

// One row of the erosion table (layout = ramh_rt.ops.EROSION_DTYPE, 72 bytes, no padding).
struct ErosionRecord {
  int64_t eroded_roi_px;          // erosion pixels in the ROI
  double eroded_px;               // the same in image pixels
  double eroded_mm2;              // in mm² (NaN when the spacing is unknown)
  int64_t bone_roi_px;            // ROI pixels of bone ∪ erosion
  double bone_px;                 // the same in image pixels
  double eroded_fraction;         // eroded_roi_px / bone_roi_px, 0 when bone_roi_px is 0
  int32_t lesions;                // 8-connected erosion components with >= min_lesion_px ROI pixels
  int32_t largest_lesion_roi_px;  // ROI pixels of the largest lesion, 0 when there is none
  double largest_lesion_px;       // the same in image pixels
  double mean_probability;        // mean probability over the erosion pixels; NaN for uint8 input or no erosion
};
static_assert(sizeof(ErosionRecord) == 72, "ErosionRecord must stay 72 bytes without padding (EROSION_DTYPE)");

// Validates (ArgumentError naming the argument and value) and runs on the device of `erosion`. CUDA work is queued
// on `stream` and synchronised before returning. One record per ROI, in ROI order.
std::vector<ErosionRecord> quantify_erosions(const Tensor& erosion, const Tensor& bone_masks, const Tensor& boxes,
                                             const std::vector<double>& spacing_mm, const QuantifyParams& params,
                                             void* stream = nullptr);

namespace cpu {
// The CPU twin and gold reference (OpenMP over ROIs; results do not depend on the thread count).
std::vector<ErosionRecord> quantify_erosions(const Tensor& erosion, const Tensor& bone_masks, const Tensor& boxes,
                                             const std::vector<double>& spacing_mm, const QuantifyParams& params);
}  // namespace cpu

namespace cuda {
// The CUDA implementation (DeviceError in a build without CUDA).
std::vector<ErosionRecord> quantify_erosions(const Tensor& erosion, const Tensor& bone_masks, const Tensor& boxes,
                                             const std::vector<double>& spacing_mm, const QuantifyParams& params,
                                             void* stream);
}  // namespace cuda

}  // namespace ramh
