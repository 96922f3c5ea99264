// CPU twin of the preprocess family (ramh/preprocess.hpp): the gold reference for kernels/preprocess.cu.
//
// Per image: window from an exact histogram (per-thread histograms merged, so counts do not depend on the thread
// count), then, per canvas row, the vertical filter of the windowed source rows (each source row windowed about once
// per thread into a small ring of rows) followed by the horizontal filter, normalisation and store. Rows are
// vectorised with 4 lanes, or 8 on x86-64 CPUs with AVX2 (checked at run time). Every float operation matches the
// CUDA kernels one for one (see ramh/detail/preprocess_impl.hpp), whatever the lane width, which is what makes float16
// outputs identical across devices.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "ramh/detail/preprocess_impl.hpp"
#include "ramh/hd_math.hpp"
#include "ramh/preprocess.hpp"

#ifdef RAMH_WITH_OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RAMH_PREPROCESS_AVX2 1  // an AVX2 + F16C clone of the row code, chosen at run time
#include <immintrin.h>
#endif

namespace ramh::cpu {
namespace {

using detail::ResampleAxis;
using detail::WindowCoef;

// Below this many element operations a loop runs on one thread: a parallel region's fork and barrier cost more than
// the work (and much more on an oversubscribed machine). Results never depend on the thread count.
constexpr int64_t kMinParallelWork = int64_t{1} << 16;

int num_threads() {
#ifdef RAMH_WITH_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

int thread_id() {
#ifdef RAMH_WITH_OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Smallest bin whose cumulative count reaches k (1 <= k <= total).
int64_t rank_bin(const std::vector<uint64_t>& hist, int64_t k) {
  uint64_t cum = 0;
  for (std::size_t b = 0; b < hist.size(); ++b) {
    cum += hist[b];
    if (cum >= static_cast<uint64_t>(k)) return static_cast<int64_t>(b);
  }
  return static_cast<int64_t>(hist.size()) - 1;
}

// Histogram of n pixels into `bins` bins by bin_of(value): per-thread counts, merged in thread order.
template <class T, class BinOf>
std::vector<uint64_t> histogram(const T* px, int64_t n, int bins, BinOf bin_of) {
  const int nt = num_threads();
  std::vector<uint32_t> local(static_cast<std::size_t>(nt) * bins, 0u);
#ifdef RAMH_WITH_OPENMP
#pragma omp parallel if (n >= kMinParallelWork)
#endif
  {
    uint32_t* h = local.data() + static_cast<std::size_t>(thread_id()) * bins;
#ifdef RAMH_WITH_OPENMP
#pragma omp for schedule(dynamic, 1 << 16)
#endif
    for (int64_t i = 0; i < n; ++i) ++h[bin_of(px[i])];
  }
  std::vector<uint64_t> hist(bins, 0);
  for (int t = 0; t < nt; ++t)
    for (int b = 0; b < bins; ++b) hist[b] += local[static_cast<std::size_t>(t) * bins + b];
  return hist;
}

struct FloatStats {
  float mn = 0.0f, mx = 0.0f;
  int64_t nonfinite = 0;
};

FloatStats float_stats(const float* px, int64_t n) {
  float mn = INFINITY, mx = -INFINITY;
  int64_t bad = 0;
#ifdef RAMH_WITH_OPENMP
#pragma omp parallel for schedule(static) reduction(min : mn) reduction(max : mx) reduction(+ : bad) \
    if (n >= kMinParallelWork)
#endif
  for (int64_t i = 0; i < n; ++i) {
    const float v = px[i];
    if (std::isfinite(v)) {
      mn = std::min(mn, v);
      mx = std::max(mx, v);
    } else {
      ++bad;
    }
  }
  return {mn, mx, bad};
}

// The (lo, hi) percentile window of one image (see the header for the exact definition).
template <class T>
void percentile_window(const T* px, int64_t n, const PreprocessParams& p, const FloatStats* fs, float* lo, float* hi) {
  const int64_t k_lo = percentile_rank(p.percentile_lo, n);
  const int64_t k_hi = percentile_rank(p.percentile_hi, n);
  if constexpr (std::is_same_v<T, float>) {
    if (fs->mn == fs->mx) {
      *lo = *hi = fs->mn;
      return;
    }
    const double mn = fs->mn, scale = detail::float_hist_scale(fs->mn, fs->mx);
    auto hist = histogram(px, n, detail::kFloatHistBins, [=](float v) { return detail::float_bin(v, mn, scale); });
    *lo = detail::float_bin_edge(fs->mn, fs->mx, static_cast<int>(rank_bin(hist, k_lo)));
    *hi = detail::float_bin_edge(fs->mn, fs->mx, static_cast<int>(rank_bin(hist, k_hi)) + 1);
  } else {
    constexpr int bins = std::is_same_v<T, uint8_t> ? 256 : 65536;
    auto hist = histogram(px, n, bins, [](T v) { return static_cast<int>(v); });
    *lo = static_cast<float>(rank_bin(hist, k_lo));
    *hi = static_cast<float>(rank_bin(hist, k_hi));
  }
}

constexpr int kLanes = 8;

struct Tables {
  ResampleAxis ax, ay;
  std::vector<int64_t> fx, fy;  // first source index per resized column / row
  std::vector<float> wx, wy;    // taps weights per resized column / row
  // The horizontal weights regrouped for 8 resized columns at a time: wxg[(g * taps + t) * 8 + l] is tap t of column
  // 8 g + l, and fxg[8 g + l] its first source index (lanes past the last column repeat it with zero weights).
  std::vector<float> wxg;
  std::vector<int32_t> fxg;
};

Tables make_tables(const LetterboxGeometry& g, bool antialias) {
  Tables t;
  t.ax = detail::make_axis(g.in_w, g.new_w, antialias);
  t.ay = detail::make_axis(g.in_h, g.new_h, antialias);
  t.fx.resize(g.new_w);
  t.fy.resize(g.new_h);
  t.wx.resize(static_cast<std::size_t>(g.new_w) * t.ax.taps);
  t.wy.resize(static_cast<std::size_t>(g.new_h) * t.ay.taps);
  for (int64_t o = 0; o < g.new_w; ++o) t.fx[o] = detail::axis_weights(t.ax, o, &t.wx[o * t.ax.taps]);
  for (int64_t o = 0; o < g.new_h; ++o) t.fy[o] = detail::axis_weights(t.ay, o, &t.wy[o * t.ay.taps]);
  const int64_t groups = (g.new_w + kLanes - 1) / kLanes;
  t.wxg.assign(static_cast<std::size_t>(groups) * t.ax.taps * kLanes, 0.0f);
  t.fxg.resize(static_cast<std::size_t>(groups) * kLanes);
  for (int64_t o = 0; o < groups * kLanes; ++o) {
    const int64_t gi = o / kLanes, l = o % kLanes, src = std::min<int64_t>(o, g.new_w - 1);
    t.fxg[o] = static_cast<int32_t>(t.fx[src]);
    if (o < g.new_w)
      for (int k = 0; k < t.ax.taps; ++k) t.wxg[(gi * t.ax.taps + k) * kLanes + l] = t.wx[o * t.ax.taps + k];
  }
  return t;
}

// Vectors of L floats (GCC/Clang vector extension): L = 4 is one SSE/NEON register (the baseline clone), L = 8 one AVX
// register (the AVX2 clone). Each lane rounds exactly like scalar code (-ffp-contract=off keeps a*b+c unfused), so
// the lane width changes no bit.
#if defined(__GNUC__) && !defined(__clang__)
// 32-byte vectors passed between always-inline helpers of this file only: no ABI is exposed.
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
template <int L>
struct Vec {
  typedef float f __attribute__((vector_size(4 * L)));
  typedef uint16_t u16 __attribute__((vector_size(2 * L)));
  typedef uint8_t u8 __attribute__((vector_size(L)));
};

#define RAMH_INLINE inline __attribute__((always_inline))

template <int L>
RAMH_INLINE typename Vec<L>::f splat(float v) {
  typename Vec<L>::f r;
  for (int l = 0; l < L; ++l) r[l] = v;
  return r;
}
template <int L>
RAMH_INLINE typename Vec<L>::f load(const float* p) {
  typename Vec<L>::f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <int L>
RAMH_INLINE void store(float* p, typename Vec<L>::f v) {
  std::memcpy(p, &v, sizeof v);
}

template <int L, class T>
RAMH_INLINE typename Vec<L>::f load_as_float(const T* p) {
  if constexpr (std::is_same_v<T, float>) {
    return load<L>(p);
  } else if constexpr (std::is_same_v<T, uint16_t>) {
    typename Vec<L>::u16 v;
    std::memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, typename Vec<L>::f);
  } else {
    typename Vec<L>::u8 v;
    std::memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, typename Vec<L>::f);
  }
}

// Windowed copy of one source row: the operations of detail::apply_window, vectorised (same roundings, same bits).
template <int L, class T>
RAMH_INLINE void window_row(const T* src, int64_t w, const WindowCoef& c, float* dst) {
  using F = typename Vec<L>::f;
  int64_t x = 0;
  if (c.step) {
    for (; x < w; ++x) dst[x] = static_cast<float>(src[x]) > c.lo ? 1.0f : 0.0f;
    return;
  }
  const F lo = splat<L>(c.lo), inv = splat<L>(c.inv), zero = splat<L>(0.0f), one = splat<L>(1.0f);
  for (; x + L <= w; x += L) {
    F t = (load_as_float<L>(src + x) - lo) * inv;
    t = t < zero ? zero : t;
    t = t > one ? one : t;
    store<L>(dst + x, t);
  }
  for (; x < w; ++x) dst[x] = detail::apply_window(static_cast<float>(src[x]), c);
}

// Windowed source rows of one thread, in a ring: the rows of one resized row are `taps` consecutive indices, so they
// occupy distinct slots r % taps, and consecutive resized rows (each thread takes chunks of consecutive rows) reuse
// most of them.
template <class T>
class WindowedRows {
 public:
  WindowedRows(const T* img, int64_t w, int taps, const WindowCoef& c)
      : img_(img), w_(w), taps_(taps), c_(c), ring_(static_cast<std::size_t>(taps) * w), tag_(taps, -1) {}

  // Returns the slot of row r and whether it must be (re)filled; fill() does it (split so that the filling loop is
  // compiled into the caller's instruction-set clone).
  float* slot(int64_t r, bool* stale) {
    const int k = static_cast<int>(r % taps_);
    *stale = tag_[k] != r;
    tag_[k] = r;
    return &ring_[static_cast<std::size_t>(k) * w_];
  }
  const T* source(int64_t r) const { return img_ + r * w_; }
  const WindowCoef& coef() const { return c_; }

 private:
  const T* img_;
  int64_t w_;
  int taps_;
  WindowCoef c_;
  std::vector<float> ring_;
  std::vector<int64_t> tag_;
};

template <class O>
RAMH_INLINE void store_out(O* dst, float v) {
  if constexpr (std::is_same_v<O, float>)
    *dst = v;
  else
    *dst = float_to_half_bits(v);
}

#ifdef RAMH_PREPROCESS_AVX2
// 8 float16 values with F16C, round to nearest even: the same bits as float_to_half_bits (both are the IEEE
// conversion). Only called from the AVX2 + F16C clone.
__attribute__((target("avx2,f16c"))) inline void store8_half(uint16_t* dst, const float* v) {
  const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(v), _MM_FROUND_TO_NEAREST_INT);
  std::memcpy(dst, &h, sizeof h);
}
#endif

struct RowScratch {
  std::vector<const float*> rows;
  std::vector<float> ws, line;
};

// One canvas row y: vertical filter of the windowed source rows (sum over taps t increasing, zero weights skipped),
// horizontal filter (all taps, in order), normalisation and store. O = float or float16 bits; L = vector lanes.
template <int L, class T, class O>
RAMH_INLINE void canvas_row(WindowedRows<T>& src, const LetterboxGeometry& g, const Tables& tb,
                            const PreprocessParams& p, float pad, int64_t y, RowScratch& s, O* out) {
  using F = typename Vec<L>::f;
  const int64_t oy = y - g.pad_y;
  if (oy < 0 || oy >= g.new_h) {
    for (int64_t x = 0; x < g.out_w; ++x) store_out(out + x, pad);
    return;
  }
  for (int64_t x = 0; x < g.pad_x; ++x) store_out(out + x, pad);
  for (int64_t x = g.pad_x + g.new_w; x < g.out_w; ++x) store_out(out + x, pad);

  const int64_t w = g.in_w;
  const int ty = tb.ay.taps;
  const float* wy = &tb.wy[oy * ty];
  int m = 0;
  for (int t = 0; t < ty; ++t) {
    if (wy[t] == 0.0f) continue;  // adds exactly +0 to a non-negative sum: skipping it changes no bit
    const int64_t r = tb.fy[oy] + t;
    bool stale;
    float* row = src.slot(r, &stale);
    if (stale) window_row<L>(src.source(r), w, src.coef(), row);
    s.rows[m] = row;
    s.ws[m] = wy[t];
    ++m;
  }
  float* line = s.line.data();
  // Blocks of 4 vectors keep their sums in registers across all taps.
  int64_t x0 = 0;
  for (; x0 + 4 * L <= w; x0 += 4 * L) {
    F a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (int k = 0; k < m; ++k) {
      const F wk = splat<L>(s.ws[k]);
      const float* rk = s.rows[k] + x0;
      a0 = a0 + wk * load<L>(rk);
      a1 = a1 + wk * load<L>(rk + L);
      a2 = a2 + wk * load<L>(rk + 2 * L);
      a3 = a3 + wk * load<L>(rk + 3 * L);
    }
    store<L>(line + x0, a0);
    store<L>(line + x0 + L, a1);
    store<L>(line + x0 + 2 * L, a2);
    store<L>(line + x0 + 3 * L, a3);
  }
  for (int64_t x = x0; x < w; ++x) {
    float a = 0.0f;
    for (int k = 0; k < m; ++k) a = a + s.ws[k] * s.rows[k][x];
    line[x] = a;
  }

  const int tx = tb.ax.taps;
  O* dst = out + g.pad_x;
  if constexpr (L == kLanes) {
    // 8 resized columns at a time with the regrouped weights (AVX2 clone).
    const F mean = splat<L>(p.mean), std_ = splat<L>(p.std);
    for (int64_t g0 = 0; g0 < g.new_w; g0 += kLanes) {
      const int32_t* f = &tb.fxg[g0];
      const float* wg = &tb.wxg[g0 * tx];
      F acc = {};
      for (int t = 0; t < tx; ++t) {
        const F v = {line[f[0] + t], line[f[1] + t], line[f[2] + t], line[f[3] + t],
                     line[f[4] + t], line[f[5] + t], line[f[6] + t], line[f[7] + t]};
        acc = acc + load<L>(wg + t * kLanes) * v;
      }
      const F r = (acc - mean) / std_;  // detail::normalise, per lane
      const int64_t n = std::min<int64_t>(kLanes, g.new_w - g0);
      if (n == kLanes) {
        if constexpr (std::is_same_v<O, float>) {
          store<L>(dst + g0, r);
          continue;
        }
#ifdef RAMH_PREPROCESS_AVX2
        if constexpr (std::is_same_v<O, uint16_t>) {
          alignas(32) float v[kLanes];
          store<L>(v, r);
          store8_half(dst + g0, v);
          continue;
        }
#endif
      }
      for (int64_t l = 0; l < n; ++l) store_out(dst + g0 + l, r[l]);
    }
  } else {
    for (int64_t ox = 0; ox < g.new_w; ++ox) {
      const float* sx = line + tb.fx[ox];
      const float* wx = &tb.wx[ox * tx];
      float acc = 0.0f;
      for (int t = 0; t < tx; ++t) acc = acc + wx[t] * sx[t];
      store_out(dst + ox, detail::normalise(acc, p.mean, p.std));
    }
  }
}

// The row function compiled twice: 4 lanes for the baseline instruction set and, on x86-64, 8 lanes for AVX2 + F16C
// (chosen at run time).
template <class T, class O>
void canvas_row_base(WindowedRows<T>& src, const LetterboxGeometry& g, const Tables& tb, const PreprocessParams& p,
                     float pad, int64_t y, RowScratch& s, O* out) {
  canvas_row<4, T, O>(src, g, tb, p, pad, y, s, out);
}
#ifdef RAMH_PREPROCESS_AVX2
template <class T, class O>
__attribute__((target("avx2,f16c"))) void canvas_row_avx2(WindowedRows<T>& src, const LetterboxGeometry& g,
                                                     const Tables& tb, const PreprocessParams& p, float pad,
                                                     int64_t y, RowScratch& s, O* out) {
  canvas_row<kLanes, T, O>(src, g, tb, p, pad, y, s, out);
}
#endif

// One image: canvas rows in parallel (one parallel region per image; the row's vertical result is consumed from
// cache right away).
template <class T, class O>
void resample(const T* img, const LetterboxGeometry& g, const Tables& tb, const WindowCoef& c,
              const PreprocessParams& p, float pad, O* plane) {
  const int64_t w = g.in_w;
  const int ty = tb.ay.taps, tx = tb.ax.taps;
  const int64_t work = g.new_h * (w * ty + g.new_w * tx) + g.out_h * g.out_w;
#ifdef RAMH_PREPROCESS_AVX2
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
#endif
#ifdef RAMH_WITH_OPENMP
#pragma omp parallel if (work >= kMinParallelWork)
#endif
  {
    WindowedRows<T> src(img, w, ty, c);
    RowScratch s;
    s.rows.resize(ty);
    s.ws.resize(ty);
    s.line.resize(w);
    // Dynamic chunks of 16 rows: a thread that is descheduled (a busy machine) does not hold the others up; within a
    // chunk the rows are consecutive, so the ring still windows each source row about once.
#ifdef RAMH_WITH_OPENMP
#pragma omp for schedule(dynamic, 16)
#endif
    for (int64_t y = 0; y < g.out_h; ++y) {
      O* out = plane + y * g.out_w;
#ifdef RAMH_PREPROCESS_AVX2
      if (avx2) {
        canvas_row_avx2<T, O>(src, g, tb, p, pad, y, s, out);
        continue;
      }
#endif
      canvas_row_base<T, O>(src, g, tb, p, pad, y, s, out);
    }
  }
}

template <class T>
void run(const Tensor& image, const Tensor* window, const PreprocessParams& p, Tensor& out, float* window_out) {
  const int64_t n_img = image.ndim() == 3 ? image.dim(0) : 1;
  const int64_t h = image.dim(-2), w = image.dim(-1), npx = h * w;
  const T* base = image.ptr<T>();

  // Float images: finiteness (all images, so that the error can say how many) and per-image range.
  std::vector<FloatStats> stats;
  if constexpr (std::is_same_v<T, float>) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n_img; ++i) {
      stats.push_back(float_stats(base + i * npx, npx));
      bad += stats.back().nonfinite;
    }
    if (bad > 0)
      fail("image contains ", bad, " non-finite value", bad == 1 ? "" : "s", " (NaN or inf) out of ", n_img * npx,
           "; replace them (e.g. numpy.nan_to_num) before preprocessing");
    for (int64_t i = 0; i < n_img; ++i)
      if (!std::isfinite(stats[i].mx - stats[i].mn))
        fail("image", n_img > 1 ? "[" : "", n_img > 1 ? std::to_string(i) : std::string(), n_img > 1 ? "]" : "",
             " has a value range max - min that overflows float32 (min ", stats[i].mn, ", max ", stats[i].mx, ")");
  }

