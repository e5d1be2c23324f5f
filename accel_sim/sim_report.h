// What r2f_sim ran and what came out of it, rendered for people (text) and for scripts (one
// JSON object). docs/accel_sim.md "r2f_sim" lists the JSON fields.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "accel_sim/accelerator.h"
#include "accel_sim/evaluate.h"
#include "common/base/status.h"

namespace r2f::accel {

struct SimRun {
  std::string model_path;
  std::string network;  // the graph's name
  std::string data;     // the data set's name, e.g. "fashion-mnist/test"
  int batch = 0;
  AcceleratorConfig accelerator;
  FaultConfig faults;
  TmrConfig tmr;
  uint64_t tag = 0;
  bool similarity = true;                // result.layer_similarity was computed
  std::vector<std::string> layer_names;  // per MAC layer, in graph order
  DeviceEvalResult result;
};

// Several lines: accuracy with confidence intervals, flips per site, a per-layer table
// (similarity to clean, flips per site, cycles) and the modelled time.
std::string SimReportText(const SimRun& run);

// One JSON object on one line, keys in this order: model, network, data, images, batch, ber,
// sites, sampling, seed, tag, tmr, protect, top1, top1_ci95, top5, top5_ci95 (percent), flips,
// flips_per_site, exposed_bits_per_site, cycles, seconds, clock_mhz, wall_seconds, and
// layers: [{node_id, name, executions, similarity (null without it), flips{site: n},
// cycles}].
Result<std::string> SimReportJson(const SimRun& run);

}  // namespace r2f::accel
