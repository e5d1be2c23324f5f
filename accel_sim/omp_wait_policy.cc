#include "accel_sim/omp_wait_policy.h"

#include <unistd.h>

#include <cstdlib>

namespace r2f::accel {

void ApplyDefaultOmpWaitPolicy(int argc, char** argv) {
  (void)argc;  // argv is null-terminated, as execv needs
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) {
    return;
  }
  if (setenv(kDefaultOmpWaitVariable, kDefaultOmpWaitValue, 0) != 0) return;
  execv("/proc/self/exe", argv);
  // Only reached if exec failed: carry on with the policy libgomp has already read.
}

}  // namespace r2f::accel
