#include "tests/bench/forward_once.h"

#include <chrono>
#include <numeric>

#include "tests/bench/process_cpu.h"

namespace r2f::bench {

Result<uint64_t> ForwardOnce(accel::Accelerator& device, const std::vector<uint8_t>& pixels,
                             int batch, Mode mode, uint64_t tag) {
  accel::FaultConfig faults;
  if (mode != Mode::kClean) faults.ber = 1e-4;
  if (mode == Mode::kDense) faults.sampling = accel::Sampling::kDense;
  accel::TmrConfig tmr;
  if (mode == Mode::kLayerWise) tmr.mode = accel::TmrMode::kLayerWise;
  if (mode == Mode::kNetworkWise) tmr.mode = accel::TmrMode::kNetworkWise;
  accel::ImageBatch images;
  images.pixels = pixels.data();
  images.batch = batch;
  images.sample_ids.resize(static_cast<size_t>(batch));
  std::iota(images.sample_ids.begin(), images.sample_ids.end(), uint64_t{0});
  if (mode == Mode::kTraining || mode == Mode::kTrainingExact) {
    const accel::TrainingReference reference = mode == Mode::kTraining
                                                   ? accel::TrainingReference::kChain
                                                   : accel::TrainingReference::kLocalExact;
    R2F_ASSIGN_OR_RETURN(accel::TrainingResult r,
                         device.RunTraining(images, faults, tmr, tag, reference));
    benchmark::DoNotOptimize(r.logits.data.data());
    return r.faulty_stats.total_flips + r.reference_stats.total_flips;
  }
  R2F_ASSIGN_OR_RETURN(accel::InferenceResult r, device.Infer(images, faults, tmr, tag, false));
  benchmark::DoNotOptimize(r.logits.data.data());
  return r.stats.total_flips;
}

void TimeForward(benchmark::State& state, accel::Accelerator& device,
                 const std::vector<uint8_t>& pixels, int batch, Mode mode) {
  uint64_t tag = 1;
  if (Result<uint64_t> warm = ForwardOnce(device, pixels, batch, mode, tag++); !warm.ok()) {
    state.SkipWithError(warm.status().ToString().c_str());
    return;
  }
  uint64_t flips = 0;
  const double cpu_start = ProcessCpuSeconds();
  const auto wall_start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    Result<uint64_t> r = ForwardOnce(device, pixels, batch, mode, tag++);
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      break;
    }
    flips += *r;
  }
  const std::chrono::duration<double> wall = std::chrono::steady_clock::now() - wall_start;
  // How many threads were busy on average: the rest of kThreads waited (barriers, serial
  // parts). Google Benchmark's CPU time is the main thread's only.
  if (wall.count() > 0)
    state.counters["threads_busy"] = (ProcessCpuSeconds() - cpu_start) / wall.count();
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * batch);
  state.counters["flips_per_batch"] =
      benchmark::Counter(static_cast<double>(flips), benchmark::Counter::kAvgIterations);
}

}  // namespace r2f::bench
