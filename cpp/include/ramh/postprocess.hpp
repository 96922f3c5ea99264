// ramh/postprocess.hpp — mask postprocessing: logits -> binary masks per channel, connected components, kept
// instances (largest or all per channel), optional hole filling, and per-instance statistics in the same pass.
//
// | input  | logits: N x C x H x W or C x H x W, float32 or float16, host or CUDA                               |
// | output | masks: same shape as logits, uint8 0/1, same device (written here); the instance table (host)       |
// | limits | 1 <= C <= 65535; H * W < 2^31; on CUDA also N * C * H * W < 2^31                                   |
//
// Semantics (identical on both devices: masks and integer statistics bit-identical, float statistics within 1e-5
// relative):
// - Multilabel: channel c is on where logit > threshold[c] (compared in float32; float16 logits are widened exactly).
//   Multiclass: a pixel belongs to its argmax channel (ties -> lowest channel index).
// - Components per (image, channel) plane, 8-connected, numbered in raster order of their first pixel.
// - KeepMode::Largest keeps the component with the most pixels (ties -> the first in raster order); KeepMode::All
//   keeps every component. Either way a component with fewer than min_area pixels is dropped. Selection uses the
//   pixel count before hole filling.
// - fill_holes: the holes of the kept pixel set S — 4-connected components of its complement that do not touch the
//   image border (the dual of 8-connected foreground; scipy.ndimage.binary_fill_holes) — are filled, and each hole
//   belongs to the kept component that encloses it (the one holding the pixel left of the hole's first pixel).
//   The filled mask equals binary_fill_holes(S); instances never overlap: a kept component lying inside a hole of
//   another stays its own instance and is not counted in the enclosing one.
// - Statistics are over the instance's pixels including its filled holes; see InstanceRecord.
// - NaN logits are an error (ArgumentError naming the first (batch, channel) plane holding one); +-inf are fine.
#pragma once

#include <cstdint>
#include <vector>

#include "ramh/tensor.hpp"

namespace ramh {

enum class MaskMode : int { Multilabel = 0, Multiclass = 1 };
enum class KeepMode : int { Largest = 0, All = 1 };

struct PostprocessParams {
  MaskMode mode = MaskMode::Multilabel;
  // Multilabel: 1 value (every channel) or C values, in logit units (0 = probability 0.5); not NaN, +-inf allowed.
  // Multiclass: unused; must be empty or all zero (a non-zero threshold there is an error, not silently ignored).
  std::vector<float> thresholds{0.0f};
  std::vector<KeepMode> keep{KeepMode::Largest};  // 1 value (every channel) or C values
  int64_t min_area = 0;                           // pixels, >= 0
  bool fill_holes = false;
};

// One row of the instance table (layout = ramh_rt.ops.INSTANCE_DTYPE, 80 bytes, no padding).
struct InstanceRecord {
  int32_t batch;    // image index n (0 for C x H x W input)
  int32_t channel;  // channel c
  int32_t index;    // instance index within (batch, channel), 0.. in raster order of the first pixel
  int32_t area;     // pixels, filled holes included
  int32_t bbox[4];  // x0, y0, x1, y1 in pixels, x1/y1 exclusive
  double centroid[2];        // x, y: mean of (col, row) + 0.5, continuous image coordinates
  double orientation;        // degrees of the major axis, counter-clockwise from +x as seen on screen, in (-90, 90]
  double major_axis_length;  // 4 sqrt(larger eigenvalue of the normalised central second moments), as scikit-image
  double minor_axis_length;  // 4 sqrt(smaller eigenvalue)
  double mean_score;         // mean over the instance's pixels (filled holes included) of sigmoid(logit) in
                             // multilabel mode, of the channel's softmax probability in multiclass mode
};
static_assert(sizeof(InstanceRecord) == 80, "InstanceRecord must stay 80 bytes without padding (INSTANCE_DTYPE)");

// Validates the arguments (ArgumentError naming the argument and value), then runs on the device of `logits`.
// `masks` must be uint8 with the shape of `logits` on the same device. CUDA work is queued on `stream` and
// synchronised before returning (the table is read back). Returns the instances sorted by (batch, channel, index).
std::vector<InstanceRecord> postprocess_masks(const Tensor& logits, const Tensor& masks,
                                              const PostprocessParams& params, void* stream = nullptr);

namespace cpu {
// The CPU twin and gold reference (OpenMP over planes; results do not depend on the thread count).
std::vector<InstanceRecord> postprocess_masks(const Tensor& logits, const Tensor& masks,
                                              const PostprocessParams& params);
}  // namespace cpu

namespace cuda {
// The CUDA implementation (DeviceError in a build without CUDA).
std::vector<InstanceRecord> postprocess_masks(const Tensor& logits, const Tensor& masks,
                                              const PostprocessParams& params, void* stream);
}  // namespace cuda

}  // namespace ramh
