#include "common/codec/flag_pack.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/base/byte_flags.h"
#include "common/base/cpu_features.h"
#include "common/base/x86_intrinsics.h"
#include "common/codec/flag_pack_kernels.h"
#include "common/codec/lz4_block.h"

namespace r2f {
namespace {

// The widest implementation allowed: 2 everything the CPU has, 1 at most AVX2, 0 portable.
std::atomic<int> g_level{[] {
  const char* isa = std::getenv("R2F_CODEC_ISA");
  if (isa != nullptr && std::strcmp(isa, "portable") == 0) return 0;
  if (isa != nullptr && std::strcmp(isa, "avx2") == 0) return 1;
  return 2;
}()};

int Level() { return g_level.load(std::memory_order_relaxed); }

bool HasAvx512bw() { return UsableCpuFeatures().avx512bw && Level() >= 2; }

bool HasVbmi2() { return UsableCpuFeatures().avx512vbmi2 && HasAvx512bw(); }

bool HasAvx2() {
#if defined(R2F_X86)
  static const bool popcnt = __builtin_cpu_supports("popcnt");
  return UsableCpuFeatures().avx2 && popcnt && Level() >= 1;
#else
  return false;
#endif
}

// Branch-free: every byte is stored and only flagged ones advance the cursor (the flags are
// dense where this is used, and branches would mispredict).
size_t PackFlaggedPortable(const int8_t* in, const uint8_t* flags, size_t n, uint8_t* bitmap,
                           int8_t* out) {
  size_t k = 0, i = 0;
  for (; i + 16 <= n; i += 16) {
    const uint16_t bits = NonZeroBits16(flags + i);
    for (size_t j = 0; j < 16; ++j) {
      out[k] = in[i + j];
      k += (bits >> j) & 1u;
    }
    bitmap[i / 8] = static_cast<uint8_t>(bits);
    bitmap[i / 8 + 1] = static_cast<uint8_t>(bits >> 8);
  }
  for (; i < n; i += 8) {
    uint8_t bits = 0;
    for (size_t j = i; j < n && j < i + 8; ++j) {
      const bool flag = flags[j] != 0;
      bits |= static_cast<uint8_t>(flag << (j - i));
      out[k] = in[j];
      k += flag;
    }
    bitmap[i / 8] = bits;
  }
  return k;
}

// The 64 flags of a bitmap of `bytes` bytes from byte b (bit j: element 8b + j), zero past
// its end.
inline uint64_t BitmapWord(const uint8_t* bitmap, size_t b, size_t bytes) {
  return flag_pack_internal::LoadMaskBytes<uint64_t>(bitmap + b, bytes - b);  // little-endian
}

// Calls visit(i) for each of the first `count` elements i flagged in a bitmap of n, in order.
template <typename Visit>
void ForEachFlagged(const uint8_t* bitmap, size_t count, size_t n, Visit&& visit) {
  const size_t bytes = BitmapBytes(n);
  for (size_t b = 0; b < bytes && count != 0; b += 8) {
    for (uint64_t word = BitmapWord(bitmap, b, bytes); word != 0 && count != 0;
         word &= word - 1, --count) {
      visit(8 * b + static_cast<size_t>(__builtin_ctzll(word)));
    }
  }
}

// PackGapVarints, and the differences too where kDifferences (PackGapsAndDifferences).
template <bool kDifferences>
size_t PackSparsePortable(const uint8_t* bitmap, size_t count, size_t n, const int8_t* y,
                          const int8_t* v, uint8_t* gaps, uint8_t* differences) {
  uint8_t* o = gaps;
  size_t next = 0;
  ForEachFlagged(bitmap, count, n, [&](size_t i) {
    o = WriteVarint32(o, static_cast<uint32_t>(i - next));
    next = i + 1;
    if constexpr (kDifferences) {
      *differences++ =
          static_cast<uint8_t>(static_cast<uint8_t>(y[i]) - static_cast<uint8_t>(v[i]));
    }
  });
  return static_cast<size_t>(o - gaps);
}

void ExpandFlaggedPortable(const uint8_t* bitmap, const int8_t* values, size_t n, int8_t* out) {
  size_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    const unsigned bit = (bitmap[i / 8] >> (i % 8)) & 1u;
    out[i] = static_cast<int8_t>(values[v] & -static_cast<int>(bit));
    v += bit;
  }
}

void ScatterFlaggedPortable(const uint8_t* bitmap, const int8_t* values, size_t count, size_t n,
                            int8_t* out) {
  size_t k = 0;
  ForEachFlagged(bitmap, count, n, [values, out, &k](size_t i) { out[i] = values[k++]; });
}

size_t DifferBitmapPortable(const int8_t* a, const int8_t* b, size_t n, uint8_t* bitmap) {
  size_t count = 0, i = 0;
  for (; i + 16 <= n; i += 16) {
    const uint16_t bits = DifferBits16(a + i, b + i);
    bitmap[i / 8] = static_cast<uint8_t>(bits);
    bitmap[i / 8 + 1] = static_cast<uint8_t>(bits >> 8);
    count += CountBits64(bits);
  }
  for (; i < n; i += 8) {
    uint8_t bits = 0;
    for (size_t j = i; j < n && j < i + 8; ++j)
      bits |= static_cast<uint8_t>((a[j] != b[j]) << (j - i));
    bitmap[i / 8] = bits;
    count += CountBits64(bits);
  }
  return count;
}

// Sixteen elements a step, branch-free (flags are dense where this runs): the step's flags as
// 16-bit masks from SSE2 compares. Cloned for AVX2 and the baseline and picked when the library
// loads; AVX-512 VBMI2 machines take ScanExactVbmi2.
__attribute__((target_clones("avx2", "default"))) ExactScan ScanExactPortable(
    const int8_t* y, const int8_t* v, const uint8_t* flags, size_t n, uint8_t* differ_bitmap,
    uint8_t* flag_bitmap, int8_t* flagged_values) {
  // Counted in locals: the int8_t stores below may alias anything, the returned struct too.
  size_t k = 0, equal = 0, differ_count = 0, zeros = 0, flagged_nonzero = 0, run_bytes = 0;
  uint16_t last_repeat = 0;
  const size_t map_bytes = BitmapBytes(n);
  for (size_t i = 0; i < n; i += 16) {
    const flag_pack_internal::ScanStep<16> step(y, v, flags, i, n);
    const size_t m = step.m;
    const int8_t* yp = step.y;
    const auto valid = static_cast<uint16_t>(m < 16 ? (1u << m) - 1 : 0xFFFFu);
    const uint16_t flagged = NonZeroBits16(step.flags);
    const uint16_t differ_all = DifferBits16(yp, step.v);
    const auto zero =
        static_cast<uint16_t>(~NonZeroBits16(reinterpret_cast<const uint8_t*>(yp)) & valid);
    const auto differ = static_cast<uint16_t>(differ_all & ~flagged);
    const auto repeat = static_cast<uint16_t>(~DifferBits16(yp, step.prev) & valid);
    const uint16_t deep = flag_pack_internal::DeepRuns(repeat, last_repeat);
    last_repeat = repeat;
    for (size_t j = 0; j < 16; ++j) {  // the padding is unflagged: it never advances k
      flagged_values[k] = yp[j];
      k += (flagged >> j) & 1u;
    }
    differ_bitmap[i / 8] = static_cast<uint8_t>(differ);
    flag_bitmap[i / 8] = static_cast<uint8_t>(flagged);
    if (i / 8 + 1 < map_bytes) {
      differ_bitmap[i / 8 + 1] = static_cast<uint8_t>(differ >> 8);
      flag_bitmap[i / 8 + 1] = static_cast<uint8_t>(flagged >> 8);
    }
    equal += CountBits64(valid & ~differ_all);
    differ_count += CountBits64(differ);
    zeros += CountBits64(zero);
    flagged_nonzero += CountBits64(flagged & ~zero);
    run_bytes += CountBits64(deep);
  }
  return ExactScan{equal, differ_count, k, zeros, flagged_nonzero, run_bytes};
}

#if defined(R2F_X86)
__attribute__((target("avx512f,avx512bw,popcnt"))) size_t DifferBitmapAvx512(const int8_t* a,
                                                                             const int8_t* b,
                                                                             size_t n,
                                                                             uint8_t* bitmap) {
  size_t count = 0, i = 0;
  for (; i + 64 <= n; i += 64) {
    const __mmask64 m =
        _mm512_cmpneq_epi8_mask(_mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i));
    std::memcpy(bitmap + i / 8, &m, 8);
    count += static_cast<size_t>(_mm_popcnt_u64(m));
  }
  if (i < n) {
    const __mmask64 tail = (~uint64_t{0}) >> (64 - (n - i));
    const __mmask64 m = _mm512_cmpneq_epi8_mask(_mm512_maskz_loadu_epi8(tail, a + i),
                                                _mm512_maskz_loadu_epi8(tail, b + i));
    std::memcpy(bitmap + i / 8, &m, BitmapBytes(n) - i / 8);
    count += static_cast<size_t>(_mm_popcnt_u64(m));
  }
  return count;
}

