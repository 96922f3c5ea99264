// Argument validation and device dispatch of the roi family (ramh/roi.hpp).
#include "ramh/roi.hpp"

#include <cmath>

namespace ramh {

void validate_boxes(const std::vector<RotatedBox>& boxes) {
  for (std::size_t i = 0; i < boxes.size(); ++i) {
    const RotatedBox& b = boxes[i];
    if (!(std::isfinite(b.cx) && std::isfinite(b.cy) && std::isfinite(b.w) && std::isfinite(b.h) &&
          std::isfinite(b.angle_deg)))
      fail("boxes[", i, "] must be finite, got (cx=", b.cx, ", cy=", b.cy, ", w=", b.w, ", h=", b.h,
           ", angle=", b.angle_deg, ")");
    if (!(b.w > 0.0 && b.h > 0.0)) fail("boxes[", i, "] must have w > 0 and h > 0, got w=", b.w, ", h=", b.h);
    // Centres far outside any image would lose all precision in the float32 sample positions.
    if (std::fabs(b.cx) > 1e7 || std::fabs(b.cy) > 1e7 || b.w > 1e7 || b.h > 1e7)
      fail("boxes[", i, "] is out of range (|cx|, |cy|, w, h must be <= 1e7 pixels), got (cx=", b.cx, ", cy=", b.cy,
           ", w=", b.w, ", h=", b.h, ")");
  }
}

namespace {

constexpr int64_t kMaxSide = int64_t{1} << 24;  // float32 holds every pixel index exactly

void require_side(int64_t v, const char* what) {
  if (v <= 0 || v > kMaxSide) fail(what, " must be in [1, 2^24], got ", v);
}

void validate_fill(double fill, DType dtype, const char* op) {
  switch (dtype) {
    case DType::U8:
    case DType::U16: {
      const double hi = dtype == DType::U8 ? 255.0 : 65535.0;
      if (!(fill >= 0.0 && fill <= hi && fill == std::floor(fill)))
        fail(op, ": fill must be an integer in [0, ", hi, "] for ", dtype_name(dtype), " output, got ", fill);
      break;
    }
    default:
      // NaN is a useful "no data" marker for float output; infinities would turn into NaN in the interpolation.
      if (std::isinf(fill) || std::fabs(fill) > 3.4028234663852886e38)
        fail(op, ": fill must be finite (or NaN) for float32 output, got ", fill);
  }
}

void validate_crop(const Tensor& image, const std::vector<RotatedBox>& boxes, Interpolation interp, double fill,
                   const Tensor& out) {
  const int64_t n = static_cast<int64_t>(boxes.size());
  if (out.ndim() < 3) fail("out must have 3 or 4 dimensions, got shape ", out.shape_str());
  const auto expect = crop_rois_out_shape(image, n, out.dim(-2), out.dim(-1));
  if (out.shape != expect) {
    Tensor e;
    e.shape = expect;
    fail("out must have shape ", e.shape_str(), ", got ", out.shape_str());
  }
  require_dtype(out, "out", {crop_rois_out_dtype(image, interp)});
  require_same_device(image, "image", out, "out");
  validate_fill(fill, out.dtype, "crop_rois");
  validate_boxes(boxes);
}

void validate_paste(const Tensor& rois, const std::vector<RotatedBox>& boxes, PasteReduce reduce, double fill,
                    const Tensor& out) {
  require_ndim(out, "out", {2});
  paste_rois_out_shape(rois, out.dim(0), out.dim(1));
  if (rois.dim(0) != static_cast<int64_t>(boxes.size()))
    fail("rois and boxes must have the same count, got ", rois.dim(0), " rois and ", boxes.size(), " boxes");
  require_dtype(out, "out", {rois.dtype});
  require_same_device(rois, "rois", out, "out");
  if (reduce == PasteReduce::Or && rois.dtype != DType::U8)
    fail("paste_rois: reduce='or' needs uint8 rois, got ", dtype_name(rois.dtype));
  validate_fill(fill, out.dtype, "paste_rois");
  validate_boxes(boxes);
}

}  // namespace

std::vector<int64_t> crop_rois_out_shape(const Tensor& image, int64_t n_boxes, int64_t out_h, int64_t out_w) {
  require_ndim(image, "image", {2, 3});
  require_dtype(image, "image", {DType::U8, DType::U16, DType::F32});
  require_nonempty(image, "image");
  require_side(image.dim(-2), "image height");
  require_side(image.dim(-1), "image width");
  require_side(out_h, "out_hw[0]");
  require_side(out_w, "out_hw[1]");
  if (n_boxes < 0) fail("the number of boxes must be >= 0, got ", n_boxes);
  if (image.ndim() == 3) return {n_boxes, image.dim(0), out_h, out_w};
  return {n_boxes, out_h, out_w};
}

std::vector<int64_t> paste_rois_out_shape(const Tensor& rois, int64_t out_h, int64_t out_w) {
  require_ndim(rois, "rois", {3});
  require_dtype(rois, "rois", {DType::F32, DType::U8});
  require_side(rois.dim(1), "ROI height");
  require_side(rois.dim(2), "ROI width");
  require_side(out_h, "out_hw[0]");
  require_side(out_w, "out_hw[1]");
  return {out_h, out_w};
}

DType crop_rois_out_dtype(const Tensor& image, Interpolation interp) {
  return interp == Interpolation::Bilinear ? DType::F32 : image.dtype;
}

void crop_rois(const Tensor& image, const std::vector<RotatedBox>& boxes, Interpolation interp, double fill,
               Tensor& out, void* stream) {
  validate_crop(image, boxes, interp, fill, out);
  if (image.on_cuda()) {
#ifdef RAMH_WITH_CUDA
    cuda::crop_rois(image, boxes, interp, fill, out, stream);
#else
    (void)stream;
    fail<DeviceError>("ramh_rt was built without CUDA: crop_rois got a CUDA image; rebuild with RAMH_CUDA=ON or pass "
                      "a NumPy array");
#endif
  } else {
    cpu::crop_rois(image, boxes, interp, fill, out);
  }
}

void paste_rois(const Tensor& rois, const std::vector<RotatedBox>& boxes, PasteReduce reduce, double fill,
                Tensor& out, void* stream) {
  validate_paste(rois, boxes, reduce, fill, out);
  if (rois.on_cuda()) {
#ifdef RAMH_WITH_CUDA
    cuda::paste_rois(rois, boxes, reduce, fill, out, stream);
#else
    (void)stream;
    fail<DeviceError>("ramh_rt was built without CUDA: paste_rois got CUDA rois; rebuild with RAMH_CUDA=ON or pass a "
                      "NumPy array");
#endif
  } else {
    cpu::paste_rois(rois, boxes, reduce, fill, out);
  }
}

}  // namespace ramh
