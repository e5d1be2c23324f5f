#include "accel_sim/tmr_voter.h"

namespace r2f::accel {

void VoteBuffers(const int8_t* a, const int8_t* b, const int8_t* c, int64_t n, int8_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = MajorityVote(a[i], b[i], c[i]);
}

}  // namespace r2f::accel