// AVX-512 VBMI2 packs and unpacks 64 bytes per instruction (vpcompressb / vpexpandb). The
// compress goes to a register and then to memory in one unmasked store, hence the 64 bytes of
// slack after `out`: a compress straight to memory is microcoded and slow on Zen 4.
__attribute__((target("avx512f,avx512bw,avx512vbmi2,popcnt"))) size_t PackFlaggedVbmi2(
    const int8_t* in, const uint8_t* flags, size_t n, uint8_t* bitmap, int8_t* out) {
  size_t k = 0, i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i f = _mm512_loadu_si512(flags + i);
    const __mmask64 m = _mm512_test_epi8_mask(f, f);
    _mm512_storeu_si512(out + k, _mm512_maskz_compress_epi8(m, _mm512_loadu_si512(in + i)));
    std::memcpy(bitmap + i / 8, &m, 8);
    k += static_cast<size_t>(_mm_popcnt_u64(m));
  }
  if (i < n) {
    const __mmask64 tail = (~uint64_t{0}) >> (64 - (n - i));
    const __m512i f = _mm512_maskz_loadu_epi8(tail, flags + i);
    const __mmask64 m = _mm512_test_epi8_mask(f, f);
    _mm512_storeu_si512(out + k,
                        _mm512_maskz_compress_epi8(m, _mm512_maskz_loadu_epi8(tail, in + i)));
    std::memcpy(bitmap + i / 8, &m, BitmapBytes(n) - i / 8);
    k += static_cast<size_t>(_mm_popcnt_u64(m));
  }
  return k;
}