  for (int64_t i = 0; i < n_img; ++i) {
    const T* img = base + i * npx;
    if (window) {
      const float* wv = window->ptr<float>() + (window->ndim() == 1 ? 0 : 2 * i);
      window_out[2 * i] = wv[0];
      window_out[2 * i + 1] = wv[1];
    } else {
      percentile_window<T>(img, npx, p, stats.empty() ? nullptr : &stats[i], &window_out[2 * i],
                           &window_out[2 * i + 1]);
    }
  }

  const LetterboxGeometry g = letterbox_geometry(h, w, p.out_h, p.out_w);
  const Tables tb = make_tables(g, p.antialias);
  const float pad = p.pad_value ? *p.pad_value : detail::normalise(0.0f, p.mean, p.std);
  const int64_t plane = g.out_h * g.out_w;
  for (int64_t i = 0; i < n_img; ++i) {
    const WindowCoef c = detail::window_coef(window_out[2 * i], window_out[2 * i + 1]);
    if (out.dtype == DType::F32)
      resample<T, float>(base + i * npx, g, tb, c, p, pad, out.ptr<float>() + i * plane);
    else
      resample<T, uint16_t>(base + i * npx, g, tb, c, p, pad, out.ptr<uint16_t>() + i * plane);
  }
}

}  // namespace

void preprocess(const Tensor& image, const Tensor* window, const PreprocessParams& params, Tensor& out,
                float* window_out, void* /*stream*/) {
  switch (image.dtype) {
    case DType::U8: run<uint8_t>(image, window, params, out, window_out); break;
    case DType::U16: run<uint16_t>(image, window, params, out, window_out); break;
    case DType::F32: run<float>(image, window, params, out, window_out); break;
    default: fail("image must be uint8, uint16 or float32, got ", dtype_name(image.dtype));
  }
}

}  // namespace ramh::cpu
