// CPU twin of the postprocess family (the gold reference). One plane = one (image, channel) pair; planes run in
// parallel with OpenMP, each on its own scratch space, and results are gathered in plane order, so nothing depends
// on the thread count. Per plane: one raster pass thresholds rows into bytes and extracts runs, the runs are
// labelled (ramh/detail/ccl.hpp), the kept components' runs are written to the mask and their statistics summed in
// closed form per run; only the score needs the pixels again, and only the kept ones.
// FP comparisons in the row and score loops must be if-converted for them to vectorise; GCC only does that when
// it may assume no FP traps (nothing here enables them). Placed before the includes so that every function of this
// file has the same options and inlines freely. Results are unaffected.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <algorithm>
#include <cstring>
#include <limits>

#include "ramh/detail/ccl.hpp"
#include "ramh/detail/postprocess_impl.hpp"
#include "ramh/postprocess.hpp"

#ifdef RAMH_WITH_OPENMP
#include <omp.h>
#endif

namespace ramh::cpu {
namespace {

using detail::Connectivity;
using detail::PostprocessPlan;
using detail::RawInstance;
using detail::Run;

// ---- float16 -------------------------------------------------------------------------------------------------------
float half_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: mant * 2^-24, exact in float
      float v = static_cast<float>(mant) * (1.0f / 16777216.0f);
      std::memcpy(&bits, &v, 4);
      bits |= sign;
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

const float* half_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t h = 0; h < 65536; ++h) t[h] = half_bits_to_float(static_cast<uint16_t>(h));
    return t;
  }();
  return table.data();
}

// Total order key of a float16 (sign-magnitude -> integer): key(a) < key(b) <=> value(a) < value(b) for non-NaN
// halves, and +-0 share key 0. Lets multilabel thresholding of float16 run on integers without widening.
inline int32_t half_key(uint16_t h) {
  const int32_t mag = h & 0x7FFF;
  return (h & 0x8000) ? -mag : mag;
}

// Smallest non-NaN key whose value is > t (0x7C01 when none is): value > t <=> key >= that, for non-NaN halves.
int32_t half_threshold_key(float t) {
  int32_t lo = -0x7C00, hi = 0x7C01;  // search [lo, hi); hi stands for "none"
  while (lo < hi) {
    const int32_t mid = lo + (hi - lo) / 2;
    const uint16_t bits = static_cast<uint16_t>(mid >= 0 ? mid : (0x8000 | -mid));
    if (half_bits_to_float(bits) > t)
      hi = mid;
    else
      lo = mid + 1;
  }
  return lo;
}

// ---- vectorisable exp -------------------------------------------------------------------------------------------
// expf as straight-line arithmetic (Cephes' range reduction and polynomial, ~1 ulp on the clamped range) so that
// loops over it vectorise; scalar expf calls cost 5-10x more and the score touches every kept pixel. Inputs are
// clamped to [-87, 88]: below, the true value (< 2^-125) only ever enters as a negligible addend; +-inf and
// saturated logits therefore give 0 or 1 exactly as the CUDA path's expf does after rounding.
inline float exp_poly(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to the nearest integer
  const float n = (x * 1.44269504088896341f + shifter) - shifter;
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // A NaN passes the clamps and stays NaN through p; its float-to-int conversion would be undefined behaviour
  // (UBSan caught it in the float16 table), so the exponent is taken from 0 instead. n + 127 lies in [1, 254].
  const float n_finite = n == n ? n : 0.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n_finite) + 127) << 23;
  return p * __builtin_bit_cast(float, bits);  // 2^n (GCC >= 11, Clang): a memcpy here would block vectorisation
}

inline float sigmoid_fast(float logit) { return 1.0f / (1.0f + exp_poly(-logit)); }

// sigmoid of every float16 value: the score of float16 logits is one lookup.
const float* half_sigmoid_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t h = 0; h < 65536; ++h) t[h] = sigmoid_fast(half_bits_to_float(static_cast<uint16_t>(h)));
    return t;
  }();
  return table.data();
}

// Row kernels: plain loops over restrict pointers so that the compiler vectorises them. They return 1 when the
// row holds a NaN.
int threshold_row_f32(const float* __restrict src, uint8_t* __restrict row, int w, float t) {
  int bad = 0;
  for (int x = 0; x < w; ++x) {
    const float v = src[x];
    row[x] = v > t;
    bad |= v != v;
  }
  return bad;
}

int threshold_row_f16(const uint16_t* __restrict src, uint8_t* __restrict row, int w, int32_t key_t) {
  int bad = 0;
  for (int x = 0; x < w; ++x) {
    const int32_t mag = src[x] & 0x7FFF;
    const int32_t key = (src[x] & 0x8000) ? -mag : mag;
    bad |= mag > 0x7C00;
    row[x] = static_cast<uint8_t>((mag <= 0x7C00) & (key >= key_t));
  }
  return bad;
}

