// The 256-bit drivers of the int8 GEMM (int16_gemm.h): AVX2 on kPairs16 panels
// (vpmaddwd + vpaddd) and AVX-VNNI on kQuads8 panels (VEX vpdpbusd, non-saturating).
//
// One register tile is one row block (4 rows) x one panel (16 columns = two 256-bit vectors):
// 8 accumulators, two panel loads and four weight broadcasts per k group. (With 16 vector
// registers there is no room for a larger tile.) Panels outer: one panel stays in L1 while every
// row block streams by.
#include "accel_sim/int16_gemm_kernels.h"

#include "common/base/x86_intrinsics.h"

#ifdef R2F_X86

namespace r2f::accel::gemm_internal {
namespace {

// The 4 rows x 16 columns of a register tile, as two 8-column halves per row.
__attribute__((target("avx2"), always_inline)) inline void StoreTile(int32_t* c, int ldc,
                                                                     __m256i a00, __m256i a01,
                                                                     __m256i a10, __m256i a11,
                                                                     __m256i a20, __m256i a21,
                                                                     __m256i a30, __m256i a31) {
  const __m256i rows[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
  for (int r = 0; r < 4; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc), rows[r][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc + 8), rows[r][1]);
  }
}

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
    // 16-bit products, exact pair sums of at most 2^15: no saturation anywhere.
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
  StoreTile(c, ldc, a00, a01, a10, a11, a20, a21, a30, a31);
}

// Named accumulators, as in KernelAvx2: with an array of them GCC 12 copied every accumulator
// on each k step.
__attribute__((target("avx2,avxvnni"))) void KernelAvxVnni(const int32_t* w,
                                                           const int32_t* acc_init,
                                                           const uint8_t* x, int k_quads,
                                                           int32_t* c, int ldc) {
  // The accumulators start at -128 * row sum (mod 2^32), which cancels the +128 of the panels.
  __m256i a00 = _mm256_set1_epi32(acc_init[0]), a01 = a00;
  __m256i a10 = _mm256_set1_epi32(acc_init[1]), a11 = a10;
  __m256i a20 = _mm256_set1_epi32(acc_init[2]), a21 = a20;
  __m256i a30 = _mm256_set1_epi32(acc_init[3]), a31 = a30;
  for (int t = 0; t < k_quads; ++t) {
    const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
    const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32));
    const __m256i w0 = _mm256_set1_epi32(w[0]);
    const __m256i w1 = _mm256_set1_epi32(w[1]);
    const __m256i w2 = _mm256_set1_epi32(w[2]);
    const __m256i w3 = _mm256_set1_epi32(w[3]);
    // u8 (x + 128) times s8 w, four exact products added to the accumulator (the
    // non-saturating form).
    a00 = _mm256_dpbusd_avx_epi32(a00, x0, w0);
    a01 = _mm256_dpbusd_avx_epi32(a01, x1, w0);
    a10 = _mm256_dpbusd_avx_epi32(a10, x0, w1);
    a11 = _mm256_dpbusd_avx_epi32(a11, x1, w1);
    a20 = _mm256_dpbusd_avx_epi32(a20, x0, w2);
    a21 = _mm256_dpbusd_avx_epi32(a21, x1, w2);
    a30 = _mm256_dpbusd_avx_epi32(a30, x0, w3);
    a31 = _mm256_dpbusd_avx_epi32(a31, x1, w3);
    x += kPanelCols * 4;
    w += kRowBlock;
  }
  StoreTile(c, ldc, a00, a01, a10, a11, a20, a21, a30, a31);
}

}  // namespace

void GemmAvx2(const PackedWeights& w, const int16_t* panels, int num_panels, int32_t* c, int ldc) {
  const int64_t panel_stride = static_cast<int64_t>(w.k_groups) * kPanelCols * 2;
  for (int p = 0; p < num_panels; ++p) {
    const int16_t* x = panels + p * panel_stride;
    for (int rb = 0; rb < w.row_blocks; ++rb) {
      KernelAvx2(w.data.data() + static_cast<int64_t>(rb) * w.k_groups * kRowBlock, x, w.k_groups,
                 c + static_cast<int64_t>(rb) * kRowBlock * ldc + p * kPanelCols, ldc);
    }
  }
}

void GemmAvxVnni(const PackedWeights& w, const uint8_t* panels, int num_panels, int32_t* c,
                 int ldc) {
  const int64_t panel_stride = static_cast<int64_t>(w.k_groups) * kPanelCols * 4;
  for (int p = 0; p < num_panels; ++p) {
    const uint8_t* x = panels + p * panel_stride;
    for (int rb = 0; rb < w.row_blocks; ++rb) {
      KernelAvxVnni(w.data.data() + static_cast<int64_t>(rb) * w.k_groups * kRowBlock,
                    w.acc_init.data() + rb * kRowBlock, x, w.k_groups,
                    c + static_cast<int64_t>(rb) * kRowBlock * ldc + p * kPanelCols, ldc);
    }
  }
}

}  // namespace r2f::accel::gemm_internal

#endif  // x86
