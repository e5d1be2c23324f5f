// The 512-bit drivers of the int8 GEMM (int16_gemm.h): AVX-512BW on kPairs16 panels
// (vpmaddwd + vpaddd) and AVX512-VNNI on kQuads8 panels (vpdpbusd, non-saturating).
//
// One panel k group (16 columns x one pair or quad) is exactly one 512-bit register, so a
// register tile of RB row blocks x P panels holds RB * 4 * P accumulators of 16 columns; per k
// group it loads P panel vectors and broadcasts RB * 4 weight words. The driver walks panel
// pairs in the outer loop (2 * k * 64 bytes, in L1 while every row block streams by) and row
// block pairs inside: 16 accumulators, 10 loads per 16 multiply-adds.
#include "accel_sim/int16_gemm_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <algorithm>

namespace r2f::accel::gemm_internal {
namespace {

constexpr int kMaxRowBlocks = 2;  // row blocks per register tile
constexpr int kMaxPanels = 2;     // panels per register tile

// Where one register tile reads and writes. Row block b of the tile starts at
// w + b * w_stride (int32 words), panel p at x + p * x_stride (bytes).
struct Tile {
  const int32_t* w;
  int64_t w_stride;
  const int32_t* acc_init;  // kQuads8: the tile's first row's start value; nullptr: zero
  const uint8_t* x;
  int64_t x_stride;
  int k_groups;
  int32_t* c;
  int ldc;
};

template <int RB, int P>
__attribute__((target("avx512f,avx512bw"))) void TileAvx512(const Tile& t) {
  constexpr int R = RB * kRowBlock;
  __m512i acc[R][P];
  for (int r = 0; r < R; ++r) {
    for (int p = 0; p < P; ++p) acc[r][p] = _mm512_setzero_si512();
  }
  for (int g = 0; g < t.k_groups; ++g) {
    __m512i xv[P];
    for (int p = 0; p < P; ++p) xv[p] = _mm512_loadu_si512(t.x + p * t.x_stride + g * 64);
    for (int b = 0; b < RB; ++b) {
      for (int r = 0; r < kRowBlock; ++r) {
        const __m512i wv = _mm512_set1_epi32(t.w[b * t.w_stride + g * kRowBlock + r]);
        for (int p = 0; p < P; ++p) {
          // 16-bit products, exact pair sums of at most 2^15: no saturation anywhere.
          acc[b * kRowBlock + r][p] =
              _mm512_add_epi32(acc[b * kRowBlock + r][p], _mm512_madd_epi16(xv[p], wv));
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int p = 0; p < P; ++p) _mm512_storeu_si512(t.c + r * t.ldc + p * kPanelCols, acc[r][p]);
  }
}

template <int RB, int P>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void TileAvx512Vnni(const Tile& t) {
  constexpr int R = RB * kRowBlock;
  __m512i acc[R][P];
  for (int r = 0; r < R; ++r) {
    const __m512i init = _mm512_set1_epi32(t.acc_init[r]);  // -128 * row sum (mod 2^32)
    for (int p = 0; p < P; ++p) acc[r][p] = init;
  }
  for (int g = 0; g < t.k_groups; ++g) {
    __m512i xv[P];
    for (int p = 0; p < P; ++p) xv[p] = _mm512_loadu_si512(t.x + p * t.x_stride + g * 64);
    for (int b = 0; b < RB; ++b) {
      for (int r = 0; r < kRowBlock; ++r) {
        const __m512i wv = _mm512_set1_epi32(t.w[b * t.w_stride + g * kRowBlock + r]);
        for (int p = 0; p < P; ++p) {
          // u8 (x + 128) times s8 w, four exact products added modulo 2^32 (the non-saturating
          // form): the offset cancels against acc_init.
          acc[b * kRowBlock + r][p] = _mm512_dpbusd_epi32(acc[b * kRowBlock + r][p], xv[p], wv);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int p = 0; p < P; ++p) _mm512_storeu_si512(t.c + r * t.ldc + p * kPanelCols, acc[r][p]);
  }
}

using TileFn = void (*)(const Tile&);

template <int RB, int P>
struct Avx512Tile {
  static void Run(const Tile& t) { TileAvx512<RB, P>(t); }
};
template <int RB, int P>
struct Avx512VnniTile {
  static void Run(const Tile& t) { TileAvx512Vnni<RB, P>(t); }
};

// Every (row blocks, panels) tile up to the maximum: the largest inside, smaller ones at the
// edges of the GEMM.
template <template <int, int> class K>
void Drive(const PackedWeights& w, const uint8_t* panels, int num_panels, int32_t* c, int ldc) {
  static constexpr TileFn kFns[kMaxRowBlocks][kMaxPanels] = {
      {&K<1, 1>::Run, &K<1, 2>::Run},
      {&K<2, 1>::Run, &K<2, 2>::Run},
  };
  Tile t;
  t.w_stride = static_cast<int64_t>(w.k_groups) * kRowBlock;
  t.x_stride = static_cast<int64_t>(w.k_groups) * kPanelCols * 4;
  t.k_groups = w.k_groups;
  t.ldc = ldc;
  for (int p = 0; p < num_panels; p += kMaxPanels) {
    const int np = std::min(kMaxPanels, num_panels - p);
    for (int rb = 0; rb < w.row_blocks; rb += kMaxRowBlocks) {
      const int nrb = std::min(kMaxRowBlocks, w.row_blocks - rb);
      t.w = w.data.data() + rb * t.w_stride;
      t.acc_init = w.acc_init.empty() ? nullptr : w.acc_init.data() + rb * kRowBlock;
      t.x = panels + p * t.x_stride;
      t.c = c + static_cast<int64_t>(rb) * kRowBlock * ldc + p * kPanelCols;
      kFns[nrb - 1][np - 1](t);
    }
  }
}

}  // namespace

void GemmAvx512(const PackedWeights& w, const int16_t* panels, int num_panels, int32_t* c,
                int ldc) {
  Drive<Avx512Tile>(w, reinterpret_cast<const uint8_t*>(panels), num_panels, c, ldc);
}

void GemmAvx512Vnni(const PackedWeights& w, const uint8_t* panels, int num_panels, int32_t* c,
                    int ldc) {
  Drive<Avx512VnniTile>(w, panels, num_panels, c, ldc);
}

}  // namespace r2f::accel::gemm_internal

#endif  // x86