void argmax_row_match(const uint16_t* __restrict am, uint8_t* __restrict row, int w, uint16_t c) {
  for (int x = 0; x < w; ++x) row[x] = am[x] == c;
}

void sigmoid_block(const float* __restrict src, float* __restrict out, int n) {
  for (int x = 0; x < n; ++x) out[x] = sigmoid_fast(src[x]);
}

double sigmoid_sum_f32(const float* src, int n) {
  constexpr int kBlock = 256;
  float buf[kBlock];
  double sum = 0.0;
  for (int x = 0; x < n; x += kBlock) {
    const int m = std::min(kBlock, n - x);
    sigmoid_block(src + x, buf, m);
    sum += detail::sum_as_double(buf, m);
  }
  return sum;
}

void softmax_block(const float* __restrict l, const float* __restrict m, const float* __restrict d,
                   float* __restrict out, int n) {
  for (int x = 0; x < n; ++x) out[x] = (l[x] == m[x] ? 1.0f : exp_poly(l[x] - m[x])) / d[x];
}

double sigmoid_sum_f16(const uint16_t* __restrict src, int n, const float* __restrict table) {
  double sum = 0.0;
  for (int x = 0; x < n; ++x) sum += static_cast<double>(table[src[x]]);
  return sum;
}

// ---- per-pixel access ------------------------------------------------------------------------------------------------
struct Input {
  const PostprocessPlan* plan;
  const void* data;
  const float* half_lut = nullptr;      // float16 -> float
  const float* half_sigmoid = nullptr;  // float16 -> sigmoid
  // Multiclass side arrays over N x H x W: argmax channel, max logit and softmax denominator.
  uint16_t* argmax = nullptr;
  float* max_logit = nullptr;
  float* denom = nullptr;

  int64_t row_offset(int64_t n, int64_t c, int64_t y) const { return ((n * plan->c + c) * plan->h + y) * plan->w; }
};

// Multiclass pre-pass for one row of one image: argmax over channels (strict >, so ties keep the lowest channel),
// the max and the softmax denominator; returns the lowest channel holding a NaN in this row, or -1.
int64_t argmax_row(const Input& in, int64_t n, int64_t y, std::vector<float>& buf) {
  const PostprocessPlan& p = *in.plan;
  const int W = static_cast<int>(p.w);
  const int64_t pix = (n * p.h + y) * p.w;
  uint16_t* __restrict am = in.argmax + pix;
  float* __restrict best = in.max_logit + pix;
  float* __restrict sum = in.denom + pix;
  buf.resize(static_cast<std::size_t>(W));
  float* __restrict v = buf.data();
  auto load = [&](int64_t c) {
    const int64_t off = in.row_offset(n, c, y);
    if (p.half) {
      const uint16_t* src = static_cast<const uint16_t*>(in.data) + off;
      for (int x = 0; x < W; ++x) v[x] = in.half_lut[src[x]];
    } else {
      std::memcpy(v, static_cast<const float*>(in.data) + off, static_cast<std::size_t>(W) * sizeof(float));
    }
  };
  int64_t nan_channel = -1;
  for (int64_t c = 0; c < p.c; ++c) {
    load(c);
    int nan = 0;
    if (c == 0) {
      for (int x = 0; x < W; ++x) {
        best[x] = v[x];
        am[x] = 0;
        nan |= v[x] != v[x];
      }
    } else {
      const auto cc = static_cast<uint16_t>(c);
      for (int x = 0; x < W; ++x) {
        const bool better = v[x] > best[x];
        best[x] = better ? v[x] : best[x];
        am[x] = better ? cc : am[x];
        nan |= v[x] != v[x];
      }
    }
    if (nan && nan_channel < 0) nan_channel = c;
  }
  if (nan_channel >= 0) return nan_channel;  // the op fails; no need for the denominators
  for (int x = 0; x < W; ++x) sum[x] = 0.0f;
  for (int64_t c = 0; c < p.c; ++c) {
    load(c);
    for (int x = 0; x < W; ++x) sum[x] += v[x] == best[x] ? 1.0f : exp_poly(v[x] - best[x]);
  }
  return -1;
}

// ---- one plane ---------------------------------------------------------------------------------------------------------
struct Scratch {
  detail::RunLabeler fg, bg;
  std::vector<Run> kept, holes;
  std::vector<int32_t> instance_of;  // component -> instance index in the plane, -1 if dropped
  std::vector<double> score;         // per instance: sum of the pixel scores
};

