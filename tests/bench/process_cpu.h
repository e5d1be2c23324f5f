// CPU time of the whole process, for the benchmarks' utilisation counters (Google Benchmark's
// own CPU time is the calling thread's only).
#pragma once

#include <time.h>

namespace r2f::bench {

// CPU time of every thread of this process so far, in seconds.
inline double ProcessCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

}  // namespace r2f::bench
