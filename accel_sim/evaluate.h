// Accuracy of a deployed model on a data set, measured on the (faulty) simulated accelerator.
// Shared by r2f_sim, the device daemon's evaluation path and the server's int8 evaluation.
#pragma once

#include <cstdint>
#include <vector>

#include "accel_sim/accelerator.h"
#include "common/base/metrics.h"
#include "common/base/status.h"
#include "common/data/dataset.h"

namespace r2f::accel {

struct DeviceEvalOptions {
  int batch_size = 64;
  int64_t limit = 0;                 // first `limit` samples; 0 = all
  std::vector<uint64_t> sample_ids;  // explicit samples (overrides limit) when not empty
  FaultConfig faults;
  TmrConfig tmr;
  uint64_t execution_tag = 0;
  bool layer_similarity = false;  // also run the clean model and compare every MAC layer
};

struct DeviceEvalResult {
  Accuracy accuracy;
  std::vector<uint32_t> predictions;    // top-1 class per evaluated sample, in order
  std::vector<LayerFaultStats> faults;  // summed over batches, per MAC layer
  std::vector<LayerCycles> cycles;      // summed over batches, per MAC layer
  int64_t total_cycles = 0;
  uint64_t total_flips = 0;
  std::vector<double> layer_similarity;  // per MAC layer: share of outputs equal to clean
  double wall_seconds = 0;
};

Result<DeviceEvalResult> EvaluateOnDevice(Accelerator& device, const Dataset& data,
                                          const DeviceEvalOptions& options);

// Adds `run` (one batch) into running totals of the same model.
void AccumulateStats(const RunStats& run, std::vector<LayerFaultStats>* faults,
                     std::vector<LayerCycles>* cycles, int64_t* total_cycles,
                     uint64_t* total_flips);

}  // namespace r2f::accel
