#include "accel_sim/parallel_for.h"

#include <exception>

namespace r2f::accel {

void ParallelFor(int64_t n, const std::function<void(int64_t)>& job) {
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
