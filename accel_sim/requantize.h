// Requantisation of int32 accumulators to int8 outputs (docs/quantization.md, conv / linear):
// y = sat8(act(RoundShift(acc, shift))). The row kernels are written so that the compiler
// vectorises them (int32 only, no branches in the loop); they equal the scalar definition.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "common/ir/fixed_point.h"

namespace r2f::accel {

// The definition, for any shift in [-kMaxMacLeftShift, kMaxRightShift].
inline int8_t RequantizeScalar(int32_t acc, int shift, bool relu) {
  int64_t v = RoundShift(acc, shift);
  if (relu && v < 0) v = 0;
  return SaturateInt8(v);
}

// RequantizeScalar(a, shift, relu) for 1 <= shift <= 31, with lo = 0 (ReLU) or -128, as
// floor((a + 2^(s-1)) / 2^s) = (a >> s) + ((a >> (s-1)) & 1), which cannot overflow int32
// (writing a = q*2^s + r, both sides are q + [r >= 2^(s-1)]). Branch-free: loops of it
// vectorise.
inline int8_t RequantizeShifted(int32_t a, int shift, int32_t lo) {
  int32_t v = (a >> shift) + ((a >> (shift - 1)) & 1);
  v = v < lo ? lo : v;
  v = v > 127 ? 127 : v;
  return static_cast<int8_t>(v);
}

// out[i] = RequantizeScalar(acc[i] + bias, shift, relu) for i < n, for 1 <= shift <= 31, with
// lo = 0 (ReLU) or -128: the clean epilogue's kernel (requantize.cc), AVX-512 or AVX2 when the
// CPU has it, else portable. Requires acc[i] + bias to fit int32 (CompiledModel's bias limit).
void RequantizeRowShifted(const int32_t* acc, int64_t n, int32_t bias, int shift, int32_t lo,
                          int8_t* out);

// Every implementation of RequantizeRowShifted this CPU can run, named ("portable", "avx2",
// "avx512"): for tests, which check each of them.
using RequantizeRowFn = void (*)(const int32_t*, int64_t, int32_t, int, int32_t, int8_t*);
std::vector<std::pair<const char*, RequantizeRowFn>> RequantizeRowKernels();

// The epilogue of a TMR-voted row: out[i] = the bitwise majority (tmr_voter.h) of the three
// replicas' RequantizeShifted(acc[i] + bias + d[r][i], shift, lo), each sum taken modulo 2^32
// (the caller guarantees that every replica's true sum fits int32, so it is exact). Same
// conditions on shift and lo as RequantizeRowShifted; AVX-512F or AVX2 when the CPU has it,
// else portable.
void RequantizeVoteShifted(const int32_t* acc, const uint32_t* const d[3], int64_t n, int32_t bias,
                           int shift, int32_t lo, int8_t* out);

// Every implementation of RequantizeVoteShifted this CPU can run, named: for tests.
using RequantizeVoteFn = void (*)(const int32_t*, const uint32_t* const*, int64_t, int32_t, int,
                                  int32_t, int8_t*);
std::vector<std::pair<const char*, RequantizeVoteFn>> RequantizeVoteKernels();

// out[i] = RequantizeScalar(acc[i] + bias, shift, relu) for i < n (RequantizeShifted for
// 1 <= shift <= 31). Requires acc[i] + bias to fit int32 (guaranteed by CompiledModel's bias
// limit).
inline void RequantizeRow(const int32_t* acc, int64_t n, int32_t bias, int shift, bool relu,
                          int8_t* out) {
  if (shift >= 1 && shift <= 31) {
    RequantizeRowShifted(acc, n, bias, shift, relu ? 0 : -128, out);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = RequantizeScalar(acc[i] + bias, shift, relu);
  }
}

// out[i] = RequantizeScalar(acc[i] + bias + delta[i], shift, relu), the sum taken modulo 2^32
// (the caller guarantees that the true sum fits int32, so it is exact).
inline void RequantizeRowDelta(const int32_t* acc, const uint32_t* delta, int64_t n, int32_t bias,
                               int shift, bool relu, int8_t* out) {
  const int32_t lo = relu ? 0 : -128;
  const auto ubias = static_cast<uint32_t>(bias);
  if (shift >= 1 && shift <= 31) {
    for (int64_t i = 0; i < n; ++i) {
      const auto a = static_cast<int32_t>(static_cast<uint32_t>(acc[i]) + ubias + delta[i]);
      out[i] = RequantizeShifted(a, shift, lo);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const auto a = static_cast<int32_t>(static_cast<uint32_t>(acc[i]) + ubias + delta[i]);
      out[i] = RequantizeScalar(a, shift, relu);
    }
  }
}

}  // namespace r2f::accel
