// ramh/detail/preprocess_impl.hpp — pieces of the preprocess family that the CPU twin (cpp/src/preprocess_cpu.cpp)
// and the CUDA kernels (kernels/preprocess.cu) share, so that both compute the same bits: resampling weights, float
// histogram bins and edges, the window function. Not a public API.
//
// Bit-exactness: the weights use only +, -, *, /, fabs, floor and ceil in double (exactly rounded on both devices; the
// one product, the tap centre, is dmul_rn so that nvcc cannot fuse it into the subtraction that follows); the windowed value is one float subtraction and one multiplication (mul_rn/sub_rn); the
// accumulations in both passes are acc = add_rn(acc, mul_rn(w, v)) over the taps in increasing order starting from
// 0.0f, and the normalisation is (acc - mean) / std. The CPU code performs exactly these operations in this order.
#pragma once

#include <math.h>

#include <cfloat>
#include <cstdint>

#include "ramh/hd_math.hpp"

namespace ramh::detail {

constexpr int kFloatHistBins = 4096;

// One axis of the separable resampler: n_in source pixels -> n_out resized pixels.
struct ResampleAxis {
  int64_t n_in = 0, n_out = 0;
  double scale = 1.0;    // n_in / n_out: source pixels per resized pixel
  double support = 1.0;  // tent radius in source pixels
  int taps = 1;          // weights stored per output coordinate (zero padded), <= n_in
};

inline ResampleAxis make_axis(int64_t n_in, int64_t n_out, bool antialias) {
  ResampleAxis a;
  a.n_in = n_in;
  a.n_out = n_out;
  a.scale = static_cast<double>(n_in) / static_cast<double>(n_out);
  a.support = (antialias && a.scale > 1.0) ? a.scale : 1.0;
  // An open interval of length 2r holds at most ceil(2r) integers; one more absorbs rounding in the centre.
  int64_t t = static_cast<int64_t>(ceil(2.0 * a.support)) + 1;
  if (t > n_in) t = n_in;
  a.taps = static_cast<int>(t);
  return a;
}

// Weights of resized coordinate o: w[0..taps) apply to source pixels first..first+taps-1; returns first.
// Source pixel i (centre i + 0.5) gets max(0, 1 - |i + 0.5 - c| / r) with c = (o + 0.5) * scale, normalised to sum 1
// over the pixels inside the image (this is what makes the border behave like edge clamping for r = 1).
RAMH_HD int64_t axis_weights(const ResampleAxis& a, int64_t o, float* w) {
  // dmul_rn: nvcc 13 happens not to fuse this product into `c - r - 0.5` below, but it may (fmad=true), and one FMA
  // would shift c by an ulp and could move a tap boundary away from the CPU's.
  const double c = dmul_rn(static_cast<double>(o) + 0.5, a.scale);
  const double r = a.support;
  int64_t i0 = static_cast<int64_t>(floor(c - r - 0.5));
  int64_t i1 = static_cast<int64_t>(ceil(c + r - 0.5));
  if (i0 < 0) i0 = 0;
  if (i1 > a.n_in - 1) i1 = a.n_in - 1;
  // First and last pixel with a positive weight, and the sum of the weights.
  int64_t lo = -1, hi = -1;
  double sum = 0.0;
  for (int64_t i = i0; i <= i1; ++i) {
    const double wi = 1.0 - fabs((static_cast<double>(i) + 0.5) - c) / r;
    if (wi > 0.0) {
      if (lo < 0) lo = i;
      hi = i;
      sum += wi;
    }
  }
  if (lo < 0) {  // cannot happen for c inside the image (the nearest centre is within 0.5 <= r); kept for safety
    lo = hi = (c < 0.5) ? 0 : a.n_in - 1;
    sum = -1.0;
  }
  int64_t first = lo;
  if (first > a.n_in - a.taps) first = a.n_in - a.taps;  // keep first + taps inside the image
  for (int t = 0; t < a.taps; ++t) {
    const int64_t i = first + t;
    double wi = 0.0;
    if (sum < 0.0) {
      wi = (i == lo) ? 1.0 : 0.0;
    } else if (i >= lo && i <= hi) {
      wi = 1.0 - fabs((static_cast<double>(i) + 0.5) - c) / r;
      wi = wi > 0.0 ? wi / sum : 0.0;
    }
    w[t] = static_cast<float>(wi);
  }
  return first;
}

// Window (lo, hi) in the form the pixel loop uses. A degenerate window (hi <= lo, or so narrow that 1 / (hi - lo)
// overflows) becomes the step v > lo.
struct WindowCoef {
  float lo = 0.0f;
  float inv = 0.0f;
  bool step = true;
};

RAMH_HD WindowCoef window_coef(float lo, float hi) {
  WindowCoef c;
  c.lo = lo;
  const float d = sub_rn(hi, lo);
  if (d > 0.0f) {
    const float inv = 1.0f / d;
    if (inv <= FLT_MAX) {
      c.inv = inv;
      c.step = false;
    }
  }
  return c;
}

RAMH_HD float apply_window(float v, const WindowCoef& c) {
  if (c.step) return v > c.lo ? 1.0f : 0.0f;
  const float t = mul_rn(sub_rn(v, c.lo), c.inv);
  return t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
}

// Float histogram: bin of v given the image's min and scale = 4096 / (max - min) (both in double).
RAMH_HD int float_bin(float v, double mn, double scale) {
  const double t = (static_cast<double>(v) - mn) * scale;
  if (!(t >= 0.0)) return 0;  // also NaN (never counted: float images are checked for finiteness)
  return t < static_cast<double>(kFloatHistBins - 1) ? static_cast<int>(t) : kFloatHistBins - 1;
}

RAMH_HD double float_hist_scale(float mn, float mx) {
  return static_cast<double>(kFloatHistBins) / (static_cast<double>(mx) - static_cast<double>(mn));
}

// Bin edge e (0..4096) of the float histogram over [mn, mx], as a float; edge 0 is mn and edge 4096 is mx exactly.
RAMH_HD float float_bin_edge(float mn, float mx, int e) {
  if (e <= 0) return mn;
  if (e >= kFloatHistBins) return mx;
  const double width = static_cast<double>(mx) - static_cast<double>(mn);
  return static_cast<float>(fma(width, static_cast<double>(e) / kFloatHistBins, static_cast<double>(mn)));
}

// Normalisation of a resampled value.
RAMH_HD float normalise(float v, float mean, float std_) { return sub_rn(v, mean) / std_; }

}  // namespace ramh::detail
