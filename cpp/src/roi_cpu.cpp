// CPU twin of the roi family (ramh/roi.hpp): the gold reference for kernels/roi.cu.
//
// crop: OpenMP over (roi, channel, crop row); paste: OpenMP over output rows, each row visiting the ROIs whose bounding
// box spans it in index order. Every output element is computed by one thread from the same float operations as
// the CUDA kernels (ramh/detail/roi_impl.hpp), so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "ramh/detail/roi_impl.hpp"
#include "ramh/roi.hpp"

namespace ramh::cpu {
namespace {

using detail::CropMap;
using detail::PasteMap;

// Below this many output elements a loop runs on one thread (a parallel region costs more than the work).
constexpr int64_t kMinParallelWork = int64_t{1} << 15;

// 4-lane vectors (GCC/Clang vector extension: SSE on x86-64, NEON on aarch64). Element-wise float operations round
// exactly like the scalar ones (-ffp-contract=off), so a lane computes the same bits as detail::crop_point and the
// samplers; lanes near the image border fall back to the scalar samplers.
typedef float f32x4 __attribute__((vector_size(16)));
typedef int32_t i32x4 __attribute__((vector_size(16)));

inline f32x4 splat(float v) { return f32x4{v, v, v, v}; }

// floor as in detail::ifloor (|x| < 2^31 holds: box coordinates are limited to 1e7 and sides to 2^24).
inline i32x4 floor4(f32x4 x) {
  const i32x4 t = __builtin_convertvector(x, i32x4);
  return t + (__builtin_convertvector(t, f32x4) > x);  // a true lane is -1
}

// p[0] and p[1] as floats, with one load for the integer types (both lie inside the row here).
template <class T>
inline void load_pair(const T* p, float* a, float* b) {
  if constexpr (std::is_same_v<T, uint16_t>) {
    uint32_t v;
    std::memcpy(&v, p, sizeof v);
    const uint16_t lo = static_cast<uint16_t>(v), hi = static_cast<uint16_t>(v >> 16);
    const bool little = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
    *a = static_cast<float>(little ? lo : hi);
    *b = static_cast<float>(little ? hi : lo);
  } else if constexpr (std::is_same_v<T, uint8_t>) {
    uint16_t v;
    std::memcpy(&v, p, sizeof v);
    const uint8_t lo = static_cast<uint8_t>(v), hi = static_cast<uint8_t>(v >> 8);
    const bool little = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
    *a = static_cast<float>(little ? lo : hi);
    *b = static_cast<float>(little ? hi : lo);
  } else {
    *a = static_cast<float>(p[0]);
    *b = static_cast<float>(p[1]);
  }
}

inline f32x4 lerp4(f32x4 a, f32x4 b, f32x4 t) { return a * (splat(1.0f) - t) + b * t; }

template <class T, class O, bool kBilinear>
void crop_row(const CropMap& m, int64_t i, const T* plane, int64_t h, int64_t w, int64_t ow, O fill, O* row) {
  const float ii = static_cast<float>(i) + m.i0;
  const f32x4 bx = splat(ii * m.bx), by = splat(ii * m.by);  // the same products crop_point forms
  int64_t j = 0;
  for (; j + 4 <= ow; j += 4) {
    const float fj = static_cast<float>(j);
    const f32x4 jj = f32x4{fj, fj + 1.0f, fj + 2.0f, fj + 3.0f} + splat(m.j0);
    const f32x4 px = splat(m.cx) + (jj * splat(m.ax) + bx);
    const f32x4 py = splat(m.cy) + (jj * splat(m.ay) + by);
    if constexpr (kBilinear) {
      const f32x4 x = px - splat(0.5f), y = py - splat(0.5f);
      // Lanes whose four neighbours are all inside (also false for NaN) take the vector path.
      const i32x4 ok = (x >= splat(0.0f)) & (x < splat(static_cast<float>(w - 1))) & (y >= splat(0.0f)) &
                       (y < splat(static_cast<float>(h - 1)));
      if (ok[0] & ok[1] & ok[2] & ok[3]) {
        const i32x4 x0 = floor4(x), y0 = floor4(y);
        const f32x4 fx = x - __builtin_convertvector(x0, f32x4), fy = y - __builtin_convertvector(y0, f32x4);
        // Gather into scalars and build the vectors from them (writing vector lanes one by one goes through memory
        // and stalls on store forwarding).
        float a[4], b[4], c[4], d[4];
        for (int l = 0; l < 4; ++l) {
          const T* p = plane + static_cast<int64_t>(y0[l]) * w + x0[l];
          load_pair(p, &a[l], &b[l]);
          load_pair(p + w, &c[l], &d[l]);
        }
        const f32x4 v00 = {a[0], a[1], a[2], a[3]}, v01 = {b[0], b[1], b[2], b[3]};
        const f32x4 v10 = {c[0], c[1], c[2], c[3]}, v11 = {d[0], d[1], d[2], d[3]};
        const f32x4 r = lerp4(lerp4(v00, v01, fx), lerp4(v10, v11, fx), fy);
        std::memcpy(row + j, &r, sizeof r);
        continue;
      }
    }
    if constexpr (!kBilinear) {
      const i32x4 ok = (px >= splat(0.0f)) & (px < splat(static_cast<float>(w))) & (py >= splat(0.0f)) &
                       (py < splat(static_cast<float>(h)));
      if (ok[0] & ok[1] & ok[2] & ok[3]) {
        const i32x4 xi = __builtin_convertvector(px, i32x4), yi = __builtin_convertvector(py, i32x4);  // >= 0: floor
        for (int l = 0; l < 4; ++l) row[j + l] = plane[static_cast<int64_t>(yi[l]) * w + xi[l]];
        continue;
      }
    }
    for (int l = 0; l < 4; ++l) {
      if constexpr (kBilinear)
        row[j + l] = detail::sample_bilinear_fill<T>(plane, h, w, px[l], py[l], fill);
      else
        row[j + l] = detail::sample_nearest_fill<T>(plane, h, w, px[l], py[l], fill);
    }
  }
  for (; j < ow; ++j) {
    float px, py;
    detail::crop_point(m, i, j, &px, &py);
    if constexpr (kBilinear)
      row[j] = detail::sample_bilinear_fill<T>(plane, h, w, px, py, fill);
    else
      row[j] = detail::sample_nearest_fill<T>(plane, h, w, px, py, fill);
  }
}

template <class T, class O, bool kBilinear>
void crop_impl(const Tensor& image, const std::vector<CropMap>& maps, O fill, Tensor& out) {
  const int64_t channels = image.ndim() == 3 ? image.dim(0) : 1;
  const int64_t h = image.dim(-2), w = image.dim(-1);
  const int64_t oh = out.dim(-2), ow = out.dim(-1);
  const int64_t rows = static_cast<int64_t>(maps.size()) * channels * oh;
  const T* img = image.ptr<T>();
  O* dst = out.ptr<O>();
#ifdef RAMH_WITH_OPENMP
#pragma omp parallel for schedule(dynamic, 8) if (rows * ow >= kMinParallelWork)
#endif
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = r % oh;
    const int64_t c = (r / oh) % channels;
    crop_row<T, O, kBilinear>(maps[r / (oh * channels)], i, img + c * h * w, h, w, ow, fill, dst + r * ow);
  }
}

template <class T>
void crop_typed(const Tensor& image, const std::vector<CropMap>& maps, Interpolation interp, double fill,
                Tensor& out) {
  if (interp == Interpolation::Bilinear)
    crop_impl<T, float, true>(image, maps, static_cast<float>(fill), out);
  else
    crop_impl<T, T, false>(image, maps, static_cast<T>(fill), out);
}

// Solves lo <= k * X + off <= hi for X; false when no X does.
bool linear_span(double k, double off, double lo, double hi, double* xa, double* xb) {
  if (k == 0.0) {
    *xa = -1e300;
    *xb = 1e300;
    return off >= lo && off <= hi;
  }
  const double a = (lo - off) / k, b = (hi - off) / k;
  *xa = a < b ? a : b;
  *xb = a < b ? b : a;
  return true;
}

// Output columns [*x0, *x1) of row y that can be covered by ROI m: where the ROI coordinates, computed exactly from
// the map's float coefficients, lie within [-E, rw + E] x [-E, rh + E]. E bounds the rounding error of the float
// computation in detail::paste_point with a wide safety factor (float eps is 6e-8 relative, ~6 roundings), so every
// pixel the exact float test accepts lies inside the span; the test still decides.
void paste_row_span(const PasteMap& m, int64_t y, double rw, double rh, int64_t* x0, int64_t* x1) {
  const double dy = static_cast<double>(y) + 0.5 - m.cy;
  const double dxmax = std::max(std::fabs(m.x0 - static_cast<double>(m.cx)), std::fabs(m.x1 - static_cast<double>(m.cx))) + 1.0;
  const double e = 1e-5 * (dxmax * (std::fabs(m.kux) + std::fabs(m.kvx)) +
                           (std::fabs(dy) + 1.0) * (std::fabs(m.kuy) + std::fabs(m.kvy)) + rw + rh) + 1e-6;
  double ua, ub, va, vb;  // X = x + 0.5 - cx
  if (!linear_span(m.kux, dy * m.kuy + m.hw, -e, rw + e, &ua, &ub) ||
      !linear_span(m.kvx, dy * m.kvy + m.hh, -e, rh + e, &va, &vb)) {
    *x0 = *x1 = m.x0;
    return;
  }
  const double lo = std::max(ua, va) + m.cx - 0.5, hi = std::min(ub, vb) + m.cx - 0.5;
  if (!(lo <= hi)) {
    *x0 = *x1 = m.x0;
    return;
  }
  *x0 = lo < m.x0 ? m.x0 : std::min<int64_t>(m.x1, static_cast<int64_t>(std::floor(lo)) - 1);
  *x1 = hi >= m.x1 ? m.x1 : std::max<int64_t>(m.x0, static_cast<int64_t>(std::ceil(hi)) + 2);
  if (*x0 < m.x0) *x0 = m.x0;
  if (*x1 > m.x1) *x1 = m.x1;
}

template <class T>
void paste_impl(const Tensor& rois, const std::vector<PasteMap>& maps, PasteReduce reduce, T fill, Tensor& out) {
  const int64_t n = static_cast<int64_t>(maps.size());
  const int64_t rh = rois.dim(1), rw = rois.dim(2);
  const float frh = static_cast<float>(rh), frw = static_cast<float>(rw);
  const int64_t oh = out.dim(0), ow = out.dim(1);
  const T* src = rois.ptr<T>();
  T* dst = out.ptr<T>();
#ifdef RAMH_WITH_OPENMP
#pragma omp parallel if (oh * ow >= kMinParallelWork)
#endif
  {
    std::vector<T> cur(ow);
    std::vector<uint8_t> covered(ow);
#ifdef RAMH_WITH_OPENMP
#pragma omp for schedule(dynamic, 8)
#endif
    for (int64_t y = 0; y < oh; ++y) {
      std::memset(covered.data(), 0, covered.size());
      for (int64_t k = 0; k < n; ++k) {
        const PasteMap& m = maps[k];
        if (y < m.y0 || y >= m.y1) continue;
        const T* roi = src + k * rh * rw;
        int64_t xa, xb;
        paste_row_span(m, y, frw, frh, &xa, &xb);
        for (int64_t x = xa; x < xb; ++x) {
          float rx, ry;
          if (!detail::paste_point(m, x, y, frw, frh, &rx, &ry)) continue;
          if constexpr (std::is_same_v<T, float>) {
            cur[x] = detail::combine_max(cur[x], detail::sample_bilinear_clamp(roi, rh, rw, rx, ry), !covered[x]);
          } else {
            cur[x] = detail::combine_u8(cur[x], detail::sample_nearest_clamp(roi, rh, rw, rx, ry), !covered[x], reduce);
          }
          covered[x] = 1;
        }
      }
      T* row = dst + y * ow;
      for (int64_t x = 0; x < ow; ++x) row[x] = covered[x] ? cur[x] : fill;
    }
  }
}

}  // namespace

