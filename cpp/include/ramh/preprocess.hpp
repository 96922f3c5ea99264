// ramh/preprocess.hpp — intensity windowing, normalisation and letterbox resize of radiographs for a model input.
//
// One call turns a batch of N same-size images into an N x 1 x out_h x out_w model tensor:
//
//   1. window (lo, hi) per image: given, or the (p_lo, p_hi) percentiles of the image's histogram (see below);
//   2. v' = clip((v - lo) * (1 / (hi - lo)), 0, 1) on every source pixel, in float32 — before resampling, because the
//      window is defined on raw intensities and clipping does not commute with filtering; when hi == lo (a constant
//      image, or percentiles that coincide) v' = (v > lo ? 1 : 0), the limit of the window as hi -> lo;
//   3. resize to (new_h, new_w) = the image scaled by min(out_w / W, out_h / H), each side rounded half up, at least 1;
//      separable tent filter with half-pixel centres: output coordinate o samples source position c = (o + 0.5) * s,
//      s = in / new, with weights max(0, 1 - |i + 0.5 - c| / r), normalised to sum 1 over the pixels inside the image,
//      r = max(s, 1) when antialias (PIL BILINEAR, torch interpolate(antialias=True)), r = 1 otherwise (plain
//      bilinear with edge clamping, cv2 INTER_LINEAR); vertical pass first, then horizontal;
//   4. (x - mean) / std, centred on the output canvas at (pad_x, pad_y) = ((out_w - new_w) / 2, (out_h - new_h) / 2)
//      (integer division); the rest of the canvas holds pad_value (default (0 - mean) / std, i.e. black);
//   5. stored as float32 or float16 (round to nearest even, the same bits on CPU and CUDA).
//
// Percentiles. n = H * W pixels, k(p) = max(1, ceil(p * n / 100)) evaluated in double; the percentile is the smallest
// value v whose cumulative count (pixels <= v) reaches k, i.e. the k-th smallest pixel (numpy's "inverted_cdf").
//   uint8 / uint16: exact, 256 / 65536 bins of width 1.
//   float32: 4096 equal bins over [min, max] of the image: bin(v) = min(4095, floor((v - min) * (4096 / (max - min))))
//   in double; lo = lower edge of p_lo's bin, hi = upper edge of p_hi's bin (edge e = min + (max - min) * e / 4096,
//   one fused multiply-add in double; edge 4096 is max itself), so the window contains both percentile values.
//   A constant float image gives lo = hi = its value.
//
// Supported: image U8/U16/F32, 2-D (H x W) or 3-D (N x H x W), host or CUDA; out F32/F16 N x 1 x out_h x out_w on the
// image's device; H * W < 2^31. Float images must be finite (checked; the error says how many values are not).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "ramh/tensor.hpp"

namespace ramh {

// Where the resized image lies on the output canvas: x_out = x_in * scale_x + pad_x (continuous coordinates), same in y.
struct LetterboxGeometry {
  int64_t in_h = 0, in_w = 0;    // source image
  int64_t out_h = 0, out_w = 0;  // canvas
  int64_t new_h = 0, new_w = 0;  // resized image inside the canvas
  int64_t pad_y = 0, pad_x = 0;  // top-left corner of the resized image on the canvas
  double scale_y = 1.0, scale_x = 1.0;  // new_h / in_h, new_w / in_w (exactly what the resampler uses)
};

// The letterbox placement of an in_h x in_w image on an out_h x out_w canvas (all sizes > 0, else ArgumentError).
LetterboxGeometry letterbox_geometry(int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w);

struct PreprocessParams {
  int64_t out_h = 0, out_w = 0;
  double percentile_lo = 0.5, percentile_hi = 99.5;  // 0 <= lo < hi <= 100; used when no window is given
  float mean = 0.0f, std = 1.0f;                     // finite, std > 0
  std::optional<float> pad_value;                    // in output units; default (0 - mean) / std
  bool antialias = true;
};

// The smallest k such that the percentile is the k-th smallest of n values (1 <= k <= n); see above.
int64_t percentile_rank(double percentile, int64_t n);

// Shape of the output for `image` and `params`: {N, 1, out_h, out_w}. Validates the image and the parameters
// (ArgumentError), so that callers can allocate the output before calling preprocess().
std::vector<int64_t> preprocess_out_shape(const Tensor& image, const PreprocessParams& params);

// Validates and dispatches on the image's device.
//   image:   U8/U16/F32, H x W or N x H x W.
//   window:  nullptr (compute from percentiles) or a host F32 tensor of shape (2,) (one window for every image) or
//            (N, 2); each row finite with lo < hi.
//   out:     F32 or F16, N x 1 x out_h x out_w (N = 1 for a 2-D image), same device as image.
//   window_out: host float[2 * N] receiving the (lo, hi) actually used for each image.
//   stream:  CUDA stream for a device image (ignored on the host).
// Throws ArgumentError for bad arguments or non-finite float pixels, DeviceError for CUDA failures or a CUDA tensor
// in a build without CUDA.
void preprocess(const Tensor& image, const Tensor* window, const PreprocessParams& params, Tensor& out,
                float* window_out, void* stream = nullptr);

namespace cpu {
// The CPU twin (gold reference). Arguments as above, already validated.
void preprocess(const Tensor& image, const Tensor* window, const PreprocessParams& params, Tensor& out,
                float* window_out, void* stream = nullptr);
}  // namespace cpu

namespace cuda {
// The CUDA implementation; all work is queued on `stream`; returns after the stream has finished (the windows and
// the non-finite pixel count come back to the host).
void preprocess(const Tensor& image, const Tensor* window, const PreprocessParams& params, Tensor& out,
                float* window_out, void* stream);
}  // namespace cuda

}  // namespace ramh
