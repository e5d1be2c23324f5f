// The 512-bit drivers of the int8 GEMM (int16_gemm.h): AVX-512BW on kPairs16 panels
// (vpmaddwd + vpaddd) and AVX512-VNNI on kQuads8 panels (vpdpbusd, non-saturating).
//
// One panel k group (16 columns x one pair or quad) is exactly one 512-bit register, so a
// register tile of RB row blocks x P panels holds RB * 4 * P accumulators of 16 columns; per k
// group it loads P panel vectors and broadcasts RB * 4 weight words. The driver walks panel
// pairs in the outer loop (2 * k * 64 bytes, in L1 while every row block streams by) and row
// block pairs inside: 16 accumulators, 10 loads per 16 multiply-adds.
#include "accel_sim/int16_gemm_kernels.h"

#include "common/base/x86_intrinsics.h"

#ifdef R2F_X86

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

// The register tile, written with one named variable per accumulator: GCC 12 kept an array of
// __m512i accumulators in registers but copied every one of them on each k step (32 extra
// moves per 16 multiply-adds, measured as half the kernel's speed). c<r><p> accumulates row r
// of the tile (row r % 4 of row block r / 4) over panel p. MAC(acc, x, w) is the
// multiply-accumulate of one k group.
#define R2F_ROW(r, b, q)                                 \
  {                                                      \
    const __m512i wv = _mm512_set1_epi32(w##b[q]);       \
    c##r##0 = MAC(c##r##0, x0, wv);                      \
    if constexpr (P > 1) c##r##1 = MAC(c##r##1, x1, wv); \
  }
#define R2F_TILE_BODY(INIT)                                                                        \
  [[maybe_unused]] __m512i c00 = INIT(0), c01 = INIT(0), c10 = INIT(1), c11 = INIT(1);             \
  [[maybe_unused]] __m512i c20 = INIT(2), c21 = INIT(2), c30 = INIT(3), c31 = INIT(3);             \
  [[maybe_unused]] __m512i c40 = INIT(4), c41 = INIT(4), c50 = INIT(5), c51 = INIT(5);             \
  [[maybe_unused]] __m512i c60 = INIT(6), c61 = INIT(6), c70 = INIT(7), c71 = INIT(7);             \
  const uint8_t* x = t.x;                                                                          \
  const int32_t* w0 = t.w;                                                                         \
  [[maybe_unused]] const int32_t* w1 = t.w + t.w_stride;                                           \
  for (int g = 0; g < t.k_groups; ++g, x += 64, w0 += kRowBlock, w1 += kRowBlock) {                \
    const __m512i x0 = _mm512_loadu_si512(x);                                                      \
    [[maybe_unused]] const __m512i x1 = P > 1 ? _mm512_loadu_si512(x + t.x_stride) : x0;           \
    R2F_ROW(0, 0, 0) R2F_ROW(1, 0, 1) R2F_ROW(2, 0, 2) R2F_ROW(3, 0, 3);                           \
    if constexpr (RB > 1) {                                                                        \
      R2F_ROW(4, 1, 0) R2F_ROW(5, 1, 1) R2F_ROW(6, 1, 2) R2F_ROW(7, 1, 3);                         \
    }                                                                                              \
  }                                                                                                \
  const __m512i rows[2][kMaxRowBlocks * kRowBlock] = {{c00, c10, c20, c30, c40, c50, c60, c70},    \
                                                      {c01, c11, c21, c31, c41, c51, c61, c71}};   \
  for (int r = 0; r < RB * kRowBlock; ++r) {                                                       \
    for (int p = 0; p < P; ++p) _mm512_storeu_si512(t.c + r * t.ldc + p * kPanelCols, rows[p][r]); \
  }

template <int RB, int P>
__attribute__((target("avx512f,avx512bw"))) void TileAvx512(const Tile& t) {
  static_assert(RB >= 1 && RB <= kMaxRowBlocks && P >= 1 && P <= kMaxPanels);
  // 16-bit products, exact pair sums of at most 2^15: no saturation anywhere.
#define MAC(acc, xv, wv) _mm512_add_epi32(acc, _mm512_madd_epi16(xv, wv))
#define INIT(r) _mm512_setzero_si512()
  R2F_TILE_BODY(INIT)
#undef INIT
#undef MAC
}

template <int RB, int P>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void TileAvx512Vnni(const Tile& t) {
  static_assert(RB >= 1 && RB <= kMaxRowBlocks && P >= 1 && P <= kMaxPanels);
  // u8 (x + 128) times s8 w, four exact products added to the accumulator (the
  // non-saturating form); the accumulators start at -128 * row sum, which cancels the offset.
#define MAC(acc, xv, wv) _mm512_dpbusd_epi32(acc, xv, wv)
#define INIT(r) (r < RB * kRowBlock ? _mm512_set1_epi32(t.acc_init[r]) : _mm512_setzero_si512())
  R2F_TILE_BODY(INIT)
#undef INIT
#undef MAC
}

#undef R2F_TILE_BODY
#undef R2F_ROW

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

__attribute__((target("avx512f,avx512bw"))) int PackQuads8Avx512(const int8_t* const r[4], int cols,
                                                                 uint8_t* dst,
                                                                 int64_t panel_stride) {
  // The 4 x 16 byte transpose of PackQuads8Sse2 on four panels at once: the unpacks work
  // within 128-bit lanes, so lane L of q0..q3 holds columns 16L + 0..3, 4..7, 8..11, 12..15;
  // a 4 x 4 transpose of the lanes (vshufi64x2) then gathers each panel's four lanes.
  const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));  // x + 128
  int p = 0;
  for (int j0 = 0; j0 + 64 <= cols; j0 += 64, p += 4) {
    const __m512i a = _mm512_xor_si512(_mm512_loadu_si512(r[0] + j0), bias);
    const __m512i b = _mm512_xor_si512(_mm512_loadu_si512(r[1] + j0), bias);
    const __m512i c = _mm512_xor_si512(_mm512_loadu_si512(r[2] + j0), bias);
    const __m512i d = _mm512_xor_si512(_mm512_loadu_si512(r[3] + j0), bias);
    const __m512i ab_lo = _mm512_unpacklo_epi8(a, b), ab_hi = _mm512_unpackhi_epi8(a, b);
    const __m512i cd_lo = _mm512_unpacklo_epi8(c, d), cd_hi = _mm512_unpackhi_epi8(c, d);
    const __m512i q0 = _mm512_unpacklo_epi16(ab_lo, cd_lo);
    const __m512i q1 = _mm512_unpackhi_epi16(ab_lo, cd_lo);
    const __m512i q2 = _mm512_unpacklo_epi16(ab_hi, cd_hi);
    const __m512i q3 = _mm512_unpackhi_epi16(ab_hi, cd_hi);
    const __m512i t0 = _mm512_shuffle_i64x2(q0, q1, 0x44);  // q0.L0 q0.L1 q1.L0 q1.L1
    const __m512i t1 = _mm512_shuffle_i64x2(q0, q1, 0xee);  // q0.L2 q0.L3 q1.L2 q1.L3
    const __m512i t2 = _mm512_shuffle_i64x2(q2, q3, 0x44);
    const __m512i t3 = _mm512_shuffle_i64x2(q2, q3, 0xee);
    uint8_t* out = dst + p * panel_stride;
    _mm512_storeu_si512(out, _mm512_shuffle_i64x2(t0, t2, 0x88));  // lanes 0 of q0..q3
    _mm512_storeu_si512(out + panel_stride, _mm512_shuffle_i64x2(t0, t2, 0xdd));
    _mm512_storeu_si512(out + 2 * panel_stride, _mm512_shuffle_i64x2(t1, t3, 0x88));
    _mm512_storeu_si512(out + 3 * panel_stride, _mm512_shuffle_i64x2(t1, t3, 0xdd));
  }
  return p;
}

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
