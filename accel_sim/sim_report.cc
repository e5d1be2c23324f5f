#include "accel_sim/sim_report.h"

#include <array>
#include <cstdio>
#include <memory>

#include "accel_sim/cycle_model.h"
#include "accel_sim/int16_gemm.h"
#include "common/base/cpu_features.h"
#include "common/base/json.h"
#include "common/base/metrics.h"

namespace r2f::accel {
namespace {

using SiteCounts = std::array<uint64_t, kNumFaultSites>;

SiteCounts TotalFlips(const SimRun& run) {
  SiteCounts total = {};
  for (const LayerFaultStats& l : run.result.faults) {
    for (int s = 0; s < kNumFaultSites; ++s) total[s] += l.flips[s];
  }
  return total;
}

SiteCounts TotalExposed(const SimRun& run) {
  SiteCounts total = {};
  for (const LayerFaultStats& l : run.result.faults) {
    for (int s = 0; s < kNumFaultSites; ++s) total[s] += l.exposed_bits[s];
  }
  return total;
}

int64_t LayerCyclesTotal(const LayerCycles& c) {
  return (c.compute_cycles + c.stall_cycles) * c.executions;
}

double Top5Ci95(const Accuracy& a) { return 100.0 * WilsonHalfWidth95(a.top5_hits(), a.count()); }

std::string SiteList(const FaultConfig& f) {
  std::string out;
  for (int s = 0; s < kNumFaultSites; ++s) {
    if (!f.sites[s]) continue;
    if (!out.empty()) out += ",";
    out += FaultSiteName(static_cast<FaultSite>(s));
  }
  return out.empty() ? "none" : out;
}

std::string Format(const char* fmt, double a, double b = 0, double c = 0) {
  char buf[256];
  std::snprintf(buf, sizeof(buf), fmt, a, b, c);
  return buf;
}

Json SiteObject(const SiteCounts& counts) {
  Json out = Json::object();
  for (int s = 0; s < kNumFaultSites; ++s)
    out[FaultSiteName(static_cast<FaultSite>(s))] = counts[s];
  return out;
}

}  // namespace

std::string SimReportText(const SimRun& run) {
  const DeviceEvalResult& r = run.result;
  const AcceleratorConfig& a = run.accelerator;
  std::string out;
  out += "model " + run.model_path + " ('" + run.network + "', " +
         std::to_string(run.layer_names.size()) + " MAC layers) on " + run.data + ": " +
         std::to_string(r.accuracy.count()) + " images in batches of " + std::to_string(run.batch) +
         "\n";
  out += Format("accelerator %gx%g PEs, ", a.rows, a.cols) +
         Format("%g KB buffer, %g B/cycle DRAM, %g MHz\n", a.buffer_kb, a.dram_bytes_per_cycle,
                a.clock_mhz);
  out += Format("faults: BER %g", run.faults.ber) + " at " + SiteList(run.faults) + " (" +
         (run.faults.sampling == Sampling::kSparse ? "sparse" : "dense") + " sampling), seed " +
         std::to_string(run.faults.seed) + ", tag " + std::to_string(run.tag) + "; TMR " +
         TmrModeName(run.tmr.mode);
  for (size_t i = 0; i < run.tmr.protected_layers.size(); ++i) {
    out += (i == 0 ? " on layers " : ",") + std::to_string(run.tmr.protected_layers[i]);
  }
  out += "\n\n";
  out += Format("top-1 %.2f%% +-%.2f, ", r.accuracy.Top1(), r.accuracy.Top1Ci95()) +
         Format("top-5 %.2f%% +-%.2f (95%% Wilson intervals, n = ", r.accuracy.Top5(),
                Top5Ci95(r.accuracy)) +
         std::to_string(r.accuracy.count()) + ")\n\n";

  const SiteCounts flips = TotalFlips(run), exposed = TotalExposed(run);
  out += "site         flips     exposed bits   observed rate\n";
  for (int s = 0; s < kNumFaultSites; ++s) {
    char line[160];
    std::snprintf(
        line, sizeof(line), "%-8s %9llu %16llu   %.3g\n", FaultSiteName(static_cast<FaultSite>(s)),
        static_cast<unsigned long long>(flips[s]), static_cast<unsigned long long>(exposed[s]),
        exposed[s] ? static_cast<double>(flips[s]) / static_cast<double>(exposed[s]) : 0.0);
    out += line;
  }
  out += "total    " + std::to_string(r.total_flips) + "\n\n";

  out +=
      " node  layer                      exec  same as clean   flips w/i/h/o            cycles\n";
  for (size_t l = 0; l < r.faults.size(); ++l) {
    const LayerFaultStats& f = r.faults[l];
    const std::string flips_text = std::to_string(f.flips[0]) + "/" + std::to_string(f.flips[1]) +
                                   "/" + std::to_string(f.flips[2]) + "/" +
                                   std::to_string(f.flips[3]);
    const std::string similarity = run.similarity && l < r.layer_similarity.size()
                                       ? Format("%12.4f%%", 100.0 * r.layer_similarity[l])
                                       : "           -";
    char line[256];
    std::snprintf(line, sizeof(line), "%5u  %-26s %4d  %s   %-20s %12lld\n", f.node_id,
                  l < run.layer_names.size() ? run.layer_names[l].c_str() : "?",
                  l < r.cycles.size() ? r.cycles[l].executions : 1, similarity.c_str(),
                  flips_text.c_str(),
                  static_cast<long long>(l < r.cycles.size() ? LayerCyclesTotal(r.cycles[l]) : 0));
    out += line;
  }
  out += "\ncycles " + std::to_string(r.total_cycles) +
         Format(" (TMR executions included): %.6g s modelled at %g MHz; ",
                CyclesToSeconds(a, r.total_cycles), a.clock_mhz) +
         Format("wall time %.3g s", r.wall_seconds) + " on " + CpuModelName() + " (GEMM kernel " +
         GemmIsaName(BestGemmIsa()) + ", R2F_CPU_ISA " + CpuIsaCapName(ProcessCpuIsaCap()) + ")\n";
  return out;
}

Result<std::string> SimReportJson(const SimRun& run) {
  const DeviceEvalResult& r = run.result;
  Json sites = Json::array();
  for (int s = 0; s < kNumFaultSites; ++s) {
    if (run.faults.sites[s]) sites.push_back(FaultSiteName(static_cast<FaultSite>(s)));
  }
  Json layers = Json::array();
  for (size_t l = 0; l < r.faults.size(); ++l) {
    SiteCounts layer_flips;
    for (int s = 0; s < kNumFaultSites; ++s) layer_flips[s] = r.faults[l].flips[s];
    Json similarity;  // null without the similarity measurement
    if (run.similarity && l < r.layer_similarity.size()) similarity = r.layer_similarity[l];
    layers.push_back({{"node_id", r.faults[l].node_id},
                      {"name", l < run.layer_names.size() ? run.layer_names[l] : ""},
                      {"executions", l < r.cycles.size() ? r.cycles[l].executions : 1},
                      {"similarity", similarity},
                      {"flips", SiteObject(layer_flips)},
                      {"cycles", l < r.cycles.size() ? LayerCyclesTotal(r.cycles[l]) : 0}});
  }
  const Json json = {{"model", run.model_path},
                     {"network", run.network},
                     {"data", run.data},
                     {"images", r.accuracy.count()},
                     {"batch", run.batch},
                     {"ber", run.faults.ber},
                     {"sites", sites},
                     {"sampling", run.faults.sampling == Sampling::kSparse ? "sparse" : "dense"},
                     {"seed", run.faults.seed},
                     {"tag", run.tag},
                     {"tmr", TmrModeName(run.tmr.mode)},
                     {"protect", run.tmr.protected_layers},
                     {"top1", r.accuracy.Top1()},
                     {"top1_ci95", r.accuracy.Top1Ci95()},
                     {"top5", r.accuracy.Top5()},
                     {"top5_ci95", Top5Ci95(r.accuracy)},
                     {"flips", r.total_flips},
                     {"flips_per_site", SiteObject(TotalFlips(run))},
                     {"exposed_bits_per_site", SiteObject(TotalExposed(run))},
                     {"cycles", r.total_cycles},
                     {"seconds", CyclesToSeconds(run.accelerator, r.total_cycles)},
                     {"clock_mhz", run.accelerator.clock_mhz},
                     {"wall_seconds", r.wall_seconds},
                     // Where the wall time was measured (common/base/cpu_features.h).
                     {"host",
                      {{"cpu_model", CpuModelName()},
                       {"gemm_kernel", GemmIsaName(BestGemmIsa())},
                       {"cpu_isa_cap", CpuIsaCapName(ProcessCpuIsaCap())}}},
                     {"layers", layers}};
  return DumpJson(json);
}

}  // namespace r2f::accel
