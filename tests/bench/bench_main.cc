// r2f_bench: speed of the simulated accelerator against LibTorch, as ratios measured side by
// side in one run (the machine is shared: absolute times drift with other people's load).
//
//   ./build/bin/r2f_bench
//   ./build/bin/r2f_bench --benchmark_format=json --benchmark_out=bench.json
//
// Unless given on the command line: only the benchmarks of the ratios (BM_Forward/*,
// BM_TorchFp32Forward, the exact codec's, the two training steps and the two builds; the tables'
// BM_Network/*, BM_Gemm/* and BM_FaultPrep/* need a --benchmark_filter),
// 7 repetitions of each in random interleaved order (a burst of load then hits all benchmarks
// alike), at least 0.3 s per repetition. At the end it prints (console) or adds (JSON: a
// top-level "ratios" array, on stdout and in the --benchmark_out file) the ratios of median
// real times with their targets; see tests/bench/ratio_reporter.h and docs/accel_sim.md.
//
// Like r2f_sim, it runs with GOMP_SPINCOUNT=1000 unless OMP_WAIT_POLICY or GOMP_SPINCOUNT
// is set (accel_sim/omp_wait_policy.h); the JSON context records both variables, the CPU model,
// the CPU features that matter to the GEMM and the GEMM kernel that ran. R2F_GEMM_ISA=avx2 (or
// generic, avx512, avx_vnni, avx512_vnni) forces a kernel, to compare them (int16_gemm.h).
#include <benchmark/benchmark.h>
#include <omp.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "accel_sim/int16_gemm.h"
#include "accel_sim/omp_wait_policy.h"
#include "common/base/cpu_features.h"
#include "common/base/malloc_policy.h"
#include "common/codec/flag_pack.h"
#include "tests/bench/bench_model.h"
#include "tests/bench/ratio_reporter.h"

