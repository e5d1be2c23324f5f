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
//   BM_FaultPrep/lone          on one thread, every MAC layer's flips of every image drawn
//                              and indexed as BM_Forward/ber1e-4's lone executions need them
//   BM_FaultPrep/tmr           the same for three TMR replicas sharing a clean GEMM (input
//                              flips become deltas), as the training pass's reference needs them
//
//   BM_Build/fresh             Accelerator::Create of a retrained BenchModel (1% of its weights
//                              changed): validating and preparing every layer
//   BM_Build/reuse             the same from the running accelerator's prepared layers, as a
//                              device's deployModel builds it (ratio build_reuse/build_fresh)
//
// Every iteration uses a new execution tag, so each sees fresh soft errors.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "accel_sim/compiled_model.h"
#include "accel_sim/execution_faults.h"
#include "accel_sim/fault_sampler.h"
#include "common/base/random.h"
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

// The preparation of a faulty pass alone (accel_sim/graph_executor.cc, PrepareAllFaults): the
// flips drawn (SampleFaultPlan) and indexed (ExecutionFaults::Build) for every MAC layer, image
// and replica, at BER 1e-4, on one thread. It is a part of what BM_Forward/ber1e-4 and the
// training pass cost beyond the clean pass that can be timed apart from the GEMM, so that a
// change to the sampler or the index shows beyond a noisy host's swings.
void BM_FaultPrep(benchmark::State& state, int replicas) {
  static const std::unique_ptr<accel::CompiledModel> model =
      OrDie(accel::CompiledModel::Compile(BenchModel()));
  accel::FaultConfig faults;
  faults.ber = 1e-4;
  std::vector<accel::ExecutionFaults> indexes(static_cast<size_t>(replicas));
  accel::FaultPlan plan;
  uint64_t tag = 0, flips = 0;
  for (auto _ : state) {
    ++tag;
    for (const accel::MacLayer& layer : model->mac_layers()) {
      for (int image = 0; image < kBatch; ++image) {
        for (int r = 0; r < replicas; ++r) {
          const accel::FaultKey key{faults.seed, tag, static_cast<uint64_t>(image), layer.node_id,
                                    static_cast<uint32_t>(r)};
          accel::SampleFaultPlan(faults, key, layer.Exposure(), &plan);
          for (const auto& site : plan.flips) flips += site.size();
          const Status built = indexes[r].Build(layer, plan, /*private_input=*/replicas == 1);
          if (!built.ok()) state.SkipWithError(built.ToString().c_str());
        }
      }
    }
    benchmark::ClobberMemory();
  }
  state.counters["flips"] =
      benchmark::Counter(static_cast<double>(flips) / static_cast<double>(tag));
}
BENCHMARK_CAPTURE(BM_FaultPrep, lone, 1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_FaultPrep, tmr, 3)->UseRealTime()->Unit(benchmark::kMillisecond);

// BenchModel with ~1% of its weights changed (a retraining step's delta) and the next version.
const pb::QuantizedModel& RetrainedBenchModel() {
  static const pb::QuantizedModel model = [] {
    pb::QuantizedModel m = BenchModel();
    uint64_t state = 7;
    for (pb::QuantizedLayer& layer : *m.mutable_layers()) {
      std::string& w = *layer.mutable_weights();
      for (size_t i = SplitMix64(state) % 100; i < w.size(); i += 1 + SplitMix64(state) % 199) {
        w[i] = static_cast<char>(w[i] + 1);
      }
    }
    m.set_model_version(m.model_version() + 1);
    return m;
  }();
  return model;
}

void BM_Build(benchmark::State& state, bool reuse) {
  const accel::Accelerator* running = reuse ? &Device() : nullptr;
  for (auto _ : state) {
    auto built =
        accel::Accelerator::Create(RetrainedBenchModel(), accel::AcceleratorConfig{}, running);
    if (!built.ok()) state.SkipWithError(built.status().ToString().c_str());
    benchmark::DoNotOptimize(built);
  }
}
BENCHMARK_CAPTURE(BM_Build, fresh, false)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Build, reuse, true)->UseRealTime()->Unit(benchmark::kMillisecond);

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
