// r2f_server: the server side of R2F (models, pretrain, eval, retrain, search).
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "accel_sim/omp_wait_policy.h"
#include "common/base/logging.h"
#include "common/base/malloc_policy.h"
#include "common/ir/graph.h"
#include "common/ir/model_zoo.h"
#include "common/net/broker_flag.h"
#include "server/api/remote_eval.h"
#include "server/fleet/fleet.h"
#include "server/model/pretrain.h"
#include "server/retrain/retrain.h"
#include "server/search/search.h"

namespace {

int Fail(const r2f::Status& status) {
  std::fprintf(stderr, "r2f_server: error: %s\n", status.ToString().c_str());
  return 1;
}

int ListModels() {
  std::printf("%-14s %6s %6s %10s %12s  %s\n", "network", "width", "layers", "params", "MACs/image",
              "input");
  for (const std::string& name : r2f::NetworkNames()) {
    auto spec = r2f::DefaultNetworkSpec(name);
    auto graph = r2f::BuildNetwork(*spec);
    if (!graph.ok()) return Fail(graph.status());
    r2f::GraphStats st = r2f::ComputeStats(*graph);
    std::printf("%-14s %6.2f %6d %10lld %12lld  %s\n", name.c_str(), spec->width, st.mac_layers,
                static_cast<long long>(st.params), static_cast<long long>(st.macs_per_image),
                r2f::ShapeToString(graph->input_shape()).c_str());
  }
  return 0;
}

int Pretrain(const std::string& config_path) {
  auto config = r2f::LoadPretrainConfig(config_path);
  if (!config.ok()) return Fail(config.status());
  auto result = r2f::RunPretrain(*config);
  if (!result.ok()) return Fail(result.status());
  const r2f::PretrainResult& r = *result;
  std::printf("model      %s\n", r.model_path.c_str());
  std::printf("training   %s (%.0f s)\n", r.reused_checkpoint ? "reused checkpoint" : "trained",
              r.recorded_train_seconds);
  std::printf("float      %s\n", r.float_accuracy.ToString().c_str());
  std::printf("int8       %s\n", r.int8_accuracy.ToString().c_str());
  return 0;
}

// `r2f_server eval`: remote evaluation on a device daemon (server/api/remote_eval.h).
int Eval(const std::string& config_path, const std::string& broker) {
  auto config = r2f::LoadEvalConfig(config_path);
  if (!config.ok()) return Fail(config.status());
  if (!broker.empty()) config->session.server.transport.broker_uri = broker;
  auto model = r2f::LoadSessionModel(config->session);
  if (!model.ok()) return Fail(model.status());
  auto server = r2f::R2fServer::Connect(config->session.server);
  if (!server.ok()) return Fail(server.status().WithContext("connecting to the broker"));
  auto result = r2f::RunRemoteEval(**server, config->session.device_id, *model, config->eval);
  if (!result.ok()) return Fail(result.status());
  std::fputs(r2f::FormatEvalReport(*result).c_str(), stdout);
  return 0;
}

// `r2f_server retrain`: remote retraining over MQTT (server/retrain/retrain.h).
int Retrain(const std::string& config_path, bool resume, const std::string& broker) {
  auto config = r2f::LoadRetrainConfig(config_path);
  if (!config.ok()) return Fail(config.status());
  if (!broker.empty()) config->session.server.transport.broker_uri = broker;
  auto result = r2f::RunRetrain(*config, resume);
  if (!result.ok()) return Fail(result.status());
  const r2f::RetrainResult& r = *result;
  std::printf("run        %s (%lld iterations%s)\n", r.run_dir.c_str(),
              static_cast<long long>(r.iterations), r.resumed_from >= 0 ? ", resumed" : "");
  std::printf("before     %s\n", r.before.ToString().c_str());
  std::printf("after      %s\n", r.after.ToString().c_str());
  std::printf("change     %+.2f points top-1\n\n", r.after.Top1() - r.before.Top1());
  std::fputs(r2f::FormatStageTable(r.timing).c_str(), stdout);
  return 0;
}

// `r2f_server fleet`: many devices, each retrained against its own errors (server/fleet/fleet.h).
int Fleet(const std::string& config_path, bool restart, const std::string& broker) {
  auto config = r2f::LoadFleetConfig(config_path);
  if (!config.ok()) return Fail(config.status());
  if (!broker.empty()) config->base.session.server.transport.broker_uri = broker;
  auto result = r2f::RunFleet(*config, restart);
  if (!result.ok()) return Fail(result.status());
  std::printf("fleet      %zu devices in %.1f s (this server: %s)\n\n", result->jobs.size(),
              result->wall_s, result->server.c_str());
  std::fputs(r2f::FormatFleetTable(*result).c_str(), stdout);
  std::printf("\nresults    %s%s%s\n", result->json_path.c_str(),
              result->plot_path.empty() ? "" : ", plot ", result->plot_path.c_str());
  int failed = 0;
  for (const r2f::FleetJob& j : result->jobs) failed += j.state == r2f::FleetJob::State::kFailed;
  return failed == 0 ? 0 : 3;
}

// `r2f_server search`: the critical-layer search on a remote device (server/search/search.h).
int Search(const std::string& config_path, const std::string& broker) {
  auto config = r2f::LoadSearchConfig(config_path);
  if (!config.ok()) return Fail(config.status());
  if (!broker.empty()) config->session.server.transport.broker_uri = broker;
  auto run = r2f::RunCriticalLayerSearch(*config);
  if (!run.ok()) return Fail(run.status());
  const r2f::SearchResult& r = run->result;
  std::printf("candidates %zu MAC layers, r_max %.2f, %s\n", run->layers.size(), config->r_max,
              config->method == "greedy" ? "greedy (Algorithm 1)" : config->method.c_str());
  std::printf("base       top-1 %.2f%% (no protection)\n", run->base_accuracy);
  for (const r2f::SearchEvaluation& step : r.trajectory) {
    std::printf("step %-3d   %zu layers top-1 %.2f%%  r = %.3f\n", step.step,
                step.protected_layers.size(), step.accuracy, step.overhead);
  }
  std::printf("protected  %zu layers, top-1 %.2f%%, overhead r = %.3f\n", r.protected_layers.size(),
              r.accuracy, r.overhead);
  std::printf("evaluations %lld in %.1f s; written to %s\n", static_cast<long long>(r.evaluations),
              run->wall_seconds, run->result_path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // The server shares its host with devices (the demo, fleets on one machine): LibTorch's
  // OpenMP threads spinning after every training step took the core a device's deployModel
  // needed (docs/results.md, "The server's training step, and the loop after it").
  r2f::accel::ApplyDefaultOmpWaitPolicy(argc, argv);
  r2f::KeepFreedMemoryForReuse();  // training steps allocate megabytes each (malloc_policy.h)
  CLI::App app{"R2F server: model zoo, pre-training, remote evaluation and retraining"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error");

  auto* models = app.add_subcommand("models", "list the model zoo at default widths");
  auto* pretrain = app.add_subcommand("pretrain", "float pre-training, int8 export, evaluation");
  std::string pretrain_config;
  pretrain->add_option("--config", pretrain_config, "pretrain YAML config")->required();

  auto* eval = app.add_subcommand(
      "eval", "deploy a model to a device daemon and evaluate its data set remotely over MQTT");
  std::string eval_config;
  eval->add_option("--config", eval_config, "eval YAML config (see configs/eval.yaml)")->required();

  auto* retrain = app.add_subcommand(
      "retrain", "retrain a model on a remote faulty device (DRM / APRM) over MQTT");
  std::string retrain_config;
  bool resume = false;
  retrain->add_option("--config", retrain_config, "retrain YAML config (configs/retrain/)")
      ->required();
  retrain->add_flag("--resume", resume, "continue after the last checkpoint of the run directory");

  auto* search = app.add_subcommand(
      "search", "greedy critical-layer search (Algorithm 1) on a remote faulty device");
  std::string search_config;
  search->add_option("--config", search_config, "search YAML config (configs/search/)")->required();

  auto* fleet = app.add_subcommand(
      "fleet", "retrain many devices (a list or every online one), several jobs at a time");
  std::string fleet_config;
  bool restart = false;
  fleet->add_option("--config", fleet_config, "fleet YAML config (configs/fleet.yaml)")->required();
  fleet->add_flag("--restart", restart,
                  "remove the fleet's run directory first (no other server may be using it)");

  std::string broker;
  for (CLI::App* remote : {eval, retrain, search, fleet}) {
    remote
        ->add_option("--broker", broker,
                     "broker URI, overriding the config's broker.uri (e.g. tcp://10.0.0.5:1883)")
        ->check(r2f::BrokerUriValidator());
  }

  CLI11_PARSE(app, argc, argv);
  if (auto st = r2f::InitLogging(log_level, ""); !st.ok()) return Fail(st);
  if (models->parsed()) return ListModels();
  if (pretrain->parsed()) return Pretrain(pretrain_config);
  if (eval->parsed()) return Eval(eval_config, broker);
  if (retrain->parsed()) return Retrain(retrain_config, resume, broker);
  if (search->parsed()) return Search(search_config, broker);
  if (fleet->parsed()) return Fleet(fleet_config, restart, broker);
  return 0;
}
