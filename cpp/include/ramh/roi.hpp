// ramh/roi.hpp — oriented ROI crop (image -> N crops) and its inverse, paste (N ROI maps -> one image).
//
// Geometry (project conventions, those of ramh_rt.geometry.Roi): a box is (cx, cy, w, h, angle_deg) in continuous
// image pixels; its local axes are u = (cos a, -sin a) and v = (sin a, cos a), a counter-clockwise as seen on screen
// (y down). Crop pixel (i, j) of an
// out_h x out_w crop samples the image at
//     p(i, j) = c + ((j + 0.5) / out_w - 0.5) * w * u + ((i + 0.5) / out_h - 0.5) * h * v.
// Angles that are exact multiples of 90 degrees use exact sines and cosines (0, +-1).
//
// crop_rois
//   image: H x W or C x H x W (a label stack), U8/U16/F32; out: N x out_h x out_w or N x C x out_h x out_w.
//   Bilinear: half-pixel centres, reads the 4 pixels around p - (0.5, 0.5); a neighbour outside the image reads
//   `fill` (so values blend towards fill within one pixel of the border, like cv2.warpAffine BORDER_CONSTANT);
//   output F32 for every input dtype.
//   Nearest: the pixel containing p (floor), `fill` when p is outside [0, W) x [0, H); output dtype = image dtype.
//
// paste_rois
//   rois: N x rh x rw, F32 (bilinear) or U8 (nearest); out: out_h x out_w of the rois' dtype.
//   Output pixel (x, y) has its centre q = (x + 0.5, y + 0.5) mapped into ROI i's continuous coordinates
//     r = (((q - c) . u) * rw / w + rw / 2, ((q - c) . v) * rh / h + rh / 2);
//   it is covered by ROI i when 0 <= r.x < rw and 0 <= r.y < rh, and then takes the ROI value at r: bilinear with
//   half-pixel centres and edge clamping inside the ROI (F32), or the ROI pixel containing r (U8). Values of the
//   covering ROIs are combined with Max (F32: NaN-ignoring, like numpy.fmax; U8: max) or Or (U8 only: bitwise or,
//   equal to max for 0/1 masks). Pixels covered by no ROI hold `fill`. The result does not depend on the ROI order.
//
// Sample positions are computed in float32 with every rounding spelled out (ramh/hd_math.hpp), identically on CPU and
// CUDA, so nearest-neighbour results and coverage are bit-identical across devices.
#pragma once

#include <cstdint>
#include <vector>

#include "ramh/tensor.hpp"

namespace ramh {

struct RotatedBox {
  double cx = 0.0, cy = 0.0, w = 0.0, h = 0.0, angle_deg = 0.0;
};

enum class Interpolation : int { Nearest = 0, Bilinear = 1 };
enum class PasteReduce : int { Max = 0, Or = 1 };

// Checks that every box is finite with w > 0 and h > 0 (ArgumentError naming the box index otherwise).
void validate_boxes(const std::vector<RotatedBox>& boxes);

// Output shape and dtype of crop_rois for this image (validates image, sizes and interpolation).
std::vector<int64_t> crop_rois_out_shape(const Tensor& image, int64_t n_boxes, int64_t out_h, int64_t out_w);
DType crop_rois_out_dtype(const Tensor& image, Interpolation interp);

// Output shape of paste_rois: {out_h, out_w} (validates rois and the sizes).
std::vector<int64_t> paste_rois_out_shape(const Tensor& rois, int64_t out_h, int64_t out_w);

// Crops boxes.size() oriented ROIs from `image` into `out` (shape/dtype from the functions above, same device).
// `fill` must be representable in the output dtype: an integer in range for U8/U16 nearest output; finite or NaN for
// F32 output (with bilinear sampling a NaN fill makes every sample with an outside neighbour NaN).
// stream: CUDA stream for a device image (ignored on the host).
void crop_rois(const Tensor& image, const std::vector<RotatedBox>& boxes, Interpolation interp, double fill,
               Tensor& out, void* stream = nullptr);

// Pastes rois (N x rh x rw, F32 or U8, N = boxes.size()) into `out` (out_h x out_w, the rois' dtype, same device).
void paste_rois(const Tensor& rois, const std::vector<RotatedBox>& boxes, PasteReduce reduce, double fill,
                Tensor& out, void* stream = nullptr);

namespace cpu {
// CPU twins (gold reference); arguments already validated.
void crop_rois(const Tensor& image, const std::vector<RotatedBox>& boxes, Interpolation interp, double fill,
               Tensor& out, void* stream = nullptr);
void paste_rois(const Tensor& rois, const std::vector<RotatedBox>& boxes, PasteReduce reduce, double fill,
                Tensor& out, void* stream = nullptr);
}  // namespace cpu

namespace cuda {
// CUDA implementations: queued on `stream`, which is synchronised before returning (the per-ROI maps are uploaded from
// a pinned host buffer that must stay alive until the kernels have read it).
void crop_rois(const Tensor& image, const std::vector<RotatedBox>& boxes, Interpolation interp, double fill,
               Tensor& out, void* stream);
void paste_rois(const Tensor& rois, const std::vector<RotatedBox>& boxes, PasteReduce reduce, double fill,
                Tensor& out, void* stream);
}  // namespace cuda

}  // namespace ramh
