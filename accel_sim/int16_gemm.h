// Exact int8 GEMM on integer multiply-add units (the default GEMM of the executor).
//
// c = w * x for int8 w (n x k) and x (k x cols), equal to the naive int32 loop bit for bit for
// ANY int8 data (-128 included), as long as |sum| < 2^31 (K <= 2^17, checked at model load).
// Two operand layouts, each with kernels chosen at run time from what the CPU has:
//
//  - kPairs16 (generic, AVX2, AVX-512BW): int8 values widened to int16 and grouped in pairs
//    along k. One 32-bit lane of `vpmaddwd` computes x[2t]*w[2t] + x[2t+1]*w[2t+1], at most
//    2 * 2^14 = 2^15 in magnitude, and the kernel adds it to an int32 accumulator: no step
//    saturates or rounds (unlike `pmaddubsw`-based s8s8 GEMMs, which saturate 16-bit pair sums).
//  - kQuads8 (AVX-VNNI, AVX512-VNNI): bytes grouped in fours along k; the panel holds
//    x + 128 as uint8 and `vpdpbusd` (non-saturating form) adds the four u8 x s8 products of a
//    32-bit lane to the accumulator. Each product is at most 255 * 128 in magnitude and exact.
//    The accumulator starts at -128 * sum_t w[i][t] (PackedWeights::acc_init), so it ends at
//    sum_t (x + 128) * w - 128 * sum_t w = sum_t x * w. Every partial sum on the way is
//    sum_{s<t} x*w - 128 * sum_{s>=t} w, at most 2^14 * K in magnitude, so nothing wraps for
//    K < 2^17; and since the instruction adds modulo 2^32, the end result would be exact even if
//    a partial sum wrapped. (The saturating form `vpdpbusds` is never used.)
//
// docs/accel_sim.md ("The GEMM kernels and why they are exact") has the kernels, the dispatch
// and the comparison with the sgemm path (exact_gemm.h).
//
// Layouts: the weights of one group are packed once per model (PackWeights); the im2col columns
// are packed per tile into panels of kPanelCols columns (PackPanels) in the layout of the
// weights they are multiplied with.
#pragma once

#include <cstdint>
#include <vector>

namespace r2f::accel {

inline constexpr int kPanelCols = 16;  // columns per packed panel
inline constexpr int kRowBlock = 4;    // output rows per packed weight block

enum class GemmLayout {
  kPairs16,  // int16 pairs along k; panels [panel][k pair][kPanelCols][2] int16
  kQuads8,   // bytes in fours along k; panels [panel][k quad][kPanelCols][4] uint8 (x + 128)
};

// The kernels. kAuto: the best one the CPU has (BestGemmIsa). kGeneric runs either layout in
// portable C++; the others run one layout each (GemmIsaLayout).
enum class GemmIsa { kAuto, kGeneric, kAvx2, kAvx512, kAvxVnni, kAvx512Vnni };

// "generic", "avx2", "avx512", "avx_vnni", "avx512_vnni" (and "auto"): for reports and for
// R2F_GEMM_ISA.
const char* GemmIsaName(GemmIsa isa);
const char* GemmLayoutName(GemmLayout layout);

// The layout a kernel runs on: kPairs16 for kGeneric, kAvx2 and kAvx512; kQuads8 for kAvxVnni
// and kAvx512Vnni. kAuto: that of BestGemmIsa().
GemmLayout GemmIsaLayout(GemmIsa isa);

// True if this CPU (and OS) can run the kernel: AVX2; AVX-512F+BW; AVX-VNNI (AVX2 + VEX VNNI);
// AVX-512F+BW+VNNI. kAuto and kGeneric always.
bool CpuHasGemmIsa(GemmIsa isa);

// Every kernel this CPU can run, kGeneric first (what the exactness tests loop over).
std::vector<GemmIsa> AvailableGemmIsas();

// The kernel kAuto resolves to, decided once per process: the environment variable
// R2F_GEMM_ISA (one of the names above) if set and the CPU has that ISA, otherwise the fastest
// the CPU has: avx512_vnni, avx_vnni, avx512, avx2, generic. An unknown or unsupported
// R2F_GEMM_ISA is reported once on stderr and ignored. Every kernel gives the same result; the
// variable exists to compare their speed (r2f_bench).
GemmIsa BestGemmIsa();

// w[n][k] packed as [row block][k group][kRowBlock] int32 lanes holding one k group of a row
// (two int16 for kPairs16, four int8 for kQuads8). Rows beyond n and k beyond k are zero.
struct PackedWeights {
  GemmLayout layout = GemmLayout::kPairs16;
  int n = 0;
  int k = 0;
  int k_groups = 0;  // ceil(k / 2) pairs or ceil(k / 4) quads
  int row_blocks = 0;
  std::vector<int32_t> data;
  // kQuads8: per padded row (row_blocks * kRowBlock), -128 * sum_t w[i][t] modulo 2^32, the
  // accumulators' start value that cancels the +128 offset of the panels. Empty for kPairs16.
  std::vector<int32_t> acc_init;

