#include "accel_sim/scaled_row.h"

#include "common/base/cpu_features.h"
#include "common/base/x86_intrinsics.h"

namespace r2f::accel {
namespace {

// One term at a time over the whole row: a loop GCC vectorises (SSE2 on any x86-64).
void RowsPortable(const int8_t* x, int64_t ld, const ScaledRowTerm* terms, int count, int64_t n,
                  uint32_t* dst) {
  for (int t = 0; t < count; ++t) {
    const int8_t* row = x + terms[t].row * ld;
    const int32_t scale = terms[t].scale;
    for (int64_t j = 0; j < n; ++j) dst[j] += static_cast<uint32_t>(scale * row[j]);
  }
}

#ifdef R2F_X86
// Eight (AVX2) or sixteen (AVX-512) accumulators at a time, every term added before they go
// back to memory. int32 products: mullo_epi32 is exact modulo 2^32, like the portable loop.
__attribute__((target("avx2"))) void RowsAvx2(const int8_t* x, int64_t ld,
                                              const ScaledRowTerm* terms, int count, int64_t n,
                                              uint32_t* dst) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    auto* d = reinterpret_cast<__m256i*>(dst + j);
    __m256i acc = _mm256_loadu_si256(d);
    for (int t = 0; t < count; ++t) {
      const __m128i bytes =
          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(x + terms[t].row * ld + j));
      acc = _mm256_add_epi32(
          acc, _mm256_mullo_epi32(_mm256_cvtepi8_epi32(bytes), _mm256_set1_epi32(terms[t].scale)));
    }
    _mm256_storeu_si256(d, acc);
  }
  if (j < n) RowsPortable(x + j, ld, terms, count, n - j, dst + j);
}

// dst[j..j+16) += the terms, for the lanes of m; kWhole: m is all ones, and plain loads and
// stores are used. The requantisation reads these rows right after, and a masked store does not
// forward to a later load: with masked stores throughout, that pass's loads waited for the
// stores to reach the cache (a third of its time).
template <bool kWhole>
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline void Block16(const int8_t* x,
                                                                         int64_t ld,
                                                                         const ScaledRowTerm* terms,
                                                                         int count, __mmask16 m,
                                                                         uint32_t* dst) {
  __m512i acc = kWhole ? _mm512_loadu_si512(dst) : _mm512_maskz_loadu_epi32(m, dst);
  for (int t = 0; t < count; ++t) {
    const __m128i bytes = _mm_maskz_loadu_epi8(m, x + terms[t].row * ld);
    acc = _mm512_add_epi32(
        acc, _mm512_mullo_epi32(_mm512_cvtepi8_epi32(bytes), _mm512_set1_epi32(terms[t].scale)));
  }
  if (kWhole) {
    _mm512_storeu_si512(dst, acc);
  } else {
    _mm512_mask_storeu_epi32(dst, m, acc);
  }
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) void RowsAvx512(const int8_t* x, int64_t ld,
                                                                     const ScaledRowTerm* terms,
                                                                     int count, int64_t n,
                                                                     uint32_t* dst) {
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) Block16<true>(x + j, ld, terms, count, 0xffff, dst + j);
  if (j < n) {  // the tail by masks: lanes beyond n are neither read nor written
    Block16<false>(x + j, ld, terms, count, static_cast<__mmask16>((1u << (n - j)) - 1), dst + j);
  }
}
#endif

}  // namespace

void AddScaledRows(const int8_t* x, int64_t ld, const ScaledRowTerm* terms, int count, int64_t n,
                   uint32_t* dst) {
  static const AddScaledRowsFn kernel = AddScaledRowsKernels().back().second;  // the widest
  kernel(x, ld, terms, count, n, dst);
}

std::vector<std::pair<const char*, AddScaledRowsFn>> AddScaledRowsKernels() {
  std::vector<std::pair<const char*, AddScaledRowsFn>> kernels = {{"portable", &RowsPortable}};
#ifdef R2F_X86
  const CpuFeatures& cpu = UsableCpuFeatures();
  if (cpu.avx2) kernels.emplace_back("avx2", &RowsAvx2);
  if (cpu.avx512bw && cpu.avx512vl) kernels.emplace_back("avx512", &RowsAvx512);
#endif
  return kernels;
}

}  // namespace r2f::accel
