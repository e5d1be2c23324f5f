#include "server/search/search.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "accel_sim/cycle_model.h"
#include "common/base/atomic_file.h"
#include "common/base/json.h"
#include "common/base/permutation.h"
#include "common/base/random.h"
#include "common/ir/graph.h"
#include "server/api/remote_eval.h"

namespace r2f {
namespace {

// Execution tags of the search: one per greedy step, shared by all candidates of the step.
constexpr uint64_t kSearchTagBase = 3ull << 60;

Json EvaluationJson(const SearchEvaluation& e) {
  return {{"step", e.step},
          {"protected_layers", e.protected_layers},
          {"accuracy", e.accuracy},
          {"overhead", e.overhead}};
}

std::string SearchJson(const SearchConfig& c, const SearchRun& run, const std::string& network) {
  const SearchResult& r = run.result;
  Json trajectory = Json::array();
  for (const SearchEvaluation& e : r.trajectory) trajectory.push_back(EvaluationJson(e));
  const Json json = {{"config", c.source},
                     {"network", network},
                     {"method", c.method},
                     {"r_max", c.r_max},
                     {"validation_images", run.validation_images},
                     {"candidates", run.layers},
                     {"cost_cycles", run.cost},
                     {"base_accuracy", run.base_accuracy},
                     {"protected_layers", r.protected_layers},
                     {"accuracy", r.accuracy},
                     {"overhead", r.overhead},
                     {"evaluations", r.evaluations},
                     {"wall_seconds", run.wall_seconds},
                     {"trajectory", trajectory}};
  return DumpJson(json, 2) + "\n";
}

}  // namespace

int64_t ExpectedGreedyEvaluations(int64_t L, int64_t s) { return (s + 1) * (2 * L - s) / 2; }
int64_t ExpectedBackwardEvaluations(int64_t L, int64_t s) { return (L + s + 1) * (L - s) / 2; }

Result<SearchConfig> LoadSearchConfig(const std::string& path) {
  R2F_ASSIGN_OR_RETURN(ConfigMap map, ConfigMap::LoadFile(path));
  SearchConfig c;
  c.source = path;
  ParseRemoteSession(map, "search", &c.session);
  ConfigMap s = map.Section("search");
  c.r_max = s.GetDouble("r_max", c.r_max, 0.0, 2.0);
  c.images = s.GetInt("images", c.images, 1, INT32_MAX);
  c.batch_size = static_cast<int>(s.GetInt("batch_size", c.batch_size, 1, 1 << 16));
  c.seed = static_cast<uint64_t>(s.GetInt("seed", static_cast<int64_t>(c.seed), 0, INT64_MAX));
  c.method = s.GetChoice("method", c.method, {"greedy", "greedy_fit", "backward", "brute_force"});
  for (int64_t id : s.GetIntList("candidates", {}, 0, UINT32_MAX)) {
    c.candidates.push_back(static_cast<uint32_t>(id));
  }
  ConfigMap r = map.Section("run");
  c.run_dir = r.GetString("dir", c.run_dir);
  if (c.session.tmr.mode != accel::TmrMode::kNone) {
    map.Fail("tmr", "the search chooses the protection set itself; leave tmr.mode at none");
  }
  R2F_RETURN_IF_ERROR(map.Finish());
  return c;
}

// The candidate layers and their costs O_i: the cycle model's cycles of each MAC layer for one
// validation batch on the device's accelerator.
Status ChooseCandidates(const SearchConfig& c, const pb::Graph& graph,
                        const accel::AcceleratorConfig& device, SearchRun* run) {
  const accel::MacLayerCosts costs = accel::ModelMacLayerCosts(device, graph, c.batch_size);
  for (size_t i = 0; i < costs.layers.size(); ++i) {
    if (!c.candidates.empty() && std::find(c.candidates.begin(), c.candidates.end(),
                                           costs.layers[i]) == c.candidates.end()) {
      continue;
    }
    run->layers.push_back(costs.layers[i]);
    run->cost.push_back(costs.cycles[i]);
  }
  // Each candidate named: one that is no MAC layer, or one listed twice.
  for (size_t i = 0; i < c.candidates.size(); ++i) {
    const uint32_t id = c.candidates[i];
    if (std::find(costs.layers.begin(), costs.layers.end(), id) == costs.layers.end()) {
      return Status::InvalidArgument("search.candidates: layer " + std::to_string(id) +
                                     " is not a MAC layer of the model");
    }
    if (std::find(c.candidates.begin(), c.candidates.begin() + i, id) != c.candidates.begin() + i) {
      return Status::InvalidArgument("search.candidates: layer " + std::to_string(id) +
                                     " is listed twice");
    }
  }
  return Status::Ok();
}

namespace {

// The validation subset: a seeded sample of the device's train split, evaluated with partial
// TMR on the model deployed once (by the caller).
Result<EvalSettings> ValidationSettings(const SearchConfig& c, R2fServer& server) {
  EvalSettings e;
  e.split = pb::SPLIT_TRAIN;
  e.batch_size = c.batch_size;
  e.deploy_as_delta = true;
  e.tmr.mode = accel::TmrMode::kPartial;
  e.deploy = false;
  R2F_ASSIGN_OR_RETURN(pb::Ack state, server.LastAck(c.session.device_id));
  const uint64_t available = state.train_samples();
  if (available == 0) {
    return Status::InvalidArgument("device '" + c.session.device_id + "' has no training data");
  }
  std::vector<uint32_t> order = SeededPermutation(available, MixKey({c.seed, 0x5EA4ull}));
  for (int64_t i = 0; i < c.images && i < static_cast<int64_t>(available); ++i) {
    e.sample_ids.push_back(order[i]);
  }
  return e;
}

}  // namespace

Result<SearchRun> RunCriticalLayerSearch(const SearchConfig& c) {
  const auto start = std::chrono::steady_clock::now();
  R2F_ASSIGN_OR_RETURN(pb::QuantizedModel model, LoadSessionModel(c.session));
  pb::Graph graph = model.graph();
  R2F_RETURN_IF_ERROR(InferShapes(&graph).WithContext("model"));
  R2F_ASSIGN_OR_RETURN(std::unique_ptr<R2fServer> server, R2fServer::Connect(c.session.server));
  const std::string& device = c.session.device_id;
  R2F_ASSIGN_OR_RETURN(pb::Ack ack, server->deployModel(device, model, true));
  Result<accel::AcceleratorConfig> geometry = accel::AcceleratorConfigFromProto(ack.accelerator());
  if (!geometry.ok()) return geometry.status().WithContext("device '" + device + "' Ack");
  SearchRun run;
  R2F_RETURN_IF_ERROR(ChooseCandidates(c, graph, *geometry, &run));
  std::error_code ec;
  std::filesystem::create_directories(c.run_dir, ec);
  if (ec) return Status::IoError("cannot create " + c.run_dir + ": " + ec.message());
  const std::string evaluations_path = c.run_dir + "/evaluations.jsonl";
  std::ofstream evaluations(evaluations_path, std::ios::trunc);
  if (!evaluations) return Status::IoError("cannot write " + evaluations_path);
  R2F_ASSIGN_OR_RETURN(EvalSettings e, ValidationSettings(c, *server));
  run.validation_images = static_cast<int64_t>(e.sample_ids.size());

  int64_t calls = 0;
  auto measure = [&](const std::vector<uint32_t>& protect, int step) -> Result<double> {
    e.tmr.protected_layers = protect;
    e.execution_tag = kSearchTagBase + static_cast<uint64_t>(step);
    R2F_ASSIGN_OR_RETURN(RemoteEvalResult r, RunRemoteEval(*server, device, model, e));
    ++calls;
    SearchEvaluation ev;
    ev.step = step;
    ev.protected_layers = protect;
    ev.accuracy = r.accuracy.Top1();
    ev.overhead = RedundantOverhead(run.layers, run.cost, protect);
    evaluations << DumpJson(EvaluationJson(ev)) << "\n";
    evaluations.flush();
    spdlog::info("search step {} S={} top-1 {:.2f}% r={:.3f} ({} evaluations)", step,
                 DumpJson(Json(protect)), ev.accuracy, ev.overhead, calls);
    return ev.accuracy;
  };
  R2F_ASSIGN_OR_RETURN(run.base_accuracy, measure({}, 0));
  if (c.method == "brute_force") {
    R2F_ASSIGN_OR_RETURN(run.result,
                         BruteForceCriticalLayerSearch(run.layers, run.cost, c.r_max, measure));
  } else if (c.method == "backward") {
    R2F_ASSIGN_OR_RETURN(run.result,
                         BackwardCriticalLayerSearch(run.layers, run.cost, c.r_max, measure));
  } else {
    R2F_ASSIGN_OR_RETURN(run.result, GreedyCriticalLayerSearch(run.layers, run.cost, c.r_max,
                                                               measure, c.method == "greedy_fit"));
  }
  // The result's accuracy where the search measured no set: none protected (Base), or every
  // candidate within r_max from the start (backward elimination has nothing to drop).
  if (run.result.protected_layers.empty()) {
    run.result.accuracy = run.base_accuracy;
  } else if (c.method == "backward" && run.result.trajectory.empty()) {
    R2F_ASSIGN_OR_RETURN(run.result.accuracy, measure(run.result.protected_layers, 0));
    ++run.result.evaluations;  // as evaluations.jsonl counts it
  }
  run.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  run.result_path = c.run_dir + "/search.json";
  R2F_RETURN_IF_ERROR(WriteFileAtomically(run.result_path, SearchJson(c, run, graph.name())));
  return run;
}

}  // namespace r2f
