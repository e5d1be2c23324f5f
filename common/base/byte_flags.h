// Eight or sixteen bytes' worth of flags in one step: which bytes are non-zero, which differ.
// For per-element scans where a branch per element would mispredict wherever flags are dense
// (the codec's, at 1e-4 in the exact method) or would cost more than the rare hit it finds
// (the reusing build's compare of a retrained model's weights).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>  // baseline on x86-64: no run-time dispatch needed
#endif

namespace r2f {

// Bit j set where w's byte j (in memory order) is non-zero.
inline uint8_t NonZeroByteBits(uint64_t w) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  constexpr uint64_t kLow7 = 0x7F7F7F7F7F7F7F7Full;
  const uint64_t high = (((w & kLow7) + kLow7) | w) & ~kLow7;  // 0x80 in each non-zero byte
  // Gathers the eight flags into the top byte (each lands on its own bit, no carries).
  return static_cast<uint8_t>(((high >> 7) * 0x0102040810204080ull) >> 56);
#else
  uint8_t bits = 0;
  for (int j = 0; j < 8; ++j) {
    uint8_t byte;
    std::memcpy(&byte, reinterpret_cast<const uint8_t*>(&w) + j, 1);
    bits |= static_cast<uint8_t>((byte != 0) << j);
  }
  return bits;
#endif
}

// Bit j set where p[j] != 0.
inline uint8_t NonZeroBits8(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return NonZeroByteBits(w);
}

// Bit j set where a[j] != b[j].
inline uint8_t DifferBits8(const int8_t* a, const int8_t* b) {
  uint64_t x, y;
  std::memcpy(&x, a, 8);
  std::memcpy(&y, b, 8);
  return NonZeroByteBits(x ^ y);
}

// Bit j set where p[j] != 0, for sixteen bytes.
inline uint16_t NonZeroBits16(const uint8_t* p) {
#if defined(__SSE2__)
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const int zero = _mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_setzero_si128()));
  return static_cast<uint16_t>(~zero);
#else
  return static_cast<uint16_t>(NonZeroBits8(p) | (NonZeroBits8(p + 8) << 8));
#endif
}

// Bit j set where a[j] != b[j], for sixteen bytes.
inline uint16_t DifferBits16(const int8_t* a, const int8_t* b) {
#if defined(__SSE2__)
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a));
  const __m128i y = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b));
  return static_cast<uint16_t>(~_mm_movemask_epi8(_mm_cmpeq_epi8(x, y)));
#else
  return static_cast<uint16_t>(DifferBits8(a, b) | (DifferBits8(a + 8, b + 8) << 8));
#endif
}

// NonZeroBits16(p + i) for a buffer of n bytes; bytes at and after n count as zero.
inline uint16_t NonZeroBitsAt(const uint8_t* p, size_t i, size_t n) {
  if (i + 16 <= n) return NonZeroBits16(p + i);
  uint8_t padded[16] = {};
  for (size_t j = i; j < n; ++j) padded[j - i] = p[j];
  return NonZeroBits16(padded);
}

// Number of set bits in w (without the POPCNT instruction, which the x86-64 baseline lacks:
// GCC would otherwise call a library routine per word).
inline unsigned CountBits64(uint64_t w) {
  w = w - ((w >> 1) & 0x5555555555555555ull);
  w = (w & 0x3333333333333333ull) + ((w >> 2) & 0x3333333333333333ull);
  w = (w + (w >> 4)) & 0x0F0F0F0F0F0F0F0Full;
  return static_cast<unsigned>((w * 0x0101010101010101ull) >> 56);
}

}  // namespace r2f