// Adds a run's pixels to an instance: closed-form sums for the geometry, per-pixel scores.
void accumulate_run(const Input& in, int64_t n, int64_t c, const Run& r, RawInstance& s, double& score) {
  const PostprocessPlan& p = *in.plan;
  const int64_t len = r.x1 - r.x0, y = r.y;
  const int64_t sx = detail::run_sum_x(r.x0, r.x1);
  s.area += static_cast<unsigned long long>(len);
  s.sx += static_cast<unsigned long long>(sx);
  s.sxx += static_cast<unsigned long long>(detail::run_sum_xx(r.x0, r.x1));
  s.sy += static_cast<unsigned long long>(len * y);
  s.syy += static_cast<unsigned long long>(len * y * y);
  s.sxy += static_cast<unsigned long long>(sx * y);
  s.x0 = std::min(s.x0, r.x0);
  s.x1 = std::max(s.x1, r.x1 - 1);
  s.y0 = std::min(s.y0, r.y);
  s.y1 = std::max(s.y1, r.y);
  const int64_t off = in.row_offset(n, c, y) + r.x0;
  const int count = static_cast<int>(len);
  if (p.mode == MaskMode::Multilabel) {
    score += p.half ? sigmoid_sum_f16(static_cast<const uint16_t*>(in.data) + off, count, in.half_sigmoid)
                    : sigmoid_sum_f32(static_cast<const float*>(in.data) + off, count);
  } else {
    const int64_t pix = (n * p.h + y) * p.w + r.x0;
    const float* m = in.max_logit + pix;
    const float* d = in.denom + pix;
    double sum = 0.0;
    if (p.half) {
      const uint16_t* src = static_cast<const uint16_t*>(in.data) + off;
      for (int x = 0; x < count; ++x) {
        const float l = in.half_lut[src[x]];
        sum += static_cast<double>((l == m[x] ? 1.0f : exp_poly(l - m[x])) / d[x]);
      }
    } else {
      const float* src = static_cast<const float*>(in.data) + off;
      constexpr int kBlock = 256;
      float buf[kBlock];
      for (int x0 = 0; x0 < count; x0 += kBlock) {
        const int k = std::min(kBlock, count - x0);
        softmax_block(src + x0, m + x0, d + x0, buf, k);
        sum += detail::sum_as_double(buf, k);
      }
    }
    score += sum;
  }
}

// Labels plane (n, c), writes its mask and appends its instances; returns true if the plane holds a NaN logit
// (multilabel; the multiclass pre-pass checks NaN itself).
bool process_plane(const Input& in, int64_t n, int64_t c, uint8_t* mask, Scratch& s, std::vector<RawInstance>& out) {
  const PostprocessPlan& p = *in.plan;
  const int W = static_cast<int>(p.w), H = static_cast<int>(p.h);
  int nan = 0;
  detail::RunLabeler::RowFn fill_row;
  if (p.mode == MaskMode::Multiclass) {
    const uint16_t* am = in.argmax + n * p.h * p.w;
    const auto cc = static_cast<uint16_t>(c);
    fill_row = [am, W, cc](int y, uint8_t* row) { argmax_row_match(am + static_cast<int64_t>(y) * W, row, W, cc); };
  } else if (p.half) {
    const uint16_t* src = static_cast<const uint16_t*>(in.data) + in.row_offset(n, c, 0);
    const int32_t key_t = half_threshold_key(p.thresholds[static_cast<std::size_t>(c)]);
    fill_row = [src, W, key_t, &nan](int y, uint8_t* row) {
      nan |= threshold_row_f16(src + static_cast<int64_t>(y) * W, row, W, key_t);
    };
  } else {
    const float* src = static_cast<const float*>(in.data) + in.row_offset(n, c, 0);
    const float t = p.thresholds[static_cast<std::size_t>(c)];
    fill_row = [src, W, t, &nan](int y, uint8_t* row) {
      nan |= threshold_row_f32(src + static_cast<int64_t>(y) * W, row, W, t);
    };
  }
  const int ncomp = s.fg.label(H, W, Connectivity::Eight, fill_row);

  // Selection on the pixel count before hole filling; components are in raster order of their first pixel, so the
  // first maximum is the tie winner and kept components are numbered in raster order.
  const auto& areas = s.fg.areas();
  s.instance_of.assign(static_cast<std::size_t>(ncomp), -1);
  int32_t n_inst = 0;
  if (p.keep_all[static_cast<std::size_t>(c)]) {
    for (int k = 0; k < ncomp; ++k)
      if (areas[k] >= p.min_area) s.instance_of[k] = n_inst++;
  } else if (ncomp > 0) {
    int best = 0;
    for (int k = 1; k < ncomp; ++k)
      if (areas[k] > areas[best]) best = k;
    if (areas[best] >= p.min_area) s.instance_of[best] = n_inst++;
  }

  std::memset(mask, 0, static_cast<std::size_t>(p.h * p.w));
  if (n_inst == 0) return nan != 0;

  const std::size_t base = out.size();
  for (int k = 0; k < ncomp; ++k) {
    if (s.instance_of[k] < 0) continue;
    const Run& f = s.fg.runs()[s.fg.first_run()[k]];
    RawInstance r{};
    r.batch = static_cast<int32_t>(n);
    r.channel = static_cast<int32_t>(c);
    r.index = s.instance_of[k];
    r.first = static_cast<int32_t>(f.y * p.w + f.x0);
    r.x0 = r.y0 = std::numeric_limits<int32_t>::max();
    r.x1 = r.y1 = -1;
    out.push_back(r);
  }
  s.score.assign(static_cast<std::size_t>(n_inst), 0.0);
  s.kept.clear();
  for (const Run& r : s.fg.runs()) {
    const int32_t inst = s.instance_of[r.label];
    if (inst < 0) continue;
    s.kept.push_back({r.y, r.x0, r.x1, inst});
    std::memset(mask + r.y * p.w + r.x0, 1, static_cast<std::size_t>(r.x1 - r.x0));
    accumulate_run(in, n, c, r, out[base + inst], s.score[inst]);
  }
  if (p.fill_holes) {
    detail::find_holes(s.kept, s.bg, s.holes);
    for (const Run& h : s.holes) {
      const int32_t inst = s.kept[static_cast<std::size_t>(h.label)].label;
      std::memset(mask + h.y * p.w + h.x0, 1, static_cast<std::size_t>(h.x1 - h.x0));
      accumulate_run(in, n, c, h, out[base + inst], s.score[inst]);
    }
  }
  // The CUDA path sums each pixel's score in 32.32 fixed point; the CPU sums in double and converts once.
  for (int32_t i = 0; i < n_inst; ++i)
    out[base + i].score_q = static_cast<unsigned long long>(s.score[i] * detail::kScoreScale + 0.5);
  return nan != 0;
}

}  // namespace

