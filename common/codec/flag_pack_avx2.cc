// AVX2 kernels of flag_pack.h (flag_pack_kernels.h): what AVX2-only machines run. There is no
// byte compress or expand before AVX-512 VBMI2, so 8 values at a time go through one SSSE3
// byte shuffle whose control comes from a table indexed by their 8 flags.
#include <algorithm>
#include <cstring>

#include "common/base/x86_intrinsics.h"
#include "common/codec/flag_pack_kernels.h"

#if defined(R2F_X86)

namespace r2f::flag_pack_internal {
namespace {

// Byte-shuffle controls for 8 elements, per bitmap byte m (bit j flags element j). A control
// byte with its high bit set (0x80) makes the shuffle write zero there.
struct ShuffleTables {
  uint8_t spread[256][8];  // element j takes value rank(j) (the set bits below j) if flagged
  uint8_t gather[256][8];  // value r is the element of the r-th set bit
};

constexpr ShuffleTables MakeShuffleTables() {
  ShuffleTables t{};
  for (int m = 0; m < 256; ++m) {
    for (int j = 0; j < 8; ++j) t.spread[m][j] = t.gather[m][j] = 0x80;
    int rank = 0;
    for (int j = 0; j < 8; ++j) {
      if (((m >> j) & 1) == 0) continue;
      t.spread[m][j] = static_cast<uint8_t>(rank);
      t.gather[m][rank++] = static_cast<uint8_t>(j);
    }
  }
  return t;
}

constexpr ShuffleTables kShuffle = MakeShuffleTables();

#define R2F_AVX2 __attribute__((target("avx2,popcnt")))

R2F_AVX2 inline __m128i Load8(const void* p) {
  return _mm_loadl_epi64(static_cast<const __m128i*>(p));
}

R2F_AVX2 inline void Store8(void* p, __m128i v) { _mm_storel_epi64(static_cast<__m128i*>(p), v); }

R2F_AVX2 inline size_t Count8(unsigned m) { return static_cast<size_t>(_mm_popcnt_u32(m)); }

// Writes the values of in[0, 8) that m flags to out, in order (8 bytes written); returns their
// number.
R2F_AVX2 inline size_t Gather8(const int8_t* in, unsigned m, int8_t* out) {
  Store8(out, _mm_shuffle_epi8(Load8(in), Load8(kShuffle.gather[m])));
  return Count8(m);
}

// Bit j set where a[j] == b[j], for 32 bytes.
R2F_AVX2 inline uint32_t Equal32(const void* a, const void* b) {
  const __m256i x = _mm256_loadu_si256(static_cast<const __m256i*>(a));
  const __m256i y = _mm256_loadu_si256(static_cast<const __m256i*>(b));
  return static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, y)));
}

// Bit j set where p[j] == 0, for 32 bytes.
R2F_AVX2 inline uint32_t Zero32(const void* p) {
  const __m256i x = _mm256_loadu_si256(static_cast<const __m256i*>(p));
  return static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, _mm256_setzero_si256())));
}

R2F_AVX2 inline size_t Count32(uint32_t m) { return static_cast<size_t>(_mm_popcnt_u32(m)); }

}  // namespace

R2F_AVX2 size_t PackFlaggedAvx2(const int8_t* in, const uint8_t* flags, size_t n, uint8_t* bitmap,
                                int8_t* out) {
  size_t k = 0;
  for (size_t i = 0; i < n; i += 32) {
    const size_t m = std::min<size_t>(32, n - i);
    const int8_t* ip = in + i;
    const uint8_t* fp = flags + i;
    int8_t ib[32];
    uint8_t fb[32];
    if (m < 32) {  // the last step, padded with unflagged elements
      std::memset(ib, 0, 32);
      std::memset(fb, 0, 32);
      std::memcpy(ib, ip, m);
      std::memcpy(fb, fp, m);
      ip = ib;
      fp = fb;
    }
    const uint32_t flagged = ~Zero32(fp);
    StoreMaskBytes(bitmap + i / 8, flagged, BitmapBytes(n) - i / 8);
    for (int q = 0; q < 4; ++q) k += Gather8(ip + 8 * q, (flagged >> (8 * q)) & 0xFF, out + k);
  }
  return k;
}

