#include "accel_sim/int16_gemm.h"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define R2F_X86 1
#endif

namespace r2f::accel {
namespace {

int RoundUp(int v, int m) { return (v + m - 1) / m * m; }

int32_t PackPair(int8_t lo, int8_t hi) {
  return static_cast<int32_t>(static_cast<uint16_t>(static_cast<int16_t>(lo)) |
                              (static_cast<uint32_t>(static_cast<uint16_t>(hi)) << 16));
}

// One row block x one panel, portable.
void KernelGeneric(const int32_t* w, const int16_t* x, int k_pairs, int32_t* c, int ldc) {
  int32_t acc[kRowBlock][kPanelCols] = {};
  for (int t = 0; t < k_pairs; ++t) {
    const int16_t* xt = x + t * kPanelCols * 2;
    for (int r = 0; r < kRowBlock; ++r) {
      const int32_t wv = w[t * kRowBlock + r];
      const auto w0 = static_cast<int16_t>(wv & 0xffff);
      const auto w1 = static_cast<int16_t>(static_cast<uint32_t>(wv) >> 16);
      for (int j = 0; j < kPanelCols; ++j) {
        acc[r][j] += int32_t{w0} * xt[2 * j] + int32_t{w1} * xt[2 * j + 1];
      }
    }
  }
  for (int r = 0; r < kRowBlock; ++r) std::memcpy(c + r * ldc, acc[r], sizeof(acc[r]));
}

#ifdef R2F_X86
// One row block x one panel with AVX2: 8 int32 accumulators of 8 lanes; per k pair two panel
// loads, four weight-pair broadcasts and eight vpmaddwd.
__attribute__((target("avx2"))) void KernelAvx2(const int32_t* w, const int16_t* x, int k_pairs,
                                                int32_t* c, int ldc) {
  __m256i a00 = _mm256_setzero_si256(), a01 = _mm256_setzero_si256();
  __m256i a10 = _mm256_setzero_si256(), a11 = _mm256_setzero_si256();
  __m256i a20 = _mm256_setzero_si256(), a21 = _mm256_setzero_si256();
  __m256i a30 = _mm256_setzero_si256(), a31 = _mm256_setzero_si256();
  for (int t = 0; t < k_pairs; ++t) {
    const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
    const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 16));
    const __m256i w0 = _mm256_set1_epi32(w[0]);
    const __m256i w1 = _mm256_set1_epi32(w[1]);
    const __m256i w2 = _mm256_set1_epi32(w[2]);
    const __m256i w3 = _mm256_set1_epi32(w[3]);
    a00 = _mm256_add_epi32(a00, _mm256_madd_epi16(x0, w0));
    a01 = _mm256_add_epi32(a01, _mm256_madd_epi16(x1, w0));
    a10 = _mm256_add_epi32(a10, _mm256_madd_epi16(x0, w1));
    a11 = _mm256_add_epi32(a11, _mm256_madd_epi16(x1, w1));
    a20 = _mm256_add_epi32(a20, _mm256_madd_epi16(x0, w2));
    a21 = _mm256_add_epi32(a21, _mm256_madd_epi16(x1, w2));
    a30 = _mm256_add_epi32(a30, _mm256_madd_epi16(x0, w3));
    a31 = _mm256_add_epi32(a31, _mm256_madd_epi16(x1, w3));
    x += kPanelCols * 2;
    w += kRowBlock;
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(c), a00);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + 8), a01);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + ldc), a10);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + ldc + 8), a11);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + 2 * ldc), a20);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + 2 * ldc + 8), a21);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + 3 * ldc), a30);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + 3 * ldc + 8), a31);
}
#endif

}  // namespace

PackedWeights PackWeights(const int8_t* w, int n, int k) {
  PackedWeights p;
  p.n = n;
  p.k = k;
  p.k_pairs = (k + 1) / 2;
  p.row_blocks = (n + kRowBlock - 1) / kRowBlock;
  p.data.assign(static_cast<size_t>(p.row_blocks) * p.k_pairs * kRowBlock, 0);
  for (int i = 0; i < n; ++i) {
    const int8_t* row = w + static_cast<int64_t>(i) * k;
    for (int t = 0; t < p.k_pairs; ++t) {
      const int8_t lo = row[2 * t];
      const int8_t hi = 2 * t + 1 < k ? row[2 * t + 1] : 0;
      p.data[(static_cast<size_t>(i / kRowBlock) * p.k_pairs + t) * kRowBlock + i % kRowBlock] =
          PackPair(lo, hi);
    }
  }
  return p;
}

