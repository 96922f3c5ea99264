// ramh/hd_math.hpp — arithmetic shared by the CPU twins and the CUDA kernels, written so that both produce the same
// bits: float -> IEEE half conversion (round to nearest, ties to even) and float multiply/add without contraction.
//
// Why: nvcc fuses a*b+c into one FMA (one rounding) by default, while the host compiler does not on x86-64 (and is
// told not to elsewhere, -ffp-contract=off). Where a result must match across devices bit for bit (sample positions
// that decide a nearest-neighbour pick, the values that become float16), the kernels spell every rounding out with
// these helpers and the CPU code performs the same operations in the same order.
#pragma once

#include <cstdint>
#include <cstring>

// RAMH_HD marks a function compiled for both host and device (the one definition: every header whose code the CPU
// twins and the kernels share includes this one).
#if defined(__CUDACC__)
#define RAMH_HD __host__ __device__ __forceinline__
#else
#define RAMH_HD inline
#endif

namespace ramh {

// Product and sum, each rounded to nearest even on its own (never fused into an FMA).
RAMH_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
RAMH_HD double dmul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
RAMH_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
RAMH_HD float sub_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}

RAMH_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

// IEEE binary16 bits of `f`, rounded to nearest with ties to even (what numpy's astype(float16) does): overflow to
// +-inf from 65520 up, gradual underflow to subnormals, signed zeros kept, NaN stays a (quiet) NaN.
RAMH_HD uint16_t float_to_half_bits(float f) {
  const uint32_t x = float_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 (the tie above 65504) or inf
  if (a < 0x38800000u) {
    // |f| < 2^-14: a half subnormal, q * 2^-24. With mantissa m (implicit bit set) and biased exponent e,
    // |f| = m * 2^(e-150), so q = round(m / 2^(126-e)).
    const uint32_t e = a >> 23;
    if (e < 102) return static_cast<uint16_t>(sign);  // |f| < 2^-25 rounds to zero
    const uint32_t m = (a & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;  // 14..24
    const uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    // Round up above the half-way point, and at it when q is odd; a carry into the smallest normal is still right.
    return static_cast<uint16_t>(sign | (q + ((rem > half) | ((rem == half) & q & 1u))));
  }
  // Normal: re-bias the exponent (127 -> 15) and keep the top 10 mantissa bits, rounding on the 13 dropped ones
  // (arithmetic, not branches: the dropped bits of image data are unpredictable). A carry into the exponent is the
  // correct result.
  const uint32_t q = (a - 0x38000000u) >> 13;
  const uint32_t rem = a & 0x1fffu;
  return static_cast<uint16_t>(sign | (q + ((rem > 0x1000u) | ((rem == 0x1000u) & q & 1u))));
}

}  // namespace ramh
