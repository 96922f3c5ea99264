// CPU twin of the roi family (ramh/roi.hpp): the gold reference for kernels/roi.cu.
//
// crop: OpenMP over (roi, channel, crop row); paste: OpenMP over output rows, each row visiting the ROIs whose bounding
// box spans it in index order, over a conservative column span per ROI. On x86-64 CPUs with AVX2 (checked at run time)
// rows are processed 8 lanes at a time; elsewhere 4 lanes (GCC/Clang vector extension) or scalar. Every output element is computed by one thread from the same float operations as
// the CUDA kernels (ramh/detail/roi_impl.hpp), so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "ramh/detail/roi_impl.hpp"
#include "ramh/roi.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RAMH_ROI_AVX2 1
#include <immintrin.h>
#endif

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

// Crop pixel (i, j) by the scalar samplers: what every vector lane computes, and the fallback for lanes near the
// image border and for the columns left over after the last full vector.
template <class T, class O, bool kBilinear>
inline O crop_pixel(const CropMap& m, int64_t i, int64_t j, const T* plane, int64_t h, int64_t w, O fill) {
  float px, py;
  detail::crop_point(m, i, j, &px, &py);
  if constexpr (kBilinear)
    return detail::sample_bilinear_fill<T>(plane, h, w, px, py, fill);
  else
    return detail::sample_nearest_fill<T>(plane, h, w, px, py, fill);
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

// ---- AVX2 paths (x86-64, chosen at run time) ------------------------------------------------------------------------
// 8-lane coordinates, interpolation and index arithmetic; the pixel loads are independent scalar loads (hardware
// gathers are microcoded and slower on some x86 CPUs). Same float operations per lane as the scalar code (no FMA: the
// target is "avx2" only), so results are identical.
#ifdef RAMH_ROI_AVX2
bool cpu_has_avx2() {
  static const bool v = __builtin_cpu_supports("avx2");
  return v;
}

#define RAMH_AVX2 __attribute__((target("avx2")))

// Columns of a crop row per pass of crop_row_avx2 (a multiple of 8; the pass's scratch, 7 KiB, stays in L1).
constexpr int64_t kCropChunk = 256;

// Even and odd 32-bit elements of the 16 in (lo, hi), each in order.
RAMH_AVX2 inline void deinterleave32(__m256 lo, __m256 hi, __m256* even, __m256* odd) {
  // e0 e1 e4 e5 | e2 e3 e6 e7, then the middle 64-bit halves swapped
  *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0x88)), 0xd8));
  *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0xdd)), 0xd8));
}

// Bilinear neighbourhoods p[0], p[1], p[w], p[w + 1] (p = plane + idx[c]) of n samples, gathered with plain scalar
// loads into a scratch row `buf` (2 * kCropChunk words): for the integer types one word per sample (the top pair in
// the low half; x86-64 is little endian), so one store per sample; for float the top pairs in buf[0, n) and the
// bottom pairs in buf[kCropChunk, kCropChunk + n).
template <class T>
inline void gather_quads(const T* plane, int64_t w, const int32_t* idx, int64_t n, uint64_t* buf) {
  for (int64_t c = 0; c < n; ++c) {
    const T* p = plane + idx[c];
    if constexpr (std::is_same_v<T, uint8_t>) {
      uint16_t t, b;
      std::memcpy(&t, p, 2);
      std::memcpy(&b, p + w, 2);
      const uint32_t q = t | static_cast<uint32_t>(b) << 16;
      std::memcpy(reinterpret_cast<char*>(buf) + 4 * c, &q, 4);
    } else if constexpr (std::is_same_v<T, uint16_t>) {
      uint32_t t, b;
      std::memcpy(&t, p, 4);
      std::memcpy(&b, p + w, 4);
      buf[c] = t | static_cast<uint64_t>(b) << 32;
    } else {
      std::memcpy(&buf[c], p, 8);
      std::memcpy(&buf[kCropChunk + c], p + w, 8);
    }
  }
}