int64_t PanelElements(int k, int cols) {
  return static_cast<int64_t>(RoundUp(cols, kPanelCols)) * ((k + 1) / 2) * 2;
}

void PackPanels(const int8_t* x, int k, int cols, int ldx, int16_t* panels) {
  const int k_pairs = (k + 1) / 2;
  const int num_panels = (cols + kPanelCols - 1) / kPanelCols;
  const int64_t panel_stride = static_cast<int64_t>(k_pairs) * kPanelCols * 2;
  for (int t = 0; t < k_pairs; ++t) {
    const int8_t* a = x + static_cast<int64_t>(2 * t) * ldx;
    const int8_t* b = 2 * t + 1 < k ? a + ldx : nullptr;
    for (int p = 0; p < num_panels; ++p) {
      const int j0 = p * kPanelCols;
      int16_t* dst = panels + p * panel_stride + static_cast<int64_t>(t) * kPanelCols * 2;
      if (j0 + kPanelCols <= cols && b != nullptr) {
#ifdef R2F_X86
        // Interleave 16 bytes of each row and sign-extend to int16 (SSE2: unpack a byte with
        // itself, then shift the 16-bit lane right arithmetically by 8).
        const __m128i va = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + j0));
        const __m128i vb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + j0));
        const __m128i lo = _mm_unpacklo_epi8(va, vb);
        const __m128i hi = _mm_unpackhi_epi8(va, vb);
        __m128i* out = reinterpret_cast<__m128i*>(dst);
        _mm_storeu_si128(out + 0, _mm_srai_epi16(_mm_unpacklo_epi8(lo, lo), 8));
        _mm_storeu_si128(out + 1, _mm_srai_epi16(_mm_unpackhi_epi8(lo, lo), 8));
        _mm_storeu_si128(out + 2, _mm_srai_epi16(_mm_unpacklo_epi8(hi, hi), 8));
        _mm_storeu_si128(out + 3, _mm_srai_epi16(_mm_unpackhi_epi8(hi, hi), 8));
        continue;
#endif
      }
      // Edge panel or odd k (the partner row is zero).
      for (int j = 0; j < kPanelCols; ++j) {
        const bool in = j0 + j < cols;
        dst[2 * j] = in ? a[j0 + j] : 0;
        dst[2 * j + 1] = in && b != nullptr ? b[j0 + j] : 0;
      }
    }
  }
}

GemmIsa BestGemmIsa() {
#ifdef R2F_X86
  static const bool has_avx2 = __builtin_cpu_supports("avx2");
  if (has_avx2) return GemmIsa::kAvx2;
#endif
  return GemmIsa::kGeneric;
}

void Int16Gemm(const PackedWeights& w, const int16_t* panels, int cols, int32_t* c, int ldc,
               GemmIsa isa) {
  if (isa == GemmIsa::kAuto) isa = BestGemmIsa();
#ifndef R2F_X86
  isa = GemmIsa::kGeneric;
#endif
  const int num_panels = (cols + kPanelCols - 1) / kPanelCols;
  const int64_t panel_stride = static_cast<int64_t>(w.k_pairs) * kPanelCols * 2;
  // Panels outer: one panel (k * 64 bytes) stays in L1 while every row block streams by.
  for (int p = 0; p < num_panels; ++p) {
    const int16_t* x = panels + p * panel_stride;
    for (int rb = 0; rb < w.row_blocks; ++rb) {
      const int32_t* wb = w.data.data() + static_cast<int64_t>(rb) * w.k_pairs * kRowBlock;
      int32_t* cb = c + static_cast<int64_t>(rb) * kRowBlock * ldc + p * kPanelCols;
#ifdef R2F_X86
      if (isa == GemmIsa::kAvx2) {
        KernelAvx2(wb, x, w.k_pairs, cb, ldc);
        continue;
      }
#endif
      KernelGeneric(wb, x, w.k_pairs, cb, ldc);
    }
  }
}

}  // namespace r2f::accel