R2F_AVX2 void ExpandFlaggedAvx2(const uint8_t* bitmap, const int8_t* values, size_t count, size_t n,
                                int8_t* out) {
  size_t k = 0, i = 0;
  for (; i + 8 <= n && k + 8 <= count; i += 8) {
    const unsigned m = bitmap[i / 8];
    Store8(out + i, _mm_shuffle_epi8(Load8(values + k), Load8(kShuffle.spread[m])));
    k += Count8(m);
  }
  // The rest (the last 8 values, or fewer elements) a byte of flags at a time, so that no
  // value past the last is read; a zero byte (a run of zeros) costs one store.
  for (; i < n; i += 8) {
    const unsigned m = bitmap[i / 8];
    const size_t len = std::min<size_t>(8, n - i);
    if (m == 0) {
      std::memset(out + i, 0, len);
      continue;
    }
    for (size_t j = 0; j < len; ++j) out[i + j] = ((m >> j) & 1) != 0 ? values[k++] : 0;
  }
}

R2F_AVX2 void ScatterFlaggedAvx2(const uint8_t* bitmap, const int8_t* values, size_t count,
                                 size_t n, int8_t* out) {
  size_t k = 0, i = 0;
  for (; i + 8 <= n && k + 8 <= count; i += 8) {
    const unsigned m = bitmap[i / 8];
    const __m128i control = Load8(kShuffle.spread[m]);
    const __m128i spread = _mm_shuffle_epi8(Load8(values + k), control);
    // The control's high bit marks the unflagged elements: they keep their value.
    Store8(out + i, _mm_blendv_epi8(spread, Load8(out + i), control));
    k += Count8(m);
  }
  for (; i < n; i += 8) {
    const unsigned m = bitmap[i / 8];
    for (unsigned rest = m; rest != 0; rest &= rest - 1) {
      out[i + static_cast<size_t>(__builtin_ctz(rest))] = values[k++];
    }
  }
}

R2F_AVX2 ExactScan ScanExactAvx2(const int8_t* y, const int8_t* v, const uint8_t* flags, size_t n,
                                 uint8_t* differ_bitmap, uint8_t* flag_bitmap,
                                 int8_t* flagged_values) {
  // Counted in locals: the int8_t stores below may alias anything, the returned struct too.
  size_t k = 0, equal = 0, differ_count = 0, zeros = 0, flagged_nonzero = 0, run_bytes = 0;
  uint32_t last_repeat = 0;
  const size_t map_bytes = BitmapBytes(n);
  for (size_t i = 0; i < n; i += 32) {
    if (i % 64 == 0) PrefetchAhead(y + i, v + i, flags + i);  // one line of each per 64
    const ScanStep<32> step(y, v, flags, i, n);
    const size_t m = step.m;
    const int8_t* yp = step.y;
    const uint32_t valid = m < 32 ? (uint32_t{1} << m) - 1 : ~uint32_t{0};
    const uint32_t flagged = ~Zero32(step.flags);
    const uint32_t differ_all = ~Equal32(yp, step.v);
    const uint32_t zero = Zero32(yp) & valid;
    const uint32_t differ = differ_all & ~flagged;
    const uint32_t repeat = Equal32(yp, step.prev) & valid;
    const uint32_t deep = DeepRuns(repeat, last_repeat);
    last_repeat = repeat;
    for (int q = 0; q < 4; ++q) {
      k += Gather8(yp + 8 * q, (flagged >> (8 * q)) & 0xFF, flagged_values + k);
    }
    StoreMaskBytes(differ_bitmap + i / 8, differ, map_bytes - i / 8);
    StoreMaskBytes(flag_bitmap + i / 8, flagged, map_bytes - i / 8);
    equal += Count32(valid & ~differ_all);
    differ_count += Count32(differ);
    zeros += Count32(zero);
    flagged_nonzero += Count32(flagged & ~zero);
    run_bytes += Count32(deep);
  }
  return ExactScan{equal, differ_count, k, zeros, flagged_nonzero, run_bytes};
}

}  // namespace r2f::flag_pack_internal

#endif  // R2F_X86
