// r2f_sim: runs a deployed int8 model (a QuantizedModel file) on test images on the simulated
// faulty accelerator, without any network or server: accuracy with confidence intervals, the
// per-layer similarity of the outputs to the clean ones, flips per site and layer, cycles and
// modelled time. docs/accel_sim.md "r2f_sim" has examples and the JSON fields.
//
//   r2f_sim --model cache/models/resnet18-262c8c9e4a/model.pb --images 2000 --ber 1e-4 --json
//   r2f_sim --model m.pb --ber 1e-4 --tmr partial --protect 3,5,8 --report cycles.csv
//
// Exit status 0 on success; 1 with "r2f_sim: error: ..." on stderr for a bad model, data set or
// option value (CLI11 reports malformed options itself, with its own non-zero codes).
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "accel_sim/accelerator.h"
#include "accel_sim/cycle_model.h"
#include "accel_sim/evaluate.h"
#include "accel_sim/omp_wait_policy.h"
#include "accel_sim/sim_report.h"
#include "common/base/malloc_policy.h"
#include "common/data/dataset.h"
#include "common/ir/model_file.h"

namespace {

using namespace r2f;
using namespace r2f::accel;

int Fail(const Status& status) {
  std::fprintf(stderr, "r2f_sim: error: %s\n", status.ToString().c_str());
  return 1;
}

// "weights,inputs", "all" or "none" -> the enabled sites.
Result<std::array<bool, kNumFaultSites>> ParseSites(const std::string& list) {
  std::array<bool, kNumFaultSites> on = {false, false, false, false};
  if (list == "all") return std::array<bool, kNumFaultSites>{true, true, true, true};
  if (list == "none") return on;
  std::stringstream in(list);
  std::string name;
  int count = 0;
  while (std::getline(in, name, ',')) {
    ++count;
    Result<FaultSite> site = ParseFaultSite(name);
    if (!site.ok()) return site.status().WithContext("--sites");
    bool& flag = on[static_cast<int>(*site)];
    if (flag) return Status::InvalidArgument("--sites: '" + name + "' is listed twice");
    flag = true;
  }
  if (count == 0) {
    return Status::InvalidArgument("--sites: empty list (use 'none' to disable every site)");
  }
  return on;
}

struct Options {
  std::string model;
  DatasetSpec data;
  int64_t images = 0;
  int batch = 16;
  double ber = 0;
  std::string sites = "all";
  std::string sampling = "sparse";
  uint64_t seed = 1;
  uint64_t tag = 0;
  std::string tmr = "none";
  std::vector<uint32_t> protect;
  AcceleratorConfig accelerator;
  bool json = false;
  std::string report;
  bool no_similarity = false;
};

// The checks CLI11 cannot express; the model-dependent ones are the accelerator's.
Status Resolve(const Options& o, bool tmr_given, FaultConfig* faults, TmrConfig* tmr) {
  if (!(o.ber >= 0.0 && o.ber <= 1.0)) {
    return Status::InvalidArgument("--ber " + std::to_string(o.ber) + " is outside [0, 1]");
  }
  faults->ber = o.ber;
  faults->seed = o.seed;
  faults->sampling = o.sampling == "dense" ? Sampling::kDense : Sampling::kSparse;
  R2F_ASSIGN_OR_RETURN(faults->sites, ParseSites(o.sites));
  Result<TmrMode> mode = ParseTmrMode(o.tmr);
  if (!mode.ok()) return mode.status().WithContext("--tmr");
  tmr->mode = *mode;
  if (!o.protect.empty()) {
    // A protection set means partial TMR; it means nothing with the other modes.
    if (!tmr_given) tmr->mode = TmrMode::kPartial;
    if (tmr->mode != TmrMode::kPartial) {
      return Status::InvalidArgument("--protect applies to --tmr partial, not --tmr " + o.tmr);
    }
    tmr->protected_layers = o.protect;
  }
  return Status::Ok();
}

Status Run(const Options& o, bool tmr_given) {
  FaultConfig faults;
  TmrConfig tmr;
  R2F_RETURN_IF_ERROR(Resolve(o, tmr_given, &faults, &tmr));
  R2F_ASSIGN_OR_RETURN(pb::QuantizedModel model, LoadQuantizedModelFile(o.model));
  Result<std::unique_ptr<Accelerator>> device = Accelerator::Create(model, o.accelerator);
  if (!device.ok()) return device.status().WithContext("model '" + o.model + "'");
  DatasetSpec spec = o.data;
  spec.limit = o.images;
  R2F_ASSIGN_OR_RETURN(Dataset data, LoadDataset(spec));

  DeviceEvalOptions eval;
  eval.batch_size = o.batch;
  eval.faults = faults;
  eval.tmr = tmr;
  eval.execution_tag = o.tag;
  eval.layer_similarity = !o.no_similarity;
  SimRun run;
  R2F_ASSIGN_OR_RETURN(run.result, EvaluateOnDevice(**device, data, eval));
  const pb::Graph& graph = (*device)->model().graph();
  run.model_path = o.model;
  run.network = graph.name();
  run.data = data.name;
  run.batch = o.batch;
  run.accelerator = o.accelerator;
  run.faults = faults;
  run.tmr = tmr;
  run.tag = o.tag;
  run.similarity = eval.layer_similarity;
  for (uint32_t id : (*device)->mac_layers()) {
    run.layer_names.push_back(graph.nodes(static_cast<int>(id)).name());
  }

  if (o.json) {
    R2F_ASSIGN_OR_RETURN(std::string json, SimReportJson(run));
    std::printf("%s\n", json.c_str());
  } else {
    std::printf("%s", SimReportText(run).c_str());
  }
  // After the results are out: a report path that cannot be written must not lose the run.
  if (!o.report.empty()) {
    // The batches actually run, each MAC layer counted as often as it executed (TMR).
    const std::vector<LayerCycleReport> layers =
        ModelBatches(o.accelerator, graph, run.result.accuracy.count(), o.batch);
    std::vector<int> executions;
    int64_t total = 0;
    for (size_t l = 0; l < layers.size(); ++l) {
      executions.push_back(run.result.cycles[l].executions);
      total += layers[l].TotalCycles() * executions.back();
    }
    if (total != run.result.total_cycles) {
      return Status::Internal("cycle report sums to " + std::to_string(total) +
                              " cycles, the run counted " +
                              std::to_string(run.result.total_cycles));
    }
    R2F_RETURN_IF_ERROR(WriteCycleReportCsv(o.report, layers, executions));
  }
  return Status::Ok();
}

}  // namespace

