// RequantizeRowShifted (requantize.h): the clean epilogue's requantisation of int32 rows to int8,
// chosen at run time (AVX-512F, AVX2, portable). All three compute, per element,
//   a = acc + bias; v = (a >> s) + ((a >> (s-1)) & 1); clamp(v, lo, 127)
// in int32: the identity of requantize.h, no overflow. The clamp to 127 is done by saturating
// narrowing (vpmovsdb; vpackssdw + vpacksswb), which saturates at [-128, 127] and so equals the
// clamp once v >= lo >= -128.
#include "accel_sim/requantize.h"

#include "accel_sim/tmr_voter.h"
#include "common/base/cpu_features.h"
#include "common/base/x86_intrinsics.h"

namespace r2f::accel {
namespace {

void RowPortable(const int32_t* acc, int64_t n, int32_t bias, int shift, int32_t lo, int8_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = RequantizeShifted(acc[i] + bias, shift, lo);
}

void VotePortable(const int32_t* acc, const uint32_t* const d[3], int64_t n, int32_t bias,
                  int shift, int32_t lo, int8_t* out) {
  // Local pointers: a store through int8_t* may alias d[], which would otherwise be reloaded
  // every element and keep the loop from vectorising.
  const uint32_t *d0 = d[0], *d1 = d[1], *d2 = d[2];
  const auto ubias = static_cast<uint32_t>(bias);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t a = static_cast<uint32_t>(acc[i]) + ubias;
    out[i] = MajorityVote(RequantizeShifted(static_cast<int32_t>(a + d0[i]), shift, lo),
                          RequantizeShifted(static_cast<int32_t>(a + d1[i]), shift, lo),
                          RequantizeShifted(static_cast<int32_t>(a + d2[i]), shift, lo));
  }
}

#ifdef R2F_X86
// The bitwise majority of three vectors of 16 bytes (MajorityVote, tmr_voter.h).
inline __m128i Majority16(__m128i a, __m128i b, __m128i c) {
  return _mm_or_si128(_mm_and_si128(a, _mm_or_si128(b, c)), _mm_and_si128(b, c));
}

// The constants of the AVX-512 requantisation of one row.
struct Shift16 {
  __m512i bias, lo, one;
  __m128i s, s1;
};

__attribute__((target("avx512f"))) inline Shift16 MakeShift16(int32_t bias, int shift, int32_t lo) {
  return {_mm512_set1_epi32(bias), _mm512_set1_epi32(lo), _mm512_set1_epi32(1),
          _mm_cvtsi32_si128(shift), _mm_cvtsi32_si128(shift - 1)};
}

// (a >> s) + ((a >> (s-1)) & 1), at least lo, for a = acc + bias already added.
__attribute__((target("avx512f"))) inline __m512i Requant16(__m512i a, const Shift16& k) {
  const __m512i v = _mm512_add_epi32(_mm512_sra_epi32(a, k.s),
                                     _mm512_and_si512(_mm512_sra_epi32(a, k.s1), k.one));
  return _mm512_max_epi32(v, k.lo);
}

__attribute__((target("avx512f"))) void RowAvx512(const int32_t* acc, int64_t n, int32_t bias,
                                                  int shift, int32_t lo, int8_t* out) {
  const Shift16 k = MakeShift16(bias, shift, lo);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i a = _mm512_add_epi32(_mm512_loadu_si512(acc + i), k.bias);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm512_cvtsepi32_epi8(Requant16(a, k)));
  }
  if (i < n) {  // masked tail: lanes beyond n are neither read nor written
    const auto m = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512i a = _mm512_add_epi32(_mm512_maskz_loadu_epi32(m, acc + i), k.bias);
    _mm512_mask_cvtsepi32_storeu_epi8(out + i, m, Requant16(a, k));
  }
}

// One replica's 16 outputs: a = acc + bias, plus the replica's deltas, requantised and
// narrowed with saturation.
__attribute__((target("avx512f"))) inline __m128i ReplicaBytes16(__m512i a, const uint32_t* delta,
                                                                 const Shift16& k) {
  const __m512i sum = _mm512_add_epi32(a, _mm512_loadu_si512(delta));
  return _mm512_cvtsepi32_epi8(Requant16(sum, k));
}

__attribute__((target("avx512f"))) void VoteAvx512(const int32_t* acc, const uint32_t* const d[3],
                                                   int64_t n, int32_t bias, int shift, int32_t lo,
                                                   int8_t* out) {
  const Shift16 k = MakeShift16(bias, shift, lo);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i a = _mm512_add_epi32(_mm512_loadu_si512(acc + i), k.bias);
    const __m128i q0 = ReplicaBytes16(a, d[0] + i, k);
    const __m128i q1 = ReplicaBytes16(a, d[1] + i, k);
    const __m128i q2 = ReplicaBytes16(a, d[2] + i, k);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), Majority16(q0, q1, q2));
  }
  if (i < n) {
    // Masked tail: lanes beyond n are neither read nor written. The replicas' values are voted
    // as int32 clamped to [lo, 127]: sign-extended bytes, whose bitwise majority is the
    // sign-extended majority of the bytes, so the saturating narrowing after it is exact.
    const auto m = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512i a = _mm512_add_epi32(_mm512_maskz_loadu_epi32(m, acc + i), k.bias);
    const __m512i hi = _mm512_set1_epi32(127);
    __m512i q[3];
    for (int r = 0; r < 3; ++r) {
      const __m512i sum = _mm512_add_epi32(a, _mm512_maskz_loadu_epi32(m, d[r] + i));
      q[r] = _mm512_min_epi32(Requant16(sum, k), hi);
    }
    constexpr int kMajority = 0xE8;  // ternary-logic table of (a & b) | (a & c) | (b & c)
    _mm512_mask_cvtsepi32_storeu_epi8(out + i, m,
                                      _mm512_ternarylogic_epi32(q[0], q[1], q[2], kMajority));
  }
}

