// r2f_server: the server side of R2F (models, pretrain, eval, retrain, search).
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "common/graph.h"
#include "common/logging.h"
#include "server/model_zoo.h"
#include "server/pretrain.h"

namespace {

int Fail(const r2f::Status& status) {
  std::fprintf(stderr, "r2f_server: error: %s\n", status.ToString().c_str());
  return 1;
}

int ListModels() {
  std::printf("%-14s %6s %6s %10s %12s  %s\n", "network", "width", "layers", "params",
              "MACs/image", "input");
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"R2F server: model zoo, pre-training, remote evaluation and retraining"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error");

  auto* models = app.add_subcommand("models", "list the model zoo at default widths");
  auto* pretrain = app.add_subcommand("pretrain", "float pre-training, int8 export, evaluation");
  std::string pretrain_config;
  pretrain->add_option("--config", pretrain_config, "pretrain YAML config")->required();

  CLI11_PARSE(app, argc, argv);
  if (auto st = r2f::InitLogging(log_level, ""); !st.ok()) return Fail(st);
  if (models->parsed()) return ListModels();
  if (pretrain->parsed()) return Pretrain(pretrain_config);
  return 0;
}
