// Exact int8 GEMM on 16-bit multiply-add units (the default GEMM of the executor).
//
// Operands are int8 values widened to int16 and grouped in pairs along the reduction: one
// 32-bit lane of `pmaddwd` computes x[2t]*w[2t] + x[2t+1]*w[2t+1], at most 2 * 2^14 = 2^15 in
// magnitude, and adds it to an int32 accumulator. No step saturates or rounds (unlike
// `pmaddubsw` based s8s8 GEMMs, which saturate 16-bit pair sums), and sum of K <= 2^17
// products stays inside int32, so the result equals the naive int32 loop bit for bit.
// docs/accel_sim.md compares it with the sgemm path (exact_gemm.h).
//
// Layouts: the weights of one group are packed once per model (PackWeights); the im2col
// columns are packed per tile into panels of kPanelCols columns (PackPanels).
#pragma once

#include <cstdint>
#include <vector>

namespace r2f::accel {

inline constexpr int kPanelCols = 16;  // columns per packed panel
inline constexpr int kRowBlock = 4;    // output rows per kernel call

// w[n][k] packed as [row block][k pair][kRowBlock] int32 lanes holding (w[2t], w[2t+1]) as
// two int16. Rows beyond n and the odd k's partner are zero.
struct PackedWeights {
  int n = 0;
  int k = 0;
  int k_pairs = 0;
  int row_blocks = 0;
  std::vector<int32_t> data;
};
PackedWeights PackWeights(const int8_t* w, int n, int k);

// Number of int16 values the panels of a k x cols matrix take.
int64_t PanelElements(int k, int cols);

// Packs x[t][j] (t < k, j < cols, row stride ldx) into panels [panel][k pair][kPanelCols][2]
// int16; columns from cols up to the next panel boundary and the odd k's partner are zero.
void PackPanels(const int8_t* x, int k, int cols, int ldx, int16_t* panels);

enum class GemmIsa { kAuto, kGeneric, kAvx2 };

// c[i*ldc + j] = sum_t w[i][t] * x[t][j] for i < RoundUp(n, kRowBlock) and
// j < RoundUp(cols, kPanelCols): `c` must have room for that padded block (padding rows and
// columns receive 0, the sum over zero weights or zero columns). kAuto picks AVX2 when the CPU
// has it; every ISA gives the same result.
void Int16Gemm(const PackedWeights& w, const int16_t* panels, int cols, int32_t* c, int ldc,
               GemmIsa isa = GemmIsa::kAuto);

// The ISA kAuto resolves to on this CPU.
GemmIsa BestGemmIsa();

}  // namespace r2f::accel