// The constants of the AVX2 requantisation of one row.
struct Shift8 {
  __m256i bias, lo, one, order;
  __m128i s, s1;
};

__attribute__((target("avx2"))) inline Shift8 MakeShift8(int32_t bias, int shift, int32_t lo) {
  // The packs work per 128-bit lane: dwords of the packed bytes are
  // [a0-3 b0-3 a0-3 b0-3 | a4-7 b4-7 ...]; `order` puts a0-7 b0-7 first.
  return {_mm256_set1_epi32(bias),  _mm256_set1_epi32(lo),
          _mm256_set1_epi32(1),     _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7),
          _mm_cvtsi32_si128(shift), _mm_cvtsi32_si128(shift - 1)};
}

// (a >> s) + ((a >> (s-1)) & 1), at least lo, for a = acc + bias already added.
__attribute__((target("avx2"))) inline __m256i Requant8(__m256i a, const Shift8& k) {
  const __m256i v = _mm256_add_epi32(_mm256_sra_epi32(a, k.s),
                                     _mm256_and_si256(_mm256_sra_epi32(a, k.s1), k.one));
  return _mm256_max_epi32(v, k.lo);
}

// 16 requantised values (a: the first 8, b: the next 8) narrowed with saturation, in order.
__attribute__((target("avx2"))) inline __m128i Narrow16(__m256i a, __m256i b, const Shift8& k) {
  const __m256i p = _mm256_packs_epi32(a, b);  // saturating: int16
  const __m256i q = _mm256_packs_epi16(p, p);  // saturating: int8
  return _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(q, k.order));
}

__attribute__((target("avx2"))) inline __m256i Load8(const void* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

__attribute__((target("avx2"))) void RowAvx2(const int32_t* acc, int64_t n, int32_t bias, int shift,
                                             int32_t lo, int8_t* out) {
  const Shift8 k = MakeShift8(bias, shift, lo);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i a = Requant8(_mm256_add_epi32(Load8(acc + i), k.bias), k);
    const __m256i b = Requant8(_mm256_add_epi32(Load8(acc + i + 8), k.bias), k);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), Narrow16(a, b, k));
  }
  RowPortable(acc + i, n - i, bias, shift, lo, out + i);
}

// One replica's 16 outputs: a and b = acc + bias (first and second 8), plus the replica's
// deltas, requantised and narrowed.
__attribute__((target("avx2"))) inline __m128i ReplicaBytes16(__m256i a, __m256i b,
                                                              const uint32_t* delta,
                                                              const Shift8& k) {
  return Narrow16(Requant8(_mm256_add_epi32(a, Load8(delta)), k),
                  Requant8(_mm256_add_epi32(b, Load8(delta + 8)), k), k);
}

__attribute__((target("avx2"))) void VoteAvx2(const int32_t* acc, const uint32_t* const d[3],
                                              int64_t n, int32_t bias, int shift, int32_t lo,
                                              int8_t* out) {
  const Shift8 k = MakeShift8(bias, shift, lo);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i a = _mm256_add_epi32(Load8(acc + i), k.bias);
    const __m256i b = _mm256_add_epi32(Load8(acc + i + 8), k.bias);
    const __m128i q0 = ReplicaBytes16(a, b, d[0] + i, k);
    const __m128i q1 = ReplicaBytes16(a, b, d[1] + i, k);
    const __m128i q2 = ReplicaBytes16(a, b, d[2] + i, k);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), Majority16(q0, q1, q2));
  }
  const uint32_t* tail[3] = {d[0] + i, d[1] + i, d[2] + i};
  VotePortable(acc + i, tail, n - i, bias, shift, lo, out + i);
}
#endif

}  // namespace

void RequantizeRowShifted(const int32_t* acc, int64_t n, int32_t bias, int shift, int32_t lo,
                          int8_t* out) {
  static const RequantizeRowFn row = RequantizeRowKernels().back().second;  // the widest
  row(acc, n, bias, shift, lo, out);
}

std::vector<std::pair<const char*, RequantizeRowFn>> RequantizeRowKernels() {
  std::vector<std::pair<const char*, RequantizeRowFn>> kernels = {{"portable", &RowPortable}};
#ifdef R2F_X86
  const CpuFeatures& cpu = UsableCpuFeatures();
  if (cpu.avx2) kernels.emplace_back("avx2", &RowAvx2);
  if (cpu.avx512f) kernels.emplace_back("avx512", &RowAvx512);
#endif
  return kernels;
}

void RequantizeVoteShifted(const int32_t* acc, const uint32_t* const d[3], int64_t n, int32_t bias,
                           int shift, int32_t lo, int8_t* out) {
  static const RequantizeVoteFn vote = RequantizeVoteKernels().back().second;  // the widest
  vote(acc, d, n, bias, shift, lo, out);
}

std::vector<std::pair<const char*, RequantizeVoteFn>> RequantizeVoteKernels() {
  std::vector<std::pair<const char*, RequantizeVoteFn>> kernels = {{"portable", &VotePortable}};
#ifdef R2F_X86
  const CpuFeatures& cpu = UsableCpuFeatures();
  if (cpu.avx2) kernels.emplace_back("avx2", &VoteAvx2);
  if (cpu.avx512f) kernels.emplace_back("avx512", &VoteAvx512);
#endif
  return kernels;
}

}  // namespace r2f::accel
