#include "tests/bench/bench_model.h"

#include <cstdio>
#include <cstdlib>

#include "accel_sim/random_model.h"
#include "common/base/random.h"
#include "common/ir/graph.h"
#include "common/ir/model_zoo.h"

namespace r2f::bench {
namespace {

Result<pb::QuantizedModel> TryBuild() {
  R2F_ASSIGN_OR_RETURN(NetworkSpec spec, DefaultNetworkSpec("resnet18"));
  R2F_ASSIGN_OR_RETURN(pb::Graph graph, BuildNetwork(spec));
  return accel::MakeRandomQuantizedModel(graph, kModelSeed);
}

pb::QuantizedModel Build() {
  Result<pb::QuantizedModel> model = TryBuild();
  if (!model.ok()) {
    std::fprintf(stderr, "r2f_bench: cannot build the benchmark model: %s\n",
                 model.status().ToString().c_str());
    std::exit(2);
  }
  return std::move(model).value();
}

}  // namespace

const pb::QuantizedModel& BenchModel() {
  static const pb::QuantizedModel model = Build();
  return model;
}

const std::vector<uint8_t>& BenchPixels() {
  static const std::vector<uint8_t> pixels = [] {
    std::vector<uint8_t> p(static_cast<size_t>(NumElements(BenchModel().graph().input_shape())) *
                           kBatch);
    Rng rng(HashCombine(kModelSeed, 0x706978656c73ULL));  // "pixels"
    for (uint8_t& v : p) v = static_cast<uint8_t>(rng.Next() >> 56);
    return p;
  }();
  return pixels;
}

}  // namespace r2f::bench
