// Independent jobs on the OpenMP threads, for the simulator's coarse one-off passes (preparing
// a model's layers, copying a call's results out of the workspace).
#pragma once

#include <cstdint>
#include <exception>

namespace r2f::accel {

// Runs job(0) .. job(n - 1) on the OpenMP threads, one at a time per thread as each finishes
// (jobs of different sizes balance). An exception must not leave an OpenMP region (that
// terminates the process): the first one a job throws (an allocation failing) is rethrown here
// after the region, the other jobs having run.
template <typename Job>
void ParallelFor(int64_t n, Job&& job) {
  std::exception_ptr failure;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t j = 0; j < n; ++j) {
    try {
      job(j);
    } catch (...) {
#pragma omp critical(r2f_parallel_for_failure)
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
}

}  // namespace r2f::accel