namespace {

using r2f::bench::RatioSpec;

// The ratios and their targets. The simulator's four depend on the GEMM kernel that runs: the
// VNNI kernels (avx512_vnni, avx_vnni) are held to the targets for AVX-512-VNNI machines, the
// others to those for AVX2-only machines, which are the figures measured there before the
// AVX-512 work ("as today or better"; docs/accel_sim.md, "Speed").
const std::vector<RatioSpec>& Targets() {
  static const std::vector<RatioSpec> specs = [] {
    const r2f::accel::GemmIsa isa = r2f::accel::BestGemmIsa();
    const bool vnni =
        isa == r2f::accel::GemmIsa::kAvx512Vnni || isa == r2f::accel::GemmIsa::kAvxVnni;
    const double clean_torch = vnni ? 0.6 : 1.0;
    const double ber_clean = vnni ? 1.05 : 1.13;
    const double dense_ber = vnni ? 30.0 : 11.8;
    const double training_clean = vnni ? 3.0 : 3.22;
    return std::vector<RatioSpec>{
        {"clean/torch", "BM_Forward/clean", "BM_TorchFp32Forward", clean_torch, true},
        {"ber1e-4/clean", "BM_Forward/ber1e-4", "BM_Forward/clean", ber_clean, true},
        {"dense/ber1e-4", "BM_Forward/dense_ber1e-4", "BM_Forward/ber1e-4", dense_ber, false},
        {"training/clean", "BM_Forward/training_mode", "BM_Forward/clean", training_clean, true},
        // The exact method's device pass: the same kind of pass as training_mode, same target.
        {"training_exact/clean", "BM_Forward/training_exact", "BM_Forward/clean", training_clean,
         true},
        // The exact method's codec (tests/bench/codec_bench.cc, BER 1e-4) against the forward
        // pass the device runs for that batch in this method (the faulty pass with three voted
        // replicas per layer), and against a plain faulty inference at the same BER.
        {"exact_encode/training", "BM_ExactEncode", "BM_Forward/training_mode", 0.10, true},
        {"exact_decode/training", "BM_ExactDecode", "BM_Forward/training_mode", 0.10, true},
        {"exact_encode/ber1e-4", "BM_ExactEncode", "BM_Forward/ber1e-4", 0.10, true},
        {"exact_decode/ber1e-4", "BM_ExactDecode", "BM_Forward/ber1e-4", 0.10, true},
        // The server's straight-through fake-quant step against a plain LibTorch fp32 training
        // step of the same network and batch (tests/bench/train_bench.cc).
        {"hil_step/torch_step", "BM_HilTrainStep", "BM_TorchFp32TrainStep", 1.5, true},
        // A deployModel's build of a retrained model from the running one's prepared layers
        // against preparing every layer (tests/bench/accel_bench.cc).
        {"build_reuse/build_fresh", "BM_Build/reuse", "BM_Build/fresh", 0.5, true},
    };
  }();
  return specs;
}

// The value of --name=value among the arguments (the last one wins, as in the library), or
// `fallback`.
std::string Flag(const std::vector<char*>& args, const char* name, const std::string& fallback) {
  const std::string prefix = std::string("--") + name + "=";
  std::string value = fallback;
  for (const char* a : args) {
    if (std::strncmp(a, prefix.c_str(), prefix.size()) == 0) value = a + prefix.size();
  }
  return value;
}

const char* EnvOr(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  r2f::accel::ApplyDefaultOmpWaitPolicy(argc, argv);
  const bool kept = r2f::KeepFreedMemoryForReuse();  // as the daemons run (malloc_policy.h)
  // Defaults first, so that the user's own flags (parsed later) override them.
  std::vector<char*> args = {argv[0]};
  static char filter[] =
      "--benchmark_filter=^BM_Forward/|^BM_TorchFp32Forward|^BM_ExactEncode|^BM_ExactDecode|"
      "^BM_TorchFp32TrainStep|^BM_HilTrainStep|^BM_Build/";
  static char reps[] = "--benchmark_repetitions=7";
  static char interleave[] = "--benchmark_enable_random_interleaving=true";
  static char min_time[] = "--benchmark_min_time=0.3";
  args.insert(args.end(), {filter, reps, interleave, min_time});
  args.insert(args.end(), argv + 1, argv + argc);
  const std::string user_filter =
      Flag(std::vector<char*>(argv + 1, argv + argc), "benchmark_filter", "");
  const std::string format = Flag(args, "benchmark_format", "console");
  const std::string out = Flag(args, "benchmark_out", "");
  const std::string out_format = Flag(args, "benchmark_out_format", "json");
  const std::string color = Flag(args, "benchmark_color", "auto");

  int n = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;

  omp_set_num_threads(r2f::bench::kThreads);
  benchmark::AddCustomContext("r2f_model", "resnet18 width 0.25, 1x28x28, random int8 (seed 1)");
  benchmark::AddCustomContext("r2f_batch", std::to_string(r2f::bench::kBatch));
  benchmark::AddCustomContext("r2f_threads", std::to_string(r2f::bench::kThreads));
  // The GEMM kernel that ran (R2F_GEMM_ISA may force one) and what the CPU offers: figures
  // are only comparable between runs of the same kernel on the same CPU.
  benchmark::AddCustomContext("r2f_gemm_isa", r2f::accel::GemmIsaName(r2f::accel::BestGemmIsa()));
  benchmark::AddCustomContext("R2F_GEMM_ISA", EnvOr("R2F_GEMM_ISA", "(unset)"));
  benchmark::AddCustomContext("r2f_codec_isa", r2f::FlagPackIsaName());
  benchmark::AddCustomContext("R2F_CODEC_ISA", EnvOr("R2F_CODEC_ISA", "(unset)"));
  benchmark::AddCustomContext("r2f_cpu_model", r2f::CpuModelName());
  // What the CPU has, and what the kernels may use (R2F_CPU_ISA caps it: cpu_features.h).
  benchmark::AddCustomContext("r2f_cpu_features", r2f::CpuFeaturesText(r2f::DetectCpuFeatures()));
  benchmark::AddCustomContext("R2F_CPU_ISA", r2f::CpuIsaCapName(r2f::ProcessCpuIsaCap()));
  benchmark::AddCustomContext("r2f_usable_features",
                              r2f::CpuFeaturesText(r2f::UsableCpuFeatures()));
  // LibTorch's own caps, for the fp32 baselines of an emulated AVX2-only machine
  // (docs/accel_sim.md, "Speed").
  for (const char* name : {"ATEN_CPU_CAPABILITY", "OPENBLAS_CORETYPE", "ONEDNN_MAX_CPU_ISA"}) {
    benchmark::AddCustomContext(name, EnvOr(name, "(unset)"));
  }
  benchmark::AddCustomContext("r2f_malloc", kept ? "keep freed memory" : "glibc defaults");
  benchmark::AddCustomContext("OMP_WAIT_POLICY", EnvOr("OMP_WAIT_POLICY", "(unset)"));
  benchmark::AddCustomContext("GOMP_SPINCOUNT", EnvOr("GOMP_SPINCOUNT", "(unset)"));

  const bool use_color = color == "true" || color == "yes" || color == "1" ||
                         (color == "auto" && isatty(STDOUT_FILENO) && std::getenv("TERM"));
  r2f::bench::TimeCollector display_times, file_times;
  auto display = r2f::bench::MakeRatioReporter(format, Targets(), use_color, &display_times);
  auto file = out.empty()
                  ? nullptr
                  : r2f::bench::MakeRatioReporter(out_format, Targets(), false, &file_times);
  if (display == nullptr || (!out.empty() && file == nullptr)) {
    std::fprintf(stderr, "r2f_bench: ratios are reported in console and json formats only\n");
  }
  benchmark::RunSpecifiedBenchmarks(display.get(), file.get());
  benchmark::Shutdown();
  // The default run exists to measure the ratios: a ratio it could not compute (a benchmark
  // renamed or failing) is an error, not a line to overlook.
  if (user_filter.empty() && display != nullptr && !display_times.empty()) {
    for (const r2f::bench::RatioResult& r : display_times.Ratios(Targets())) {
      if (!r.measured) {
        std::fprintf(stderr, "r2f_bench: error: ratio %s was not measured\n", r.spec.name.c_str());
        return 1;
      }
    }
  }
  return 0;
}
