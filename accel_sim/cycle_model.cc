#include "accel_sim/cycle_model.h"

#include <cmath>
#include <cstdio>
#include <fstream>

namespace r2f::accel {
namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// RFC 4180 quoting for free-text fields (layer names may contain commas in principle).
std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"') out += '"';
    out += ch;
  }
  return out + "\"";
}

std::string Fixed2(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f", v);
  return buf;
}

}  // namespace

Status ValidateAcceleratorConfig(const AcceleratorConfig& c) {
  if (c.rows <= 0 || c.cols <= 0) {
    return Status::InvalidArgument("accelerator: rows and cols must be positive, got " +
                                   std::to_string(c.rows) + " x " + std::to_string(c.cols));
  }
  if (c.buffer_kb <= 0) {
    return Status::InvalidArgument("accelerator: buffer_kb must be positive, got " +
                                   std::to_string(c.buffer_kb));
  }
  if (!(c.dram_bytes_per_cycle > 0) || !std::isfinite(c.dram_bytes_per_cycle)) {
    return Status::InvalidArgument("accelerator: dram_bytes_per_cycle must be positive, got " +
                                   std::to_string(c.dram_bytes_per_cycle));
  }
  if (!(c.clock_mhz > 0) || !std::isfinite(c.clock_mhz)) {
    return Status::InvalidArgument("accelerator: clock_mhz must be positive, got " +
                                   std::to_string(c.clock_mhz));
  }
  return Status::Ok();
}

LayerCycleReport ModelLayer(const AcceleratorConfig& config, const GemmShape& gemm, int batch,
                            int64_t in_elements, int64_t out_elements) {
  LayerCycleReport r;
  const int64_t rows = config.rows, cols = config.cols;
  r.m = gemm.m * batch;
  r.k = gemm.k;
  r.n = gemm.n;
  r.groups = gemm.groups;
  r.macs = r.m * r.k * r.n * r.groups;
  const int64_t row_folds = CeilDiv(r.k, rows);
  const int64_t col_folds = CeilDiv(r.n, cols);
  r.folds = r.groups * row_folds * col_folds;
  // Weight load (rows) + fill (rows + cols - 1) + M streamed rows - 1 = 2R + C + M - 2 cycles.
  r.compute_cycles = r.folds * (2 * rows + cols + r.m - 2);
  // The folds of one group use sum(used rows) = K and sum(used cols) = N, so the mean share of
  // PEs holding a weight is K*N / (row_folds * col_folds * R * C), the same for every group.
  r.mapping_efficiency =
      static_cast<double>(r.k * r.n) / static_cast<double>(row_folds * col_folds * rows * cols);

  const int64_t ifmap = in_elements * batch;
  const int64_t filter = r.k * r.n * r.groups;
  const int64_t ofmap = out_elements * batch;
  if (ifmap + filter + ofmap <= int64_t{config.buffer_kb} * 1024) {
    r.dram_bytes = ifmap + filter + ofmap;  // everything moves once
  } else {
    // Weights stay stationary per column fold; the ifmap streams again for every column fold.
    r.dram_bytes = ifmap * col_folds + filter + ofmap;
  }
  const auto dram_cycles = static_cast<int64_t>(
      std::ceil(static_cast<double>(r.dram_bytes) / config.dram_bytes_per_cycle));
  r.stall_cycles = std::max<int64_t>(0, dram_cycles - r.compute_cycles);
  r.utilisation = static_cast<double>(r.macs) /
                  (static_cast<double>(r.TotalCycles()) * static_cast<double>(rows * cols));
  return r;
}