// ScanExact's whole step in registers: three loads, two mask stores and one compress per 64.
__attribute__((target("avx512f,avx512bw,avx512vbmi2,popcnt"))) ExactScan ScanExactVbmi2(
    const int8_t* y, const int8_t* v, const uint8_t* flags, size_t n, uint8_t* differ_bitmap,
    uint8_t* flag_bitmap, int8_t* flagged_values) {
  size_t k = 0, equal = 0, differ_count = 0, zeros = 0, flagged_nonzero = 0, run_bytes = 0;
  uint64_t last_repeat = 0;
  for (size_t i = 0; i < n; i += 64) {
    const bool tail = n - i < 64;
    flag_pack_internal::PrefetchAhead(y + i, v + i, flags + i);
    const __mmask64 lanes = tail ? (~uint64_t{0}) >> (64 - (n - i)) : ~__mmask64{0};
    const __m512i f = _mm512_maskz_loadu_epi8(lanes, flags + i);
    const __m512i yv = _mm512_maskz_loadu_epi8(lanes, y + i);
    const __m512i vv = _mm512_maskz_loadu_epi8(lanes, v + i);
    const __mmask64 flagged = _mm512_test_epi8_mask(f, f);
    const __mmask64 differ_all = _mm512_cmpneq_epi8_mask(yv, vv);
    const __mmask64 differ = differ_all & ~flagged;
    const __mmask64 zero = _mm512_testn_epi8_mask(yv, yv) & lanes;
    // y[i - 1] for every lane. The layer's first element has none: its lane is masked off,
    // and a masked-off lane is not read (no fault), so the address before y is never touched.
    const __mmask64 has_previous = i == 0 ? lanes & ~__mmask64{1} : lanes;
    const __m512i previous = _mm512_maskz_loadu_epi8(
        has_previous, reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(y + i) - 1));
    const __mmask64 repeat = _mm512_mask_cmpeq_epi8_mask(has_previous, yv, previous);
    const __mmask64 deep = flag_pack_internal::DeepRuns<uint64_t>(repeat, last_repeat);
    last_repeat = repeat;
    _mm512_storeu_si512(flagged_values + k, _mm512_maskz_compress_epi8(flagged, yv));
    flag_pack_internal::StoreMaskBytes<uint64_t>(differ_bitmap + i / 8, differ,
                                                 BitmapBytes(n) - i / 8);
    flag_pack_internal::StoreMaskBytes<uint64_t>(flag_bitmap + i / 8, flagged,
                                                 BitmapBytes(n) - i / 8);
    k += static_cast<size_t>(_mm_popcnt_u64(flagged));
    equal += static_cast<size_t>(_mm_popcnt_u64(lanes & ~differ_all));
    differ_count += static_cast<size_t>(_mm_popcnt_u64(differ));
    zeros += static_cast<size_t>(_mm_popcnt_u64(zero));
    flagged_nonzero += static_cast<size_t>(_mm_popcnt_u64(flagged & ~zero));
    run_bytes += static_cast<size_t>(_mm_popcnt_u64(deep));
  }
  return ExactScan{equal, differ_count, k, zeros, flagged_nonzero, run_bytes};
}