// The neighbourhoods of samples [g, g + 8) of a gather_quads scratch row as floats.
template <class T>
RAMH_AVX2 inline void unpack_quads(const uint64_t* buf, int64_t g, __m256* v00, __m256* v01, __m256* v10,
                                   __m256* v11) {
  if constexpr (std::is_same_v<T, uint8_t>) {
    const __m256i q = _mm256_load_si256(reinterpret_cast<const __m256i*>(reinterpret_cast<const char*>(buf) + 4 * g));
    const __m256i byte = _mm256_set1_epi32(0xff);
    *v00 = _mm256_cvtepi32_ps(_mm256_and_si256(q, byte));
    *v01 = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(q, 8), byte));
    *v10 = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(q, 16), byte));
    *v11 = _mm256_cvtepi32_ps(_mm256_srli_epi32(q, 24));
  } else if constexpr (std::is_same_v<T, uint16_t>) {
    __m256 top, bottom;
    deinterleave32(_mm256_load_ps(reinterpret_cast<const float*>(buf + g)),
                   _mm256_load_ps(reinterpret_cast<const float*>(buf + g + 4)), &top, &bottom);
    const __m256i t = _mm256_castps_si256(top), b = _mm256_castps_si256(bottom), word = _mm256_set1_epi32(0xffff);
    *v00 = _mm256_cvtepi32_ps(_mm256_and_si256(t, word));
    *v01 = _mm256_cvtepi32_ps(_mm256_srli_epi32(t, 16));
    *v10 = _mm256_cvtepi32_ps(_mm256_and_si256(b, word));
    *v11 = _mm256_cvtepi32_ps(_mm256_srli_epi32(b, 16));
  } else {
    deinterleave32(_mm256_load_ps(reinterpret_cast<const float*>(buf + g)),
                   _mm256_load_ps(reinterpret_cast<const float*>(buf + g + 4)), v00, v01);
    deinterleave32(_mm256_load_ps(reinterpret_cast<const float*>(buf + kCropChunk + g)),
                   _mm256_load_ps(reinterpret_cast<const float*>(buf + kCropChunk + g + 4)), v10, v11);
  }
}

// Eight floats at the given indices (all in bounds).
RAMH_AVX2 inline __m256 load_floats(const float* base, __m256i idx) {
  alignas(32) int32_t v[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(v), idx);
  return _mm256_setr_ps(base[v[0]], base[v[1]], base[v[2]], base[v[3]], base[v[4]], base[v[5]], base[v[6]], base[v[7]]);
}

RAMH_AVX2 inline __m256 lerp8(__m256 a, __m256 b, __m256 t) {
  return _mm256_add_ps(_mm256_mul_ps(a, _mm256_sub_ps(_mm256_set1_ps(1.0f), t)), _mm256_mul_ps(b, t));
}

// floor for |x| < 2^31, as detail::ifloor.
RAMH_AVX2 inline __m256i floor8(__m256 x) {
  const __m256i t = _mm256_cvttps_epi32(x);
  return _mm256_add_epi32(t, _mm256_castps_si256(_mm256_cmp_ps(_mm256_cvtepi32_ps(t), x, _CMP_GT_OQ)));
}

