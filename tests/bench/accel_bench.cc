// The device-side benchmarks of the ratio run: one batch of 16 images of the default ResNet18
// (bench_model.h) through the int8 executor, clean and with soft errors.
//
//   BM_Forward/clean           Infer at BER 0
//   BM_Forward/ber1e-4         Infer at BER 1e-4, all four sites, sparse sampling
//   BM_Forward/dense_ber1e-4   the same with Sampling::kDense (one Bernoulli per exposed bit)
//   BM_Forward/training_mode   RunTraining at BER 1e-4 (deployed chain + LW-TMR reference)
//   BM_Forward/training_exact  the same with the exact method's layer-local reference (the
//                              device's pass in an APRM-exact iteration)
//
// Every iteration uses a new execution tag, so each sees fresh soft errors.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <utility>

#include "tests/bench/bench_model.h"
#include "tests/bench/forward_once.h"

namespace r2f::bench {
namespace {

accel::Accelerator& Device() {
  static const std::unique_ptr<accel::Accelerator> device = [] {
    auto created = accel::Accelerator::Create(BenchModel(), accel::AcceleratorConfig{});
    if (!created.ok()) {
      std::fprintf(stderr, "r2f_bench: %s\n", created.status().ToString().c_str());
      std::exit(2);
    }
    return std::move(created).value();
  }();
  return *device;
}

void BM_Forward(benchmark::State& state, Mode mode) {
  TimeForward(state, Device(), BenchPixels(), kBatch, mode);
}

// Registered by name (a BENCHMARK_CAPTURE name like ber1e-4 is a token sequence that
// formatting may space out, and the ratios look the names up).
const bool registered = [] {
  const std::pair<const char*, Mode> modes[] = {
      {"BM_Forward/clean", Mode::kClean},
      {"BM_Forward/ber1e-4", Mode::kSparse},
      {"BM_Forward/dense_ber1e-4", Mode::kDense},
      {"BM_Forward/training_mode", Mode::kTraining},
      {"BM_Forward/training_exact", Mode::kTrainingExact}};
  for (const auto& [name, mode] : modes) {
    benchmark::RegisterBenchmark(name, BM_Forward, mode)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  return true;
}();

}  // namespace
}  // namespace r2f::bench
