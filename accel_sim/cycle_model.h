// Analytic cycle model of a weight-stationary systolic array (docs/cycle_model.md), in the manner
// of SCALE-Sim's COMPUTE_REPORT: per MAC layer, the GEMM (M x K x N per group) is cut into
// ceil(K/rows) x ceil(N/cols) folds; each fold loads its weights, streams M rows through the
// array and drains. A layer whose working set exceeds the on-chip buffer pays stall cycles for
// the extra DRAM traffic. docs/cycle_model.md gives the formulas and the comparison with
// SCALE-Sim v2.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "accel_sim/accelerator.h"
#include "common/base/status.h"
#include "common/ir/graph.h"
#include "r2f.pb.h"

namespace r2f::accel {

struct LayerCycleReport {
  uint32_t node_id = 0;
  std::string name;
  int64_t m = 0;  // rows streamed for the whole batch (batch * H_out * W_out)
  int64_t k = 0;
  int64_t n = 0;
  int64_t groups = 1;
  int64_t macs = 0;               // m * k * n * groups
  int64_t folds = 0;              // groups * ceil(k/rows) * ceil(n/cols)
  int64_t compute_cycles = 0;     // sum over folds of the per-fold cost
  int64_t stall_cycles = 0;       // DRAM-bound cycles beyond compute
  int64_t dram_bytes = 0;         // modelled off-chip traffic
  double utilisation = 0;         // macs / ((compute + stall) * rows * cols), in [0, 1]
  double mapping_efficiency = 0;  // mean share of PEs holding a weight, over folds, in [0, 1]
  int64_t TotalCycles() const { return compute_cycles + stall_cycles; }
};

// Checks rows, cols, buffer and bandwidth are positive and clock is positive.
Status ValidateAcceleratorConfig(const AcceleratorConfig& config);

// One MAC layer executed once on a batch of `batch` images. `in_elements` and `out_elements`
// are the per-image element counts of the layer's input and output feature maps (int8 each).
LayerCycleReport ModelLayer(const AcceleratorConfig& config, const GemmShape& gemm, int batch,
                            int64_t in_elements, int64_t out_elements);

// Every MAC layer of a shape-inferred graph, in graph order.
std::vector<LayerCycleReport> ModelNetwork(const AcceleratorConfig& config, const pb::Graph& graph,
                                           int batch);

// The cost O_i of each MAC layer that TMR protection and the critical-layer search weigh: its
// cycles (compute + stall) for one batch, with the node ids, both in graph order.
struct MacLayerCosts {
  std::vector<uint32_t> layers;
  std::vector<double> cycles;
};
MacLayerCosts ModelMacLayerCosts(const AcceleratorConfig& config, const pb::Graph& graph,
                                 int batch);

// A run over `images` images in batches of `batch` (the last batch holds the remainder), each
// batch executed once: per MAC layer, the batches' reports summed (m, MACs, folds, cycles,
// stalls, DRAM bytes); utilisation is recomputed from the sums, mapping efficiency is a
// property of the folds and unchanged. No layers when images <= 0; requires batch > 0.
std::vector<LayerCycleReport> ModelBatches(const AcceleratorConfig& config, const pb::Graph& graph,
                                           int64_t images, int batch);

// Writes the per-layer report as CSV with the header
// layer,name,M,K,N,groups,MACs,folds,cycles,stall_cycles,dram_bytes,utilisation_pct,mapping_efficiency_pct
// (`executions` multiplies cycles for TMR-protected layers; empty means 1 for every layer).
Status WriteCycleReportCsv(const std::string& path, const std::vector<LayerCycleReport>& layers,
                           const std::vector<int>& executions = {});

// Cycles to seconds at the configured clock.
double CyclesToSeconds(const AcceleratorConfig& config, int64_t cycles);

}  // namespace r2f::accel