std::vector<LayerCycleReport> ModelNetwork(const AcceleratorConfig& config, const pb::Graph& graph,
                                           int batch) {
  std::vector<LayerCycleReport> out;
  for (const pb::Node& node : graph.nodes()) {
    if (!IsMacLayer(node)) continue;
    const pb::Shape& in = graph.nodes(node.inputs(0)).output_shape();
    LayerCycleReport r = ModelLayer(config, MacGemmShape(graph, node), batch, NumElements(in),
                                    NumElements(node.output_shape()));
    r.node_id = node.id();
    r.name = node.name();
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<LayerCycleReport> ModelBatches(const AcceleratorConfig& config, const pb::Graph& graph,
                                           int64_t images, int batch) {
  std::vector<LayerCycleReport> total;
  if (images <= 0 || batch <= 0) return total;
  const int64_t full = images / batch;
  const int rest = static_cast<int>(images % batch);
  auto add = [&](const std::vector<LayerCycleReport>& layers, int64_t times) {
    if (total.empty()) {
      total = layers;
      for (LayerCycleReport& r : total) {
        r.m = r.macs = r.folds = r.compute_cycles = r.stall_cycles = r.dram_bytes = 0;
      }
    }
    for (size_t i = 0; i < layers.size(); ++i) {
      LayerCycleReport& t = total[i];
      t.m += layers[i].m * times;
      t.macs += layers[i].macs * times;
      t.folds += layers[i].folds * times;
      t.compute_cycles += layers[i].compute_cycles * times;
      t.stall_cycles += layers[i].stall_cycles * times;
      t.dram_bytes += layers[i].dram_bytes * times;
    }
  };
  if (full > 0) add(ModelNetwork(config, graph, batch), full);
  if (rest > 0) add(ModelNetwork(config, graph, rest), 1);
  for (LayerCycleReport& r : total) {
    r.utilisation =
        static_cast<double>(r.macs) / (static_cast<double>(r.TotalCycles()) *
                                       static_cast<double>(int64_t{config.rows} * config.cols));
  }
  return total;
}

Status WriteCycleReportCsv(const std::string& path, const std::vector<LayerCycleReport>& layers,
                           const std::vector<int>& executions) {
  if (!executions.empty() && executions.size() != layers.size()) {
    return Status::InvalidArgument("cycle report: " + std::to_string(executions.size()) +
                                   " execution counts for " + std::to_string(layers.size()) +
                                   " layers");
  }
  for (int e : executions) {
    if (e < 1) return Status::InvalidArgument("cycle report: execution counts must be >= 1");
  }
  std::ofstream out(path);
  if (!out) return Status::IoError(path + ": cannot open for writing");
  out << "layer,name,M,K,N,groups,MACs,folds,cycles,stall_cycles,dram_bytes,utilisation_pct,"
         "mapping_efficiency_pct\n";
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerCycleReport& r = layers[i];
    // A layer executed e times (TMR) does e times the work; its utilisation is unchanged.
    const int64_t e = executions.empty() ? 1 : executions[i];
    out << r.node_id << ',' << CsvField(r.name) << ',' << r.m << ',' << r.k << ',' << r.n << ','
        << r.groups << ',' << r.macs * e << ',' << r.folds * e << ',' << r.compute_cycles * e << ','
        << r.stall_cycles * e << ',' << r.dram_bytes * e << ',' << Fixed2(100.0 * r.utilisation)
        << ',' << Fixed2(100.0 * r.mapping_efficiency) << '\n';
  }
  out.flush();
  if (!out) return Status::IoError(path + ": write failed");
  return Status::Ok();
}

MacLayerCosts ModelMacLayerCosts(const AcceleratorConfig& config, const pb::Graph& graph,
                                 int batch) {
  MacLayerCosts costs;
  for (const LayerCycleReport& l : ModelNetwork(config, graph, batch)) {
    costs.layers.push_back(l.node_id);
    costs.cycles.push_back(static_cast<double>(l.TotalCycles()));
  }
  return costs;
}

double CyclesToSeconds(const AcceleratorConfig& config, int64_t cycles) {
  return static_cast<double>(cycles) / (config.clock_mhz * 1e6);
}

}  // namespace r2f::accel
