// The TMR voter of the device's reliable processor: bitwise majority of three int8 results.
#pragma once

#include <cstdint>

namespace r2f::accel {

// Each bit takes the value that at least two of the inputs agree on. A single corrupted input,
// however many of its bits are wrong, is outvoted by the other two.
inline int8_t MajorityVote(int8_t a, int8_t b, int8_t c) {
  return static_cast<int8_t>((a & b) | (a & c) | (b & c));
}

// out[i] = MajorityVote(a[i], b[i], c[i]) for i < n; out may alias any input.
void VoteBuffers(const int8_t* a, const int8_t* b, const int8_t* c, int64_t n, int8_t* out);

}  // namespace r2f::accel
