#include "accel_sim/scaled_row.h"

#if defined(__x86_64__) || defined(__i386__)
#include <emmintrin.h>
#define R2F_SSE2 1
#endif

namespace r2f::accel {
namespace {

#ifdef R2F_SSE2
// Four int32 lanes of dst += the sign-extended int16 lanes of p (low or high half).
inline void AddLow(__m128i p, uint32_t* dst) {
  __m128i* d = reinterpret_cast<__m128i*>(dst);
  const __m128i wide = _mm_srai_epi32(_mm_unpacklo_epi16(p, p), 16);
  _mm_storeu_si128(d, _mm_add_epi32(_mm_loadu_si128(d), wide));
}
inline void AddHigh(__m128i p, uint32_t* dst) {
  __m128i* d = reinterpret_cast<__m128i*>(dst);
  const __m128i wide = _mm_srai_epi32(_mm_unpackhi_epi16(p, p), 16);
  _mm_storeu_si128(d, _mm_add_epi32(_mm_loadu_si128(d), wide));
}
// Eight int8 lanes (the low half of v) sign-extended to int16.
inline __m128i Widen8(__m128i v) { return _mm_srai_epi16(_mm_unpacklo_epi8(v, v), 8); }
#endif

}  // namespace

void AddScaledRow(const int8_t* x, int32_t dw, int64_t n, uint32_t* dst) {
  int64_t j = 0;
#ifdef R2F_SSE2
  const __m128i w = _mm_set1_epi16(static_cast<int16_t>(dw));
  for (; j + 16 <= n; j += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + j));
    const __m128i lo = _mm_mullo_epi16(Widen8(v), w);
    const __m128i hi = _mm_mullo_epi16(_mm_srai_epi16(_mm_unpackhi_epi8(v, v), 8), w);
    AddLow(lo, dst + j);
    AddHigh(lo, dst + j + 4);
    AddLow(hi, dst + j + 8);
    AddHigh(hi, dst + j + 12);
  }
  if (j + 8 <= n) {
    const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(x + j));
    const __m128i p = _mm_mullo_epi16(Widen8(v), w);
    AddLow(p, dst + j);
    AddHigh(p, dst + j + 4);
    j += 8;
  }
#endif
  for (; j < n; ++j) dst[j] += static_cast<uint32_t>(dw * x[j]);
}

}  // namespace r2f::accel