// Crop row i, columns [ja, jb), with 8 lanes, in passes over kCropChunk columns: (1) sample points, fractions and
// pixel indices in vectors; (2) bilinear: the pixel loads, all of the pass's in one loop of independent loads into a
// scratch row (no hardware gathers: slow or microcoded on many x86 CPUs), apart from the arithmetic so that many loads
// are in flight and the index extraction per lane of the former one-group-at-a-time loop is gone (~30% less CPU time
// for 32 ROIs of 224^2 from 2048x2560 uint16); (3) the interpolation in vectors from the scratch row. Lanes near the
// image border take the scalar samplers, as do the last (jb - ja) % 8 columns. Requires h * w + w < 2^31 (32-bit
// indices) and, for bilinear, h >= 2 and w >= 2 (lanes outside the fast path read pixels 0, 1, w and w + 1 before
// they are recomputed).
template <class T, class O, bool kBilinear>
RAMH_AVX2 void crop_row_avx2(const CropMap& m, int64_t i, const T* plane, int64_t h, int64_t w, int64_t ja,
                             int64_t jb, O fill, O* row) {
  alignas(32) int32_t idx[kCropChunk];
  alignas(32) float fxs[kCropChunk], fys[kCropChunk];
  alignas(32) uint64_t quads[2 * kCropChunk];
  uint8_t ok_bits[kCropChunk / 8];
  const float ii = static_cast<float>(i) + m.i0;
  const __m256 bx = _mm256_set1_ps(ii * m.bx), by = _mm256_set1_ps(ii * m.by);
  const __m256 ax = _mm256_set1_ps(m.ax), ay = _mm256_set1_ps(m.ay);
  const __m256 cx = _mm256_set1_ps(m.cx), cy = _mm256_set1_ps(m.cy), j0 = _mm256_set1_ps(m.j0);
  const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), zero = _mm256_setzero_ps();
  // Fast-path limits: bilinear needs x0 + 1 < w and y0 + 1 < h; nearest reads the pixel itself.
  const __m256 xlim = _mm256_set1_ps(static_cast<float>(kBilinear ? w - 1 : w));
  const __m256 ylim = _mm256_set1_ps(static_cast<float>(kBilinear ? h - 1 : h));
  const __m256i wv = _mm256_set1_epi32(static_cast<int>(w));
  const int64_t jb8 = ja + ((jb - ja) & ~int64_t{7});
  for (int64_t c0 = ja; c0 < jb8; c0 += kCropChunk) {
    const int64_t n = std::min(kCropChunk, jb8 - c0);  // a multiple of 8
    for (int64_t g = 0; g < n; g += 8) {
      const __m256 jj = _mm256_add_ps(_mm256_add_ps(_mm256_set1_ps(static_cast<float>(c0 + g)), lane), j0);
      const __m256 px = _mm256_add_ps(cx, _mm256_add_ps(_mm256_mul_ps(jj, ax), bx));
      const __m256 py = _mm256_add_ps(cy, _mm256_add_ps(_mm256_mul_ps(jj, ay), by));
      const __m256 x = kBilinear ? _mm256_sub_ps(px, _mm256_set1_ps(0.5f)) : px;
      const __m256 y = kBilinear ? _mm256_sub_ps(py, _mm256_set1_ps(0.5f)) : py;
      const __m256 ok =
          _mm256_and_ps(_mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_GE_OQ), _mm256_cmp_ps(x, xlim, _CMP_LT_OQ)),
                        _mm256_and_ps(_mm256_cmp_ps(y, zero, _CMP_GE_OQ), _mm256_cmp_ps(y, ylim, _CMP_LT_OQ)));
      ok_bits[g / 8] = static_cast<uint8_t>(_mm256_movemask_ps(ok));
      const __m256i x0 = _mm256_cvttps_epi32(x), y0 = _mm256_cvttps_epi32(y);  // ok lanes are >= 0: truncation is floor
      const __m256i k = _mm256_and_si256(_mm256_add_epi32(_mm256_mullo_epi32(y0, wv), x0), _mm256_castps_si256(ok));
      _mm256_store_si256(reinterpret_cast<__m256i*>(idx + g), k);
      if constexpr (kBilinear) {
        _mm256_store_ps(fxs + g, _mm256_sub_ps(x, _mm256_cvtepi32_ps(x0)));
        _mm256_store_ps(fys + g, _mm256_sub_ps(y, _mm256_cvtepi32_ps(y0)));
      } else {
        for (int64_t l = 0; l < 8; ++l) row[c0 + g + l] = plane[idx[g + l]];  // one load per pixel
      }
    }
    if constexpr (kBilinear) gather_quads(plane, w, idx, n, quads);
    for (int64_t g = 0; g < n; g += 8) {
      if constexpr (kBilinear) {
        __m256 v00, v01, v10, v11;
        unpack_quads<T>(quads, g, &v00, &v01, &v10, &v11);
        const __m256 fx = _mm256_load_ps(fxs + g), fy = _mm256_load_ps(fys + g);
        _mm256_storeu_ps(row + c0 + g, lerp8(lerp8(v00, v01, fx), lerp8(v10, v11, fx), fy));
      }
      if (ok_bits[g / 8] == 0xff) continue;
      for (int64_t l = 0; l < 8; ++l) {
        if (ok_bits[g / 8] >> l & 1) continue;
        row[c0 + g + l] = crop_pixel<T, O, kBilinear>(m, i, c0 + g + l, plane, h, w, fill);
      }
    }
  }
  for (int64_t j = jb8; j < jb; ++j) row[j] = crop_pixel<T, O, kBilinear>(m, i, j, plane, h, w, fill);
}