int main(int argc, char** argv) {
  ApplyDefaultOmpWaitPolicy(argc, argv);
  KeepFreedMemoryForReuse();
  CLI::App app{"r2f_sim: a deployed int8 model on the simulated faulty accelerator"};
  Options o;
  o.data.split = "test";
  app.add_option("--model", o.model, "QuantizedModel file (binary protobuf, gzip allowed)")
      ->required();
  app.add_option("--data-dir", o.data.dir, "data set directory")->capture_default_str();
  app.add_option("--format", o.data.format, "data set format")
      ->check(CLI::IsMember({"idx", "cifar10"}))
      ->capture_default_str();
  app.add_option("--split", o.data.split, "data set split")
      ->check(CLI::IsMember({"test", "train"}))
      ->capture_default_str();
  app.add_option("--images", o.images, "the first N images of the split (default: all)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--batch", o.batch, "images per accelerator call")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--ber", o.ber, "bit error rate of every enabled site, in [0, 1]")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--sites", o.sites,
                 "fault sites: a list of weights,inputs,hidden,outputs, or all, or none")
      ->capture_default_str();
  app.add_option("--sampling", o.sampling, "flip sampling: sparse (geometric skips) or dense")
      ->check(CLI::IsMember({"sparse", "dense"}))
      ->capture_default_str();
  app.add_option("--seed", o.seed, "the device's fault seed")->capture_default_str();
  app.add_option("--tag", o.tag, "execution tag (another tag, other soft errors)")
      ->capture_default_str();
  CLI::Option* tmr_option =
      app.add_option("--tmr", o.tmr, "TMR mode: none, partial, layer_wise, network_wise")
          ->capture_default_str();
  app.add_option("--protect", o.protect, "node ids of the MAC layers partial TMR protects")
      ->delimiter(',');
  app.add_option("--rows", o.accelerator.rows, "PE rows (reduction dimension)")
      ->capture_default_str();
  app.add_option("--cols", o.accelerator.cols, "PE columns (output channels)")
      ->capture_default_str();
  app.add_option("--buffer-kb", o.accelerator.buffer_kb, "on-chip buffer in KB")
      ->capture_default_str();
  app.add_option("--dram-bw", o.accelerator.dram_bytes_per_cycle, "DRAM bytes per cycle")
      ->capture_default_str();
  app.add_option("--clock-mhz", o.accelerator.clock_mhz, "accelerator clock in MHz")
      ->capture_default_str();
  app.add_flag("--json", o.json, "print one JSON object instead of the text report");
  app.add_option("--report", o.report, "write the per-layer cycle report (CSV) here");
  app.add_flag("--no-similarity", o.no_similarity,
               "skip the clean reference run (no per-layer similarity, faster)");
  CLI11_PARSE(app, argc, argv);

  const Status status = Run(o, tmr_option->count() > 0);
  return status.ok() ? 0 : Fail(status);
}
