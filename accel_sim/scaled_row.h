// dst[j] += sum_t scale_t * x_t[j]: the row kernel of weight-flip deltas (execution_faults.h).
// A flipped weight w' = w ^ mask changes every accumulator of its channel that reads it by
// (w' - w) * x, and the x of a row segment's outputs are one im2col row, so each weight flip
// of a channel adds one scaled im2col row to the channel's row of accumulators. All of a
// channel's flips go in one call, which keeps the row in registers across them.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace r2f::accel {

// One weight flip's term: row `row` of the im2col segment, scaled by w' - w.
struct ScaledRowTerm {
  int32_t row;
  int32_t scale;  // |scale| <= 255: a difference of two int8 values
};

// dst[j] = dst[j] + sum_t terms[t].scale * x[terms[t].row * ld + j] modulo 2^32, for j < n.
// Exact for every int8 x; chosen at run time (AVX-512BW+VL, AVX2, or a loop GCC vectorises).
void AddScaledRows(const int8_t* x, int64_t ld, const ScaledRowTerm* terms, int count, int64_t n,
                   uint32_t* dst);

// Every implementation of AddScaledRows this CPU can run, named: for tests, which check each.
using AddScaledRowsFn = void (*)(const int8_t*, int64_t, const ScaledRowTerm*, int, int64_t,
                                 uint32_t*);
std::vector<std::pair<const char*, AddScaledRowsFn>> AddScaledRowsKernels();

}  // namespace r2f::accel
