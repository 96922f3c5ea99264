// Argument validation and device dispatch of the preprocess family (ramh/preprocess.hpp).
#include "ramh/preprocess.hpp"

#include <cmath>
#include <limits>

namespace ramh {

LetterboxGeometry letterbox_geometry(int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w) {
  if (in_h <= 0 || in_w <= 0) fail("image size must be positive, got ", in_h, " x ", in_w);
  if (out_h <= 0 || out_w <= 0) fail("out_hw must be positive, got (", out_h, ", ", out_w, ")");
  constexpr int64_t kMaxSide = int64_t{1} << 30;  // keeps the integer products below 2^62
  if (in_h > kMaxSide || in_w > kMaxSide || out_h > kMaxSide || out_w > kMaxSide)
    fail("image and output sides must be below 2^30, got image ", in_h, " x ", in_w, ", out_hw (", out_h, ", ", out_w,
         ")");
  LetterboxGeometry g;
  g.in_h = in_h;
  g.in_w = in_w;
  g.out_h = out_h;
  g.out_w = out_w;
  // Decide the limiting side in integers (out_w / in_w <= out_h / in_h), so that the limiting side is exactly the
  // canvas side; round the other side half up: floor((2 * a * b + c) / (2 * c)) = round(a * b / c).
  if (out_w * in_h <= out_h * in_w) {
    g.new_w = out_w;
    g.new_h = (2 * in_h * out_w + in_w) / (2 * in_w);
  } else {
    g.new_h = out_h;
    g.new_w = (2 * in_w * out_h + in_h) / (2 * in_h);
  }
  if (g.new_h < 1) g.new_h = 1;
  if (g.new_w < 1) g.new_w = 1;
  if (g.new_h > out_h) g.new_h = out_h;
  if (g.new_w > out_w) g.new_w = out_w;
  g.pad_y = (out_h - g.new_h) / 2;
  g.pad_x = (out_w - g.new_w) / 2;
  g.scale_y = static_cast<double>(g.new_h) / static_cast<double>(in_h);
  g.scale_x = static_cast<double>(g.new_w) / static_cast<double>(in_w);
  return g;
}

int64_t percentile_rank(double percentile, int64_t n) {
  if (n <= 0) fail("percentile_rank needs a positive pixel count, got ", n);
  double k = std::ceil(percentile * static_cast<double>(n) / 100.0);
  if (!(k >= 1.0)) return 1;
  if (k >= static_cast<double>(n)) return n;
  return static_cast<int64_t>(k);
}

namespace {

void validate_image_params(const Tensor& image, const PreprocessParams& p) {
  require_ndim(image, "image", {2, 3});
  require_dtype(image, "image", {DType::U8, DType::U16, DType::F32});
  require_nonempty(image, "image");
  const int64_t h = image.dim(-2), w = image.dim(-1);
  if (h * w >= (int64_t{1} << 31))
    fail("image must have fewer than 2^31 pixels per image, got ", h, " x ", w);
  letterbox_geometry(h, w, p.out_h, p.out_w);  // checks out_hw

  if (!(p.percentile_lo >= 0.0 && p.percentile_lo < p.percentile_hi && p.percentile_hi <= 100.0))
    fail("percentiles must satisfy 0 <= lo < hi <= 100, got (", p.percentile_lo, ", ", p.percentile_hi, ")");
  if (!std::isfinite(p.mean)) fail("mean must be finite, got ", p.mean);
  if (!(std::isfinite(p.std) && p.std > 0.0f)) fail("std must be finite and > 0, got ", p.std);
  if (p.pad_value && !std::isfinite(*p.pad_value)) fail("pad_value must be finite, got ", *p.pad_value);
}

void validate(const Tensor& image, const Tensor* window, const PreprocessParams& p, const Tensor& out,
              const float* window_out) {
  validate_image_params(image, p);
  const int64_t n = image.ndim() == 3 ? image.dim(0) : 1;

  if (window) {
    if (window->on_cuda()) fail("window must be host data (a (lo, hi) pair or an N x 2 array)");
    require_dtype(*window, "window", {DType::F32});
    const bool one = window->ndim() == 1 && window->dim(0) == 2;
    const bool per_image = window->ndim() == 2 && window->dim(0) == n && window->dim(1) == 2;
    if (!one && !per_image)
      fail("window must be (lo, hi) or an N x 2 array with N = ", n, " images, got shape ", window->shape_str());
    const float* wv = window->ptr<float>();
    const int64_t rows = one ? 1 : n;
    for (int64_t i = 0; i < rows; ++i) {
      const float lo = wv[2 * i], hi = wv[2 * i + 1];
      if (!(std::isfinite(lo) && std::isfinite(hi) && lo < hi && std::isfinite(hi - lo))) {
        if (one)
          fail("window must be finite with lo < hi (and hi - lo finite in float32), got (", lo, ", ", hi, ")");
        fail("window[", i, "] must be finite with lo < hi (and hi - lo finite in float32), got (", lo, ", ", hi, ")");
      }
    }
  }

  require_dtype(out, "out", {DType::F32, DType::F16});
  if (out.ndim() != 4 || out.dim(0) != n || out.dim(1) != 1 || out.dim(2) != p.out_h || out.dim(3) != p.out_w)
    fail("out must have shape (", n, ", 1, ", p.out_h, ", ", p.out_w, "), got ", out.shape_str());
  require_same_device(image, "image", out, "out");
  if (!window_out) fail("window_out must not be null");
}

}  // namespace

std::vector<int64_t> preprocess_out_shape(const Tensor& image, const PreprocessParams& params) {
  validate_image_params(image, params);
  return {image.ndim() == 3 ? image.dim(0) : 1, 1, params.out_h, params.out_w};
}

void preprocess(const Tensor& image, const Tensor* window, const PreprocessParams& params, Tensor& out,
                float* window_out, void* stream) {
  validate(image, window, params, out, window_out);
  if (image.on_cuda()) {
#ifdef RAMH_WITH_CUDA
    cuda::preprocess(image, window, params, out, window_out, stream);
#else
    (void)stream;
    fail<DeviceError>("ramh_rt was built without CUDA: preprocess got a CUDA image; rebuild with RAMH_CUDA=ON or "
                      "pass a NumPy array");
#endif
  } else {
    cpu::preprocess(image, window, params, out, window_out);
  }
}

}  // namespace ramh
