// How OpenMP threads wait between parallel regions, chosen for a shared machine.
//
// libgomp's default lets idle threads spin for about 10 ms after every parallel region. On a
// machine whose cores other processes also want, a spinning thread burns the time slice the
// thread it waits for needs, and every synchronisation can cost a whole time slice. Measured on
// the 2-core VM (docs/accel_sim.md "Threading"), per ResNet18 batch of 16:
//
//   policy                   idle      one core busy   load 5
//   libgomp default          5.65 ms   18.4 ms         34-352 ms
//   OMP_WAIT_POLICY=passive  6.74 ms   11.0 ms         16.5 ms
//   GOMP_SPINCOUNT=1000      5.90 ms   12.5 ms         12.7 ms
//
// Passive waiting costs 19% when the machine is idle (45% for LibTorch's forward); a short spin
// costs 4% idle and is as robust under load. The binaries therefore default to
// GOMP_SPINCOUNT=1000.
//
// libgomp reads OMP_WAIT_POLICY and GOMP_SPINCOUNT once, when it is loaded, before main(): a
// setenv() in main() changes nothing. ApplyDefaultOmpWaitPolicy therefore re-executes the
// program (same arguments, /proc/self/exe) with the variable set, once, and only when the user
// has set neither variable: an explicit setting always wins. Call it first thing in main().
#pragma once

namespace r2f::accel {

inline constexpr const char* kDefaultOmpWaitVariable = "GOMP_SPINCOUNT";
inline constexpr const char* kDefaultOmpWaitValue = "1000";

// Re-executes the program with kDefaultOmpWaitVariable=kDefaultOmpWaitValue unless
// OMP_WAIT_POLICY or GOMP_SPINCOUNT is already set (by the user, or by the first execution).
// Returns normally when nothing needs to change or when the re-execution fails (the program
// then runs with libgomp's defaults).
void ApplyDefaultOmpWaitPolicy(int argc, char** argv);

}  // namespace r2f::accel
