// Independent jobs on the OpenMP threads, for the simulator's coarse one-off passes (preparing
// a model's layers, copying a call's results out of the workspace).
#pragma once

#include <cstdint>
#include <functional>

namespace r2f::accel {

// Runs job(0) .. job(n - 1) on the OpenMP threads, one at a time per thread as each finishes
// (jobs of different sizes balance). An exception must not leave an OpenMP region (that
// terminates the process): the first one a job throws (an allocation failing) is rethrown here
// after the region, the other jobs having run. For jobs of microseconds or more: each call
// costs a std::function call.
void ParallelFor(int64_t n, const std::function<void(int64_t)>& job);

}  // namespace r2f::accel