void crop_rois(const Tensor& image, const std::vector<RotatedBox>& boxes, Interpolation interp, double fill,
               Tensor& out, void* /*stream*/) {
  if (boxes.empty()) return;
  std::vector<CropMap> maps;
  maps.reserve(boxes.size());
  for (const auto& b : boxes) maps.push_back(detail::make_crop_map(b, out.dim(-2), out.dim(-1)));
  switch (image.dtype) {
    case DType::U8: crop_typed<uint8_t>(image, maps, interp, fill, out); break;
    case DType::U16: crop_typed<uint16_t>(image, maps, interp, fill, out); break;
    case DType::F32: crop_typed<float>(image, maps, interp, fill, out); break;
    default: fail("image must be uint8, uint16 or float32, got ", dtype_name(image.dtype));
  }
}

void paste_rois(const Tensor& rois, const std::vector<RotatedBox>& boxes, PasteReduce reduce, double fill,
                Tensor& out, void* /*stream*/) {
  std::vector<PasteMap> maps;
  maps.reserve(boxes.size());
  for (const auto& b : boxes)
    maps.push_back(detail::make_paste_map(b, rois.dim(1), rois.dim(2), out.dim(0), out.dim(1)));
  if (rois.dtype == DType::F32)
    paste_impl<float>(rois, maps, reduce, static_cast<float>(fill), out);
  else
    paste_impl<uint8_t>(rois, maps, reduce, static_cast<uint8_t>(fill), out);
}

}  // namespace ramh::cpu