std::vector<InstanceRecord> postprocess_masks(const Tensor& logits, const Tensor& masks,
                                              const PostprocessParams& params) {
  const PostprocessPlan p = detail::plan_postprocess(logits, masks, params);
  if (logits.on_cuda()) fail("cpu::postprocess_masks needs host tensors, got logits on CUDA device ", logits.device_id);

  Input in{&p, logits.data};
  if (p.half) {
    in.half_lut = half_table();
    in.half_sigmoid = half_sigmoid_table();
  }
  const int64_t planes = p.planes(), npix = p.n * p.h * p.w;
  const bool parallel = planes * p.h * p.w >= detail::kParallelMinValues;
  constexpr int64_t kNoNan = std::numeric_limits<int64_t>::max();

  std::vector<uint16_t> argmax;
  std::vector<float> max_logit, denom;
  if (p.mode == MaskMode::Multiclass) {
    argmax.resize(static_cast<std::size_t>(npix));
    max_logit.resize(static_cast<std::size_t>(npix));
    denom.resize(static_cast<std::size_t>(npix));
    in.argmax = argmax.data();
    in.max_logit = max_logit.data();
    in.denom = denom.data();
    std::vector<int64_t> row_nan(static_cast<std::size_t>(p.n * p.h), -1);
#pragma omp parallel if (parallel)
    {
      std::vector<float> buf;
#pragma omp for schedule(static)
      for (int64_t r = 0; r < p.n * p.h; ++r) row_nan[r] = argmax_row(in, r / p.h, r % p.h, buf);
    }
    int64_t first_nan = kNoNan;
    for (int64_t r = 0; r < p.n * p.h; ++r)
      if (row_nan[r] >= 0) first_nan = std::min(first_nan, (r / p.h) * p.c + row_nan[r]);
    if (first_nan != kNoNan) detail::throw_nan_logits(p, first_nan);
  }

  std::vector<std::vector<RawInstance>> per_plane(static_cast<std::size_t>(planes));
  std::vector<uint8_t> plane_nan(static_cast<std::size_t>(planes), 0);
  uint8_t* mask_base = masks.ptr<uint8_t>();
#pragma omp parallel if (parallel)
  {
    Scratch scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t pl = 0; pl < planes; ++pl)
      plane_nan[pl] = process_plane(in, pl / p.c, pl % p.c, mask_base + pl * p.h * p.w, scratch, per_plane[pl]);
  }
  for (int64_t pl = 0; pl < planes; ++pl)
    if (plane_nan[pl]) detail::throw_nan_logits(p, pl);

  std::vector<InstanceRecord> table;
  for (const auto& v : per_plane)
    for (const RawInstance& r : v) table.push_back(detail::finalize_instance(r));
  return table;
}

}  // namespace ramh::cpu