  // Where w[row][kk] lives: data[LaneIndex(row, kk)] >> LaneShift(pairs, kk), in its low 16
  // bits (pairs: kPairs16) or 8 bits (kQuads8).
  int64_t LaneIndex(int row, int kk) const {
    return (static_cast<int64_t>(row / kRowBlock) * k_groups +
            (kk >> LogWeightsPerLane(layout == GemmLayout::kPairs16))) *
               kRowBlock +
           row % kRowBlock;
  }
  static int LaneShift(bool pairs, int kk) { return pairs ? 16 * (kk & 1) : 8 * (kk & 3); }
  static int LogWeightsPerLane(bool pairs) { return pairs ? 1 : 2; }

  // One row's weights read back by kk, its offsets computed once (the epilogue reads several
  // weights of one row per segment).
  class RowReader {
   public:
    RowReader(const PackedWeights& p, int row)
        : lanes_(p.data.data() + p.LaneIndex(row, 0)), pairs_(p.layout == GemmLayout::kPairs16) {}
    // w[row][kk], kk in [0, k).
    int8_t At(int kk) const {
      const int32_t v = lanes_[static_cast<int64_t>(kk >> LogWeightsPerLane(pairs_)) * kRowBlock];
      return static_cast<int8_t>(static_cast<uint32_t>(v) >> LaneShift(pairs_, kk));
    }

   private:
    const int32_t* lanes_;  // the row's lane of its block, k group 0
    bool pairs_;
  };

  // w[row][kk], read back from the packed copy (row < n, kk < k).
  int8_t At(int row, int kk) const { return RowReader(*this, row).At(kk); }
  // Makes w[row][kk] = value (row < n, kk < k), acc_init included: the same as packing the
  // changed weights anew (a retrained model changes few of them).
  void Set(int row, int kk, int8_t value);
};

// Packs w (row stride k) for `layout`; the default is that of BestGemmIsa().
PackedWeights PackWeights(const int8_t* w, int n, int k, GemmLayout layout);
PackedWeights PackWeights(const int8_t* w, int n, int k);

// Bytes the panels of a k x cols matrix take in `layout` (a multiple of 64: every panel row
// is one 64-byte line).
int64_t PanelBytes(GemmLayout layout, int k, int cols);

// Packs x[t][j] (t < k, j < cols, row stride ldx) into panels in `layout` (see GemmLayout);
// columns from cols up to the next panel boundary and k up to the next group are x = 0.
// `panels` needs PanelBytes(layout, k, cols) bytes, 64-byte alignment not required.
void PackPanels(GemmLayout layout, const int8_t* x, int k, int cols, int ldx, void* panels);

// c[i*ldc + j] = sum_t w[i][t] * x[t][j] for i < RoundUp(n, kRowBlock) and
// j < RoundUp(cols, kPanelCols), with `panels` packed by PackPanels in w.layout for the same k:
// `c` must have room for that padded block (padding rows and columns receive 0, the sum over
// zero weights or zero columns). `isa` must be kAuto (the best kernel of w.layout this CPU
// has) or a kernel of w.layout that the CPU has (otherwise the process aborts with a message);
// every kernel gives the same result.
void Int8Gemm(const PackedWeights& w, const void* panels, int cols, int32_t* c, int ldc,
              GemmIsa isa = GemmIsa::kAuto);

}  // namespace r2f::accel
