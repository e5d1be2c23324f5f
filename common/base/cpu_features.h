// The x86 instruction sets that the run-time kernels choose by (the GEMM, requantisation,
// element-wise adds, weight-flip rows, the codec's packing), as this process may use them: what
// the CPU has and the OS enables, capped by the environment variable R2F_CPU_ISA, read once per
// process:
//   unset, "" or "native"  no cap;
//   "avx2"                 what an AVX2-only machine has: no AVX-512 of any kind, no AVX-VNNI;
//   "portable"             none of these: the portable loops (SSE2, the x86-64 baseline).
// A machine with AVX-512 then runs the kernels an AVX2-only machine would run, which is how this
// project measures its AVX2 targets without such a machine (docs/accel_sim.md, "Speed"). Kernels
// the compiler dispatches itself (target_clones on AVX2 and POPCNT) and other libraries
// (LibTorch, OpenBLAS, ISA-L) do not see the cap; they have their own variables.
#pragma once

#include <string>

namespace r2f {

enum class CpuIsaCap { kPortable, kAvx2, kNative };

struct CpuFeatures {
  bool avx2 = false;
  bool avxvnni = false;  // AVX-VNNI: VEX-encoded vpdpbusd on 256-bit vectors
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vnni = false;
  bool avx512vbmi2 = false;
};

// The features of this CPU (and OS), uncapped.
CpuFeatures DetectCpuFeatures();

// `cpu` without what `cap` excludes.
CpuFeatures CapCpuFeatures(CpuFeatures cpu, CpuIsaCap cap);

// R2F_CPU_ISA's values (above); false, leaving *cap unchanged, for anything else.
bool ParseCpuIsaCap(const char* text, CpuIsaCap* cap);
const char* CpuIsaCapName(CpuIsaCap cap);  // "portable", "avx2", "native"

// The cap of this process: R2F_CPU_ISA, or kNative if it is unset or not understood (then
// reported once on stderr).
CpuIsaCap ProcessCpuIsaCap();

// DetectCpuFeatures() capped by ProcessCpuIsaCap(): what every dispatching kernel asks.
const CpuFeatures& UsableCpuFeatures();

// The CPU's model name from /proc/cpuinfo ("unknown" where there is none): for every report
// of a measured figure.
std::string CpuModelName();

// The features as "avx2=1 avxvnni=0 avx512f=1 ...", in the order of the struct.
std::string CpuFeaturesText(const CpuFeatures& f);

}  // namespace r2f