// The lane numbers 0..63, compressed by a mask into the positions of its set bits.
struct LaneIndex {
  alignas(64) uint8_t lane[64];
  constexpr LaneIndex() : lane() {
    for (int j = 0; j < 64; ++j) lane[j] = static_cast<uint8_t>(j);
  }
};
constexpr LaneIndex kLaneIndex;

// The lowest `keep` set bits of word (keep < popcount(word)).
__attribute__((target("bmi2"))) inline uint64_t LowestFlags(uint64_t word, size_t keep) {
  return _pdep_u64((uint64_t{1} << keep) - 1, word);
}

// 64 flags a step: the first gap of a step may be any size (a varint); the others lie within the
// step, below 64, one byte each, all computed at once from the flags' positions. The
// differences read only the flagged lanes of y and v (masked loads): nothing past the layer.
template <bool kDifferences>
__attribute__((target("avx512f,avx512bw,avx512vbmi2,popcnt,bmi2"))) size_t PackSparseVbmi2(
    const uint8_t* bitmap, size_t count, size_t n, const int8_t* y, const int8_t* v, uint8_t* gaps,
    uint8_t* differences) {
  const __m512i lane = _mm512_load_si512(kLaneIndex.lane);
  const __m512i one = _mm512_set1_epi8(1);
  uint8_t* o = gaps;
  size_t next = 0, left = count;
  const size_t bytes = BitmapBytes(n);
  for (size_t b = 0; b < bytes && left != 0; b += 8) {
    uint64_t word = BitmapWord(bitmap, b, bytes);
    if (word == 0) continue;
    const size_t base = 8 * b;
    size_t k = static_cast<size_t>(_mm_popcnt_u64(word));
    if (k > left) {  // a bitmap with more flags than `count`: only the first ones are taken
      k = left;
      word = LowestFlags(word, k);
    }
    o = WriteVarint32(
        o, static_cast<uint32_t>(base + static_cast<size_t>(__builtin_ctzll(word)) - next));
    // Lane j: the (j+2)-th flagged position less the (j+1)-th, less one (lanes from k - 1 on
    // are overwritten by what follows).
    const __m512i at = _mm512_maskz_compress_epi8(word, lane);
    const __m512i after = _mm512_maskz_compress_epi8(word & (word - 1), lane);
    _mm512_storeu_si512(o, _mm512_sub_epi8(_mm512_sub_epi8(after, at), one));
    o += k - 1;
    next = base + 64 - static_cast<size_t>(__builtin_clzll(word));
    if constexpr (kDifferences) {
      const __m512i d = _mm512_sub_epi8(_mm512_maskz_loadu_epi8(word, y + base),
                                        _mm512_maskz_loadu_epi8(word, v + base));
      _mm512_storeu_si512(differences, _mm512_maskz_compress_epi8(word, d));
      differences += k;
    }
    left -= k;
  }
  return static_cast<size_t>(o - gaps);
}

