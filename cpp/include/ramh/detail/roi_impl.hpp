// ramh/detail/roi_impl.hpp — per-ROI maps and samplers shared by the CPU twin (cpp/src/roi_cpu.cpp) and the CUDA
// kernels (kernels/roi.cu), so that both compute the same sample positions bit for bit. Not a public API.
#pragma once

#include <math.h>

#include <cstdint>
#include <vector>

#include "ramh/hd_math.hpp"
#include "ramh/roi.hpp"

namespace ramh::detail {

// Crop pixel (i, j) -> image point: p = c + (jj * a + ii * b) with jj = j + j0, ii = i + i0 (exact half-integers),
// a = (w / out_w) u, b = (h / out_h) v.
struct CropMap {
  float cx, cy;
  float ax, ay;  // image step per crop column
  float bx, by;  // image step per crop row
  float j0, i0;  // 0.5 - out_w / 2, 0.5 - out_h / 2
};

// Output pixel centre q -> ROI continuous coordinates r = ((q - c) . ku + rw / 2, (q - c) . kv + rh / 2), with
// ku = u * rw / w and kv = v * rh / h; [x0, x1) x [y0, y1) bounds the output pixels that can be covered (a margin of
// one pixel around the box's bounding box, so it only skips work and never decides coverage).
struct PasteMap {
  float cx, cy;
  float kux, kuy, kvx, kvy;
  float hw, hh;  // rw / 2, rh / 2
  int32_t x0, y0, x1, y1;
};

// sin and cos of an angle in degrees; exact (0, +-1) for multiples of 90 so that rotated crops of a grid are exact.
inline void sincos_deg(double deg, double* s, double* c) {
  double r = fmod(deg, 360.0);
  if (r < 0.0) r += 360.0;
  if (r == 0.0) { *s = 0.0; *c = 1.0; return; }
  if (r == 90.0) { *s = 1.0; *c = 0.0; return; }
  if (r == 180.0) { *s = 0.0; *c = -1.0; return; }
  if (r == 270.0) { *s = -1.0; *c = 0.0; return; }
  const double rad = deg * (3.14159265358979323846 / 180.0);
  *s = sin(rad);
  *c = cos(rad);
}

inline CropMap make_crop_map(const RotatedBox& b, int64_t out_h, int64_t out_w) {
  double s, c;
  sincos_deg(b.angle_deg, &s, &c);
  const double sw = b.w / static_cast<double>(out_w), sh = b.h / static_cast<double>(out_h);
  CropMap m;
  m.cx = static_cast<float>(b.cx);
  m.cy = static_cast<float>(b.cy);
  m.ax = static_cast<float>(sw * c);   // u = (cos a, -sin a)
  m.ay = static_cast<float>(-sw * s);
  m.bx = static_cast<float>(sh * s);   // v = (sin a, cos a)
  m.by = static_cast<float>(sh * c);
  m.j0 = static_cast<float>(0.5 - 0.5 * static_cast<double>(out_w));
  m.i0 = static_cast<float>(0.5 - 0.5 * static_cast<double>(out_h));
  return m;
}

inline PasteMap make_paste_map(const RotatedBox& b, int64_t rh, int64_t rw, int64_t out_h, int64_t out_w) {
  double s, c;
  sincos_deg(b.angle_deg, &s, &c);
  const double fx = static_cast<double>(rw) / b.w, fy = static_cast<double>(rh) / b.h;
  PasteMap m;
  m.cx = static_cast<float>(b.cx);
  m.cy = static_cast<float>(b.cy);
  m.kux = static_cast<float>(c * fx);
  m.kuy = static_cast<float>(-s * fx);
  m.kvx = static_cast<float>(s * fy);
  m.kvy = static_cast<float>(c * fy);
  m.hw = static_cast<float>(0.5 * static_cast<double>(rw));
  m.hh = static_cast<float>(0.5 * static_cast<double>(rh));
  // Axis-aligned extent of the box: half extents |w/2 u| + |h/2 v| per axis.
  const double ex = 0.5 * (b.w * fabs(c) + b.h * fabs(s)), ey = 0.5 * (b.w * fabs(s) + b.h * fabs(c));
  auto clampi = [](double v, int64_t lo, int64_t hi) {
    if (!(v > static_cast<double>(lo))) return lo;
    if (v > static_cast<double>(hi)) return hi;
    return static_cast<int64_t>(v);
  };
  m.x0 = static_cast<int32_t>(clampi(floor(b.cx - ex) - 1.0, 0, out_w));
  m.x1 = static_cast<int32_t>(clampi(ceil(b.cx + ex) + 1.0, 0, out_w));
  m.y0 = static_cast<int32_t>(clampi(floor(b.cy - ey) - 1.0, 0, out_h));
  m.y1 = static_cast<int32_t>(clampi(ceil(b.cy + ey) + 1.0, 0, out_h));
  return m;
}

RAMH_HD void crop_point(const CropMap& m, int64_t i, int64_t j, float* px, float* py) {
  const float jj = add_rn(static_cast<float>(j), m.j0);
  const float ii = add_rn(static_cast<float>(i), m.i0);
  *px = add_rn(m.cx, add_rn(mul_rn(jj, m.ax), mul_rn(ii, m.bx)));
  *py = add_rn(m.cy, add_rn(mul_rn(jj, m.ay), mul_rn(ii, m.by)));
}

// ROI coordinates of output pixel (x, y); true when the pixel is covered.
RAMH_HD bool paste_point(const PasteMap& m, int64_t x, int64_t y, float rw, float rh, float* rx, float* ry) {
  const float dx = sub_rn(add_rn(static_cast<float>(x), 0.5f), m.cx);
  const float dy = sub_rn(add_rn(static_cast<float>(y), 0.5f), m.cy);
  *rx = add_rn(add_rn(mul_rn(dx, m.kux), mul_rn(dy, m.kuy)), m.hw);
  *ry = add_rn(add_rn(mul_rn(dx, m.kvx), mul_rn(dy, m.kvy)), m.hh);
  return *rx >= 0.0f && *rx < rw && *ry >= 0.0f && *ry < rh;
}

// floor(x) for |x| < 2^31 as an integer, exact (truncate, then step down for negative non-integers). Baseline x86-64
// has no floor instruction (floorf is a libm call), and the same formula on the GPU gives the same integer.
RAMH_HD int64_t ifloor(float x) {
  const int64_t t = static_cast<int64_t>(x);
  return t - (static_cast<float>(t) > x ? 1 : 0);
}

RAMH_HD float lerp2(float a, float b, float t) { return add_rn(mul_rn(a, sub_rn(1.0f, t)), mul_rn(b, t)); }

// Bilinear sample of an H x W plane at continuous point (px, py); neighbours outside the plane read `fill`.
template <class T>
RAMH_HD float sample_bilinear_fill(const T* plane, int64_t h, int64_t w, float px, float py, float fill) {
  const float x = sub_rn(px, 0.5f), y = sub_rn(py, 0.5f);
  // All four neighbours outside (also catches NaN): no index arithmetic on far-away points.
  if (!(x > -1.0f && x < static_cast<float>(w) && y > -1.0f && y < static_cast<float>(h))) return fill;
  const int64_t x0 = ifloor(x), y0 = ifloor(y);
  const float fx = sub_rn(x, static_cast<float>(x0)), fy = sub_rn(y, static_cast<float>(y0));
  const bool xin0 = x0 >= 0, xin1 = x0 + 1 < w, yin0 = y0 >= 0, yin1 = y0 + 1 < h;
  const int64_t i00 = y0 * w + x0;  // index only; dereferenced when the neighbour is inside
  const float v00 = (yin0 && xin0) ? static_cast<float>(plane[i00]) : fill;
  const float v01 = (yin0 && xin1) ? static_cast<float>(plane[i00 + 1]) : fill;
  const float v10 = (yin1 && xin0) ? static_cast<float>(plane[i00 + w]) : fill;
  const float v11 = (yin1 && xin1) ? static_cast<float>(plane[i00 + w + 1]) : fill;
  return lerp2(lerp2(v00, v01, fx), lerp2(v10, v11, fx), fy);
}

// Nearest sample: the pixel containing (px, py), or `fill` outside the plane.
template <class T>
RAMH_HD T sample_nearest_fill(const T* plane, int64_t h, int64_t w, float px, float py, T fill) {
  if (!(px >= 0.0f && px < static_cast<float>(w) && py >= 0.0f && py < static_cast<float>(h))) return fill;
  int64_t x = static_cast<int64_t>(px), y = static_cast<int64_t>(py);  // >= 0, so truncation is floor
  if (x > w - 1) x = w - 1;  // px may round up to w only through float(w) itself, excluded above; kept for safety
  if (y > h - 1) y = h - 1;
  return plane[y * w + x];
}

// Bilinear sample inside a ROI with edge clamping (every covered point has a full neighbourhood).
RAMH_HD float sample_bilinear_clamp(const float* roi, int64_t rh, int64_t rw, float rx, float ry) {
  const float x = sub_rn(rx, 0.5f), y = sub_rn(ry, 0.5f);
  int64_t x0 = ifloor(x), y0 = ifloor(y);  // covered points: x, y in [-0.5, rw - 0.5)
  const float fx = sub_rn(x, static_cast<float>(x0)), fy = sub_rn(y, static_cast<float>(y0));
  int64_t x1 = x0 + 1, y1 = y0 + 1;
  x0 = x0 < 0 ? 0 : (x0 > rw - 1 ? rw - 1 : x0);
  x1 = x1 < 0 ? 0 : (x1 > rw - 1 ? rw - 1 : x1);
  y0 = y0 < 0 ? 0 : (y0 > rh - 1 ? rh - 1 : y0);
  y1 = y1 < 0 ? 0 : (y1 > rh - 1 ? rh - 1 : y1);
  const float* r0 = roi + y0 * rw;
  const float* r1 = roi + y1 * rw;
  return lerp2(lerp2(r0[x0], r0[x1], fx), lerp2(r1[x0], r1[x1], fx), fy);
}

RAMH_HD uint8_t sample_nearest_clamp(const uint8_t* roi, int64_t rh, int64_t rw, float rx, float ry) {
  int64_t x = static_cast<int64_t>(rx), y = static_cast<int64_t>(ry);  // covered: rx, ry >= 0
  if (x > rw - 1) x = rw - 1;
  if (y > rh - 1) y = rh - 1;
  return roi[y * rw + x];
}

// Combination of covering ROI values: `first` is true for the pixel's first covering ROI.
RAMH_HD float combine_max(float cur, float v, bool first) {
  // NaN-ignoring max (numpy.fmax): a NaN never replaces a number and is replaced by any value; +0 beats -0. Together
  // this makes the result independent of the order of the ROIs.
  if (first || v > cur || cur != cur) return v;
  if (v == 0.0f && cur == 0.0f && !signbit(v)) return v;
  return cur;
}
RAMH_HD uint8_t combine_u8(uint8_t cur, uint8_t v, bool first, PasteReduce reduce) {
  if (first) return v;
  if (reduce == PasteReduce::Or) return static_cast<uint8_t>(cur | v);
  return v > cur ? v : cur;
}

}  // namespace ramh::detail
