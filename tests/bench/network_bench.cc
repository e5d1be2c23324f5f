// BM_Network/<network>/<mode>: every network of the model zoo (default spec, random full-range
// int8 parameters, batch 16 of random 1x28x28 images) in each mode of forward_once.h. The table
// "Whole networks" of docs/accel_sim.md. Not in r2f_bench's default run:
//
//   r2f_bench --benchmark_filter=BM_Network/ --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "accel_sim/random_model.h"
#include "common/base/random.h"
#include "common/ir/graph.h"
#include "common/ir/model_zoo.h"
#include "tests/bench/bench_model.h"
#include "tests/bench/forward_once.h"

namespace r2f::bench {
namespace {

struct NetworkFixture {
  std::unique_ptr<accel::Accelerator> device;
  std::vector<uint8_t> pixels;
};

Result<NetworkFixture> MakeFixture(const std::string& network) {
  R2F_ASSIGN_OR_RETURN(NetworkSpec spec, DefaultNetworkSpec(network));
  R2F_ASSIGN_OR_RETURN(pb::Graph graph, BuildNetwork(spec));
  R2F_ASSIGN_OR_RETURN(pb::QuantizedModel model,
                       accel::MakeRandomQuantizedModel(graph, kModelSeed));
  NetworkFixture f;
  R2F_ASSIGN_OR_RETURN(f.device, accel::Accelerator::Create(model, accel::AcceleratorConfig{}));
  f.pixels.resize(static_cast<size_t>(NumElements(model.graph().input_shape())) * kBatch);
  Rng rng(HashCombine(kModelSeed, 0x706978656c73ULL));
  for (uint8_t& v : f.pixels) v = static_cast<uint8_t>(rng.Next() >> 56);
  return f;
}

NetworkFixture& Fixture(const std::string& network) {
  static std::map<std::string, NetworkFixture> fixtures;  // benchmarks run one at a time
  auto it = fixtures.find(network);
  if (it == fixtures.end()) {
    Result<NetworkFixture> made = MakeFixture(network);
    if (!made.ok()) {
      std::fprintf(stderr, "r2f_bench: %s: %s\n", network.c_str(),
                   made.status().ToString().c_str());
      std::exit(2);
    }
    it = fixtures.emplace(network, std::move(made).value()).first;
  }
  return it->second;
}

void BM_Network(benchmark::State& state, const std::string& network, Mode mode) {
  NetworkFixture& f = Fixture(network);
  TimeForward(state, *f.device, f.pixels, kBatch, mode);
}

const bool registered = [] {
  const std::pair<const char*, Mode> modes[] = {{"clean", Mode::kClean},
                                                {"ber1e-4", Mode::kSparse},
                                                {"training_mode", Mode::kTraining},
                                                {"training_exact", Mode::kTrainingExact},
                                                {"lw_tmr_ber1e-4", Mode::kLayerWise},
                                                {"nw_tmr_ber1e-4", Mode::kNetworkWise}};
  for (const std::string& network : NetworkNames()) {
    for (const auto& [name, mode] : modes) {
      benchmark::RegisterBenchmark(("BM_Network/" + network + "/" + name).c_str(), BM_Network,
                                   network, mode)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  return true;
}();

}  // namespace
}  // namespace r2f::bench
