#include "accel_sim/sim_report.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/type_resolver_util.h>

#include <array>
#include <cstdio>
#include <memory>

#include "accel_sim/cycle_model.h"
#include "common/metrics.h"

namespace r2f::accel {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

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

// --- JSON through google.protobuf.Struct, serialised deterministically (sorted keys).

Value Number(double v) {
  Value out;
  out.set_number_value(v);
  return out;
}
Value Text(const std::string& v) {
  Value out;
  out.set_string_value(v);
  return out;
}
Value SiteObject(const SiteCounts& counts) {
  Value out;
  for (int s = 0; s < kNumFaultSites; ++s) {
    (*out.mutable_struct_value()->mutable_fields())[FaultSiteName(static_cast<FaultSite>(s))] =
        Number(static_cast<double>(counts[s]));
  }
  return out;
}

Result<std::string> ToJson(const Struct& object) {
  std::string binary;
  {
    google::protobuf::io::StringOutputStream stream(&binary);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);  // map keys in sorted order
    if (!object.SerializeToCodedStream(&coded)) return Status::Internal("cannot serialise JSON");
  }
  const std::unique_ptr<google::protobuf::util::TypeResolver> resolver(
      google::protobuf::util::NewTypeResolverForDescriptorPool(
          "type.googleapis.com", google::protobuf::DescriptorPool::generated_pool()));
  std::string json;
  const auto status = google::protobuf::util::BinaryToJsonString(
      resolver.get(), "type.googleapis.com/google.protobuf.Struct", binary, &json);
  if (!status.ok()) return Status::Internal("cannot print JSON: " + status.ToString());
  return json;
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
         Format("wall time %.3g s\n", r.wall_seconds);
  return out;
}

Result<std::string> SimReportJson(const SimRun& run) {
  const DeviceEvalResult& r = run.result;
  Struct json;
  auto& f = *json.mutable_fields();
  f["model"] = Text(run.model_path);
  f["network"] = Text(run.network);
  f["data"] = Text(run.data);
  f["images"] = Number(static_cast<double>(r.accuracy.count()));
  f["batch"] = Number(run.batch);
  f["ber"] = Number(run.faults.ber);
  Value sites;
  for (int s = 0; s < kNumFaultSites; ++s) {
    if (run.faults.sites[s]) {
      *sites.mutable_list_value()->add_values() = Text(FaultSiteName(static_cast<FaultSite>(s)));
    }
  }
  sites.mutable_list_value();  // an empty list, not a null, when no site is on
  f["sites"] = sites;
  f["sampling"] = Text(run.faults.sampling == Sampling::kSparse ? "sparse" : "dense");
  f["seed"] = Number(static_cast<double>(run.faults.seed));
  f["tag"] = Number(static_cast<double>(run.tag));
  f["tmr"] = Text(TmrModeName(run.tmr.mode));
  Value protect;
  protect.mutable_list_value();
  for (uint32_t id : run.tmr.protected_layers) {
    *protect.mutable_list_value()->add_values() = Number(id);
  }
  f["protect"] = protect;
  f["top1"] = Number(r.accuracy.Top1());
  f["top1_ci95"] = Number(r.accuracy.Top1Ci95());
  f["top5"] = Number(r.accuracy.Top5());
  f["top5_ci95"] = Number(Top5Ci95(r.accuracy));
  f["flips"] = Number(static_cast<double>(r.total_flips));
  f["flips_per_site"] = SiteObject(TotalFlips(run));
  f["exposed_bits_per_site"] = SiteObject(TotalExposed(run));
  f["cycles"] = Number(static_cast<double>(r.total_cycles));
  f["seconds"] = Number(CyclesToSeconds(run.accelerator, r.total_cycles));
  f["clock_mhz"] = Number(run.accelerator.clock_mhz);
  f["wall_seconds"] = Number(r.wall_seconds);
  Value layers;
  layers.mutable_list_value();
  for (size_t l = 0; l < r.faults.size(); ++l) {
    Value layer;
    auto& lf = *layer.mutable_struct_value()->mutable_fields();
    lf["node_id"] = Number(r.faults[l].node_id);
    lf["name"] = Text(l < run.layer_names.size() ? run.layer_names[l] : "");
    lf["executions"] = Number(l < r.cycles.size() ? r.cycles[l].executions : 1);
    if (run.similarity && l < r.layer_similarity.size()) {
      lf["similarity"] = Number(r.layer_similarity[l]);
    } else {
      lf["similarity"].set_null_value(google::protobuf::NULL_VALUE);
    }
    SiteCounts layer_flips;
    for (int s = 0; s < kNumFaultSites; ++s) layer_flips[s] = r.faults[l].flips[s];
    lf["flips"] = SiteObject(layer_flips);
    lf["cycles"] =
        Number(static_cast<double>(l < r.cycles.size() ? LayerCyclesTotal(r.cycles[l]) : 0));
    *layers.mutable_list_value()->add_values() = layer;
  }
  f["layers"] = layers;
  return ToJson(json);
}

}  // namespace r2f::accel