__attribute__((target("avx512f,avx512bw,avx512vbmi2,popcnt"))) void ExpandFlaggedVbmi2(
    const uint8_t* bitmap, const int8_t* values, size_t n, int8_t* out) {
  size_t v = 0, i = 0;
  for (; i + 64 <= n; i += 64) {
    __mmask64 m;
    std::memcpy(&m, bitmap + i / 8, 8);
    // The masked load reads only the flagged values: nothing past the last one.
    _mm512_storeu_si512(out + i, _mm512_maskz_expandloadu_epi8(m, values + v));
    v += static_cast<size_t>(_mm_popcnt_u64(m));
  }
  if (i < n) {
    uint64_t m = 0;
    std::memcpy(&m, bitmap + i / 8, BitmapBytes(n) - i / 8);
    const __mmask64 tail = (~uint64_t{0}) >> (64 - (n - i));
    _mm512_mask_storeu_epi8(out + i, tail, _mm512_maskz_expandloadu_epi8(m & tail, values + v));
  }
}

__attribute__((target("avx512f,avx512bw,avx512vbmi2,popcnt"))) void ScatterFlaggedVbmi2(
    const uint8_t* bitmap, const int8_t* values, size_t n, int8_t* out) {
  size_t v = 0, i = 0;
  for (; i + 64 <= n; i += 64) {
    __mmask64 m;
    std::memcpy(&m, bitmap + i / 8, 8);
    if (m == 0) continue;
    const __m512i kept = _mm512_loadu_si512(out + i);
    _mm512_storeu_si512(out + i, _mm512_mask_expandloadu_epi8(kept, m, values + v));
    v += static_cast<size_t>(_mm_popcnt_u64(m));
  }
  if (i < n) {
    uint64_t m = 0;
    std::memcpy(&m, bitmap + i / 8, BitmapBytes(n) - i / 8);
    const __mmask64 tail = (~uint64_t{0}) >> (64 - (n - i));
    const __m512i kept = _mm512_maskz_loadu_epi8(tail, out + i);
    _mm512_mask_storeu_epi8(out + i, tail,
                            _mm512_mask_expandloadu_epi8(kept, m & tail, values + v));
  }
}

#endif

}  // namespace

size_t PackFlagged(const int8_t* in, const uint8_t* flags, size_t n, uint8_t* bitmap, int8_t* out) {
#if defined(R2F_X86)
  if (HasVbmi2()) return PackFlaggedVbmi2(in, flags, n, bitmap, out);
  if (HasAvx2()) return flag_pack_internal::PackFlaggedAvx2(in, flags, n, bitmap, out);
#endif
  return PackFlaggedPortable(in, flags, n, bitmap, out);
}

void ExpandFlagged(const uint8_t* bitmap, const int8_t* values, [[maybe_unused]] size_t count,
                   size_t n, int8_t* out) {
#if defined(R2F_X86)
  if (HasVbmi2()) return ExpandFlaggedVbmi2(bitmap, values, n, out);
  if (HasAvx2()) return flag_pack_internal::ExpandFlaggedAvx2(bitmap, values, count, n, out);
#endif
  ExpandFlaggedPortable(bitmap, values, n, out);
}

FlagPackIsa SetFlagPackIsa(FlagPackIsa isa) {
  const int level = isa == FlagPackIsa::kPortable ? 0 : isa == FlagPackIsa::kAvx2 ? 1 : 2;
  const int before = g_level.exchange(level, std::memory_order_relaxed);
  return before == 0   ? FlagPackIsa::kPortable
         : before == 1 ? FlagPackIsa::kAvx2
                       : FlagPackIsa::kBest;
}

const char* FlagPackIsaName() {
  return HasVbmi2() ? "avx512_vbmi2" : HasAvx2() ? "avx2" : "portable";
}

ExactScan ScanExact(const int8_t* y, const int8_t* v, const uint8_t* flags, size_t n,
                    uint8_t* differ_bitmap, uint8_t* flag_bitmap, int8_t* flagged_values) {
#if defined(R2F_X86)
  if (HasVbmi2()) return ScanExactVbmi2(y, v, flags, n, differ_bitmap, flag_bitmap, flagged_values);
  if (HasAvx2()) {
    return flag_pack_internal::ScanExactAvx2(y, v, flags, n, differ_bitmap, flag_bitmap,
                                             flagged_values);
  }
#endif
  return ScanExactPortable(y, v, flags, n, differ_bitmap, flag_bitmap, flagged_values);
}

size_t PackGapVarints(const uint8_t* bitmap, size_t count, size_t n, uint8_t* gaps) {
#if defined(R2F_X86)
  if (HasVbmi2()) return PackSparseVbmi2<false>(bitmap, count, n, nullptr, nullptr, gaps, nullptr);
#endif
  return PackSparsePortable<false>(bitmap, count, n, nullptr, nullptr, gaps, nullptr);
}

