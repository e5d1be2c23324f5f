// The fixed-point arithmetic contract shared by the device (accel_sim) and the server.
//
// A tensor element q with `frac` fractional bits stands for the real value q * 2^-frac.
// Every rounding in R2F is "round half up" (floor(x + 1/2)) followed by saturation to int8;
// the server's fake-quant forward computes floor(z * 2^frac + 0.5) on exact double values and
// so reproduces these integer results bit for bit (see docs/quantization.md).
#pragma once

#include <algorithm>
#include <cstdint>

namespace r2f {

inline int8_t SaturateInt8(int64_t v) {
  return static_cast<int8_t>(std::clamp<int64_t>(v, INT8_MIN, INT8_MAX));
}

// floor(v * 2^-shift + 1/2) for shift > 0, v * 2^-shift (exact) for shift <= 0.
// Callers keep |shift| <= 40 (checked when a model is loaded).
inline int64_t RoundShift(int64_t v, int shift) {
  if (shift > 0) return (v + (int64_t{1} << (shift - 1))) >> shift;  // arithmetic shift: floor
  return v * (int64_t{1} << (-shift));
}

// floor(num / den + 1/2) for den > 0, in exact integer arithmetic.
inline int64_t RoundDiv(int64_t num, int64_t den) {
  int64_t n2 = 2 * num + den;
  int64_t d2 = 2 * den;
  int64_t q = n2 / d2;
  if ((n2 % d2 != 0) && ((n2 < 0) != (d2 < 0))) --q;  // C++ truncates; we want floor
  return q;
}

}  // namespace r2f