// Paste of one ROI over output columns [xa, xb) of row y, 8 lanes at a time: coverage, ROI coordinates and the
// samples in vectors, the combination per covered lane.
template <class T>
RAMH_AVX2 void paste_span_avx2(const PasteMap& m, int64_t y, int64_t xa, int64_t xb, const T* roi, int64_t rh,
                               int64_t rw, PasteReduce reduce, T* cur, uint8_t* covered) {
  const float dy = sub_rn(add_rn(static_cast<float>(y), 0.5f), m.cy);
  const __m256 tu = _mm256_set1_ps(mul_rn(dy, m.kuy)), tv = _mm256_set1_ps(mul_rn(dy, m.kvy));
  const __m256 kux = _mm256_set1_ps(m.kux), kvx = _mm256_set1_ps(m.kvx);
  const __m256 hw = _mm256_set1_ps(m.hw), hh = _mm256_set1_ps(m.hh), cx = _mm256_set1_ps(m.cx);
  const __m256 frw = _mm256_set1_ps(static_cast<float>(rw)), frh = _mm256_set1_ps(static_cast<float>(rh));
  const __m256 lane = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), zero = _mm256_setzero_ps();
  const __m256i rwv = _mm256_set1_epi32(static_cast<int>(rw));
  const __m256i xmax = _mm256_set1_epi32(static_cast<int>(rw - 1)), ymax = _mm256_set1_epi32(static_cast<int>(rh - 1));
  const __m256i izero = _mm256_setzero_si256();
  for (int64_t x = xa; x < xb; x += 8) {
    const __m256 xf = _mm256_add_ps(_mm256_set1_ps(static_cast<float>(x)), lane);
    const __m256 dx = _mm256_sub_ps(_mm256_add_ps(xf, _mm256_set1_ps(0.5f)), cx);
    const __m256 rx = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(dx, kux), tu), hw);
    const __m256 ry = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(dx, kvx), tv), hh);
    const __m256 live = _mm256_cmp_ps(xf, _mm256_set1_ps(static_cast<float>(xb)), _CMP_LT_OQ);
    const __m256 in = _mm256_and_ps(
        _mm256_and_ps(_mm256_and_ps(_mm256_cmp_ps(rx, zero, _CMP_GE_OQ), _mm256_cmp_ps(rx, frw, _CMP_LT_OQ)),
                      _mm256_and_ps(_mm256_cmp_ps(ry, zero, _CMP_GE_OQ), _mm256_cmp_ps(ry, frh, _CMP_LT_OQ))),
        live);
    const int mask = _mm256_movemask_ps(in);
    if (!mask) continue;
    alignas(32) float vf[8];
    alignas(32) int32_t vi[8];
    if constexpr (std::is_same_v<T, float>) {
      const __m256 sx = _mm256_sub_ps(rx, _mm256_set1_ps(0.5f)), sy = _mm256_sub_ps(ry, _mm256_set1_ps(0.5f));
      const __m256i x0 = floor8(sx), y0 = floor8(sy);
      const __m256 fx = _mm256_sub_ps(sx, _mm256_cvtepi32_ps(x0)), fy = _mm256_sub_ps(sy, _mm256_cvtepi32_ps(y0));
      const __m256i one = _mm256_set1_epi32(1);
      const __m256i xa0 = _mm256_min_epi32(_mm256_max_epi32(x0, izero), xmax);
      const __m256i xa1 = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(x0, one), izero), xmax);
      const __m256i r0 = _mm256_mullo_epi32(_mm256_min_epi32(_mm256_max_epi32(y0, izero), ymax), rwv);
      const __m256i r1 = _mm256_mullo_epi32(_mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(y0, one), izero), ymax),
                                            rwv);
      // Clamped indices lie inside the ROI for every lane, covered or not: plain loads, no masks needed.
      const __m256 v00 = load_floats(roi, _mm256_add_epi32(r0, xa0));
      const __m256 v01 = load_floats(roi, _mm256_add_epi32(r0, xa1));
      const __m256 v10 = load_floats(roi, _mm256_add_epi32(r1, xa0));
      const __m256 v11 = load_floats(roi, _mm256_add_epi32(r1, xa1));
      _mm256_store_ps(vf, lerp8(lerp8(v00, v01, fx), lerp8(v10, v11, fx), fy));
    } else {
      // covered lanes have rx, ry >= 0: truncation is floor; clamp as detail::sample_nearest_clamp does
      const __m256i xi = _mm256_min_epi32(_mm256_cvttps_epi32(rx), xmax);
      const __m256i yi = _mm256_min_epi32(_mm256_cvttps_epi32(ry), ymax);
      _mm256_store_si256(reinterpret_cast<__m256i*>(vi), _mm256_add_epi32(_mm256_mullo_epi32(yi, rwv), xi));
    }
    for (int l = 0; l < 8; ++l) {
      if (!(mask >> l & 1)) continue;
      const int64_t xo = x + l;
      if constexpr (std::is_same_v<T, float>)
        cur[xo] = detail::combine_max(cur[xo], vf[l], !covered[xo]);
      else
        cur[xo] = detail::combine_u8(cur[xo], roi[vi[l]], !covered[xo], reduce);
      covered[xo] = 1;
    }
  }
}
#endif  // RAMH_ROI_AVX2

