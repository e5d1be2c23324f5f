#include "common/base/cpu_features.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace r2f {

CpuFeatures DetectCpuFeatures() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  // __builtin_cpu_supports also checks that the OS saves the registers (XCR0).
  f.avx2 = __builtin_cpu_supports("avx2");
  f.avxvnni = f.avx2 && __builtin_cpu_supports("avxvnni");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = f.avx512f && __builtin_cpu_supports("avx512bw");
  f.avx512vl = f.avx512f && __builtin_cpu_supports("avx512vl");
  f.avx512vnni = f.avx512f && __builtin_cpu_supports("avx512vnni");
  f.avx512vbmi2 = f.avx512f && __builtin_cpu_supports("avx512vbmi2");
#endif
  return f;
}

CpuFeatures CapCpuFeatures(CpuFeatures cpu, CpuIsaCap cap) {
  if (cap == CpuIsaCap::kNative) return cpu;
  CpuFeatures capped;
  capped.avx2 = cap == CpuIsaCap::kAvx2 && cpu.avx2;
  return capped;
}

bool ParseCpuIsaCap(const char* text, CpuIsaCap* cap) {
  if (text == nullptr || *text == '\0' || std::strcmp(text, "native") == 0) {
    *cap = CpuIsaCap::kNative;
  } else if (std::strcmp(text, "avx2") == 0) {
    *cap = CpuIsaCap::kAvx2;
  } else if (std::strcmp(text, "portable") == 0) {
    *cap = CpuIsaCap::kPortable;
  } else {
    return false;
  }
  return true;
}

const char* CpuIsaCapName(CpuIsaCap cap) {
  switch (cap) {
    case CpuIsaCap::kPortable:
      return "portable";
    case CpuIsaCap::kAvx2:
      return "avx2";
    case CpuIsaCap::kNative:
      break;
  }
  return "native";
}

CpuIsaCap ProcessCpuIsaCap() {
  static const CpuIsaCap cap = [] {
    const char* env = std::getenv("R2F_CPU_ISA");
    CpuIsaCap parsed = CpuIsaCap::kNative;
    if (!ParseCpuIsaCap(env, &parsed)) {
      std::fprintf(stderr,
                   "r2f: R2F_CPU_ISA=%s is not one of native, avx2, portable; using native\n", env);
    }
    return parsed;
  }();
  return cap;
}

const CpuFeatures& UsableCpuFeatures() {
  static const CpuFeatures usable = CapCpuFeatures(DetectCpuFeatures(), ProcessCpuIsaCap());
  return usable;
}

std::string CpuModelName() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    const size_t start =
        colon == std::string::npos ? colon : line.find_first_not_of(" \t", colon + 1);
    if (start != std::string::npos) return line.substr(start);
  }
  return "unknown";
}

std::string CpuFeaturesText(const CpuFeatures& f) {
  auto bit = [](bool on) { return on ? "=1" : "=0"; };
  return std::string("avx2") + bit(f.avx2) + " avxvnni" + bit(f.avxvnni) + " avx512f" +
         bit(f.avx512f) + " avx512bw" + bit(f.avx512bw) + " avx512vl" + bit(f.avx512vl) +
         " avx512vnni" + bit(f.avx512vnni) + " avx512vbmi2" + bit(f.avx512vbmi2);
}

}  // namespace r2f
