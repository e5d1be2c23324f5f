// dst[j] += dw * x[j]: the row kernel of weight-flip deltas (execution_faults.h). A flipped
// weight w' = w ^ mask changes every accumulator of its channel that reads it by (w' - w) * x,
// and the x of a row segment's outputs are one im2col row, so a weight flip is one call.
#pragma once

#include <cstdint>

namespace r2f::accel {

// dst[j] = dst[j] + dw * x[j] modulo 2^32, for j < n. Requires |dw| <= 255 (a difference of
// two int8 values), so that every product fits int16 (|dw * x| <= 255 * 128 = 32640): the
// SSE2 path multiplies in 16 bits. Exact for every int8 x.
void AddScaledRow(const int8_t* x, int32_t dw, int64_t n, uint32_t* dst);

}  // namespace r2f::accel
