// r2f_server: the server side of R2F (models, pretrain, eval, retrain, search).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "common/graph.h"
#include "server/model_zoo.h"

namespace {

int ListModels() {
  std::printf("%-14s %6s %6s %10s %12s  %s\n", "network", "width", "layers", "params",
              "MACs/image", "input");
  for (const std::string& name : r2f::NetworkNames()) {
    auto spec = r2f::DefaultNetworkSpec(name);
    auto graph = r2f::BuildNetwork(*spec);
    if (!graph.ok()) {
      std::fprintf(stderr, "error: %s\n", graph.status().ToString().c_str());
      return 1;
    }
    r2f::GraphStats st = r2f::ComputeStats(*graph);
    std::printf("%-14s %6.2f %6d %10lld %12lld  %s\n", name.c_str(), spec->width, st.mac_layers,
                static_cast<long long>(st.params), static_cast<long long>(st.macs_per_image),
                r2f::ShapeToString(graph->input_shape()).c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"R2F server: model zoo, pre-training, remote evaluation and retraining"};
  app.require_subcommand(1);
  auto* models = app.add_subcommand("models", "list the model zoo at default widths");
  CLI11_PARSE(app, argc, argv);
  if (models->parsed()) return ListModels();
  return 0;
}