size_t PackGapsAndDifferences(const uint8_t* bitmap, size_t count, size_t n, const int8_t* y,
                              const int8_t* v, uint8_t* gaps, uint8_t* differences) {
#if defined(R2F_X86)
  if (HasVbmi2()) return PackSparseVbmi2<true>(bitmap, count, n, y, v, gaps, differences);
#endif
  return PackSparsePortable<true>(bitmap, count, n, y, v, gaps, differences);
}

size_t DifferBitmap(const int8_t* a, const int8_t* b, size_t n, uint8_t* bitmap) {
#if defined(R2F_X86)
  if (HasAvx512bw()) return DifferBitmapAvx512(a, b, n, bitmap);
#endif
  return DifferBitmapPortable(a, b, n, bitmap);
}

void ScatterFlagged(const uint8_t* bitmap, const int8_t* values, size_t count, size_t n,
                    int8_t* out) {
#if defined(R2F_X86)
  if (HasVbmi2()) return ScatterFlaggedVbmi2(bitmap, values, n, out);
  if (HasAvx2()) return flag_pack_internal::ScatterFlaggedAvx2(bitmap, values, count, n, out);
#endif
  ScatterFlaggedPortable(bitmap, values, count, n, out);
}

void AppendZeroMap(const int8_t* values, size_t n, std::string* out) {
  const size_t start = out->size(), map_bytes = BitmapBytes(n);
  out->resize(start + map_bytes + n + kPackSlack);
  auto* map = reinterpret_cast<uint8_t*>(&(*out)[start]);
  const size_t nonzero = PackFlagged(values, reinterpret_cast<const uint8_t*>(values), n, map,
                                     reinterpret_cast<int8_t*>(map + map_bytes));
  out->resize(start + map_bytes + nonzero);
}

Status ReadZeroMap(const uint8_t* p, size_t size, size_t n, const char* what, int8_t* out) {
  const size_t map_bytes = BitmapBytes(n);
  if (size < map_bytes) {
    return Status::Corruption(std::string(what) + ": " + std::to_string(size) +
                              " bytes for the zero map of " + std::to_string(n) + " values");
  }
  R2F_ASSIGN_OR_RETURN(const size_t nonzero,
                       CountFlags(p, n, (std::string(what) + ": zero map").c_str()));
  if (size - map_bytes != nonzero) {
    return Status::Corruption(std::string(what) + ": zero map flags " + std::to_string(nonzero) +
                              " non-zero values but " + std::to_string(size - map_bytes) +
                              " follow");
  }
  ExpandFlagged(p, reinterpret_cast<const int8_t*>(p + map_bytes), nonzero, n, out);
  return Status::Ok();
}

Status ReadElementCount(const uint8_t** p, const uint8_t* end, size_t n, const char* what) {
  uint32_t elements = 0;
  if (!GetVarint32(p, end, &elements)) {
    return Status::Corruption(std::string(what) + ": truncated element count");
  }
  if (elements != n) {
    return Status::Corruption(std::string(what) + ": for " + std::to_string(elements) +
                              " elements, expected " + std::to_string(n));
  }
  return Status::Ok();
}

namespace {

// The POPCNT instruction where the CPU has it (every AVX2 one): the bit-trick count is several
// times slower, and a received patch's bitmap is counted whole before it is applied.
__attribute__((target_clones("popcnt", "default"))) size_t CountBits(const uint8_t* bitmap,
                                                                     size_t bytes) {
  size_t count = 0, b = 0;
  for (; b + 8 <= bytes; b += 8) {
    uint64_t w;
    std::memcpy(&w, bitmap + b, 8);
    count += static_cast<size_t>(__builtin_popcountll(w));
  }
  for (; b < bytes; ++b) count += static_cast<size_t>(__builtin_popcount(bitmap[b]));
  return count;
}

}  // namespace

Result<size_t> CountFlags(const uint8_t* bitmap, size_t n, const char* what) {
  const size_t bytes = BitmapBytes(n);
  const size_t count = CountBits(bitmap, bytes);
  if (n % 8 != 0 && (bitmap[bytes - 1] >> (n % 8)) != 0) {
    return Status::Corruption(std::string(what) + " flags elements past its " + std::to_string(n));
  }
  return count;
}

}  // namespace r2f