inline f32x4 lerp4(f32x4 a, f32x4 b, f32x4 t) { return a * (splat(1.0f) - t) + b * t; }

template <class T, class O, bool kBilinear>
void crop_row(const CropMap& m, int64_t i, const T* plane, int64_t h, int64_t w, int64_t ja, int64_t jb, O fill,
              O* row) {
  const float ii = static_cast<float>(i) + m.i0;
  const f32x4 bx = splat(ii * m.bx), by = splat(ii * m.by);  // the same products crop_point forms
  int64_t j = ja;
  for (; j + 4 <= jb; j += 4) {
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
  for (; j < jb; ++j) row[j] = crop_pixel<T, O, kBilinear>(m, i, j, plane, h, w, fill);
}

template <class T, class O, bool kBilinear>
void crop_impl(const Tensor& image, const std::vector<CropMap>& maps, O fill, Tensor& out) {
  const int64_t channels = image.ndim() == 3 ? image.dim(0) : 1;
  const int64_t h = image.dim(-2), w = image.dim(-1);
  const int64_t oh = out.dim(-2), ow = out.dim(-1);
  const int64_t rows = static_cast<int64_t>(maps.size()) * channels * oh;
  const T* img = image.ptr<T>();
  O* dst = out.ptr<O>();
#ifdef RAMH_ROI_AVX2
  // 32-bit indices; bilinear lanes outside the fast path read the first two pixels of rows 0 and 1
  const bool avx2 = cpu_has_avx2() && h * w + w < (int64_t{1} << 31) && (!kBilinear || (h >= 2 && w >= 2));
#endif
#ifdef RAMH_WITH_OPENMP
#pragma omp parallel for schedule(dynamic, 8) if (rows * ow >= kMinParallelWork)
#endif
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t plane_idx = r / oh;  // roi * channels + channel
    const CropMap& m = maps[plane_idx / channels];
    const T* plane = img + (plane_idx % channels) * h * w;
#ifdef RAMH_ROI_AVX2
    if (avx2) {
      crop_row_avx2<T, O, kBilinear>(m, r % oh, plane, h, w, 0, ow, fill, dst + r * ow);
      continue;
    }
#endif
    crop_row<T, O, kBilinear>(m, r % oh, plane, h, w, 0, ow, fill, dst + r * ow);
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
#ifdef RAMH_ROI_AVX2
  const bool avx2 = cpu_has_avx2() && rh * rw < (int64_t{1} << 31);  // 32-bit indices
#endif
#ifdef RAMH_WITH_OPENMP
#pragma omp parallel if (oh * ow >= kMinParallelWork)
#endif
  {
    std::vector<T> cur(ow);
    std::vector<uint8_t> covered(ow, 0);  // reset after each row over the range the row touched
#ifdef RAMH_WITH_OPENMP
#pragma omp for schedule(dynamic, 8)
#endif
    for (int64_t y = 0; y < oh; ++y) {
      int64_t lo = ow, hi = 0;  // columns this row's spans touched
      for (int64_t k = 0; k < n; ++k) {
        const PasteMap& m = maps[k];
        if (y < m.y0 || y >= m.y1) continue;
        const T* roi = src + k * rh * rw;
        int64_t xa, xb;
        paste_row_span(m, y, frw, frh, &xa, &xb);
        if (xa >= xb) continue;
        lo = std::min(lo, xa);
        hi = std::max(hi, xb);
#ifdef RAMH_ROI_AVX2
        if (avx2) {
          paste_span_avx2<T>(m, y, xa, xb, roi, rh, rw, reduce, cur.data(), covered.data());
          continue;
        }
#endif
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
      if (lo >= hi) {
        std::fill(row, row + ow, fill);
        continue;
      }
      std::fill(row, row + lo, fill);
      for (int64_t x = lo; x < hi; ++x) row[x] = covered[x] ? cur[x] : fill;
      std::fill(row + hi, row + ow, fill);
      std::memset(covered.data() + lo, 0, static_cast<std::size_t>(hi - lo));
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
