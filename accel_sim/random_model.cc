#include "accel_sim/random_model.h"

#include <algorithm>
#include <cmath>

#include "common/base/random.h"
#include "common/ir/graph.h"

namespace r2f::accel {
namespace {

class Random {
 public:
  explicit Random(uint64_t seed) : rng_(seed) {}
  // Uniform integer in [lo, hi].
  int64_t Int(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(rng_.Next() % static_cast<uint64_t>(hi - lo + 1));
  }
  // Full-range int8 with extra weight on the extremes, where exactness bugs live.
  int8_t Int8() {
    const int64_t pick = Int(0, 15);
    if (pick == 0) return -128;
    if (pick == 1) return 127;
    return static_cast<int8_t>(Int(-128, 127));
  }

 private:
  Rng rng_;
};

}  // namespace

Result<pb::QuantizedModel> MakeRandomQuantizedModel(const pb::Graph& graph, uint64_t seed) {
  pb::QuantizedModel model;
  model.set_format_version(kQuantizedModelFormatVersion);
  model.set_description("random parameters (seed " + std::to_string(seed) + ")");
  *model.mutable_graph() = graph;
  for (pb::Node& node : *model.mutable_graph()->mutable_nodes()) {
    if (node.has_conv()) node.mutable_conv()->set_batch_norm(false);
  }
  R2F_RETURN_IF_ERROR(InferShapes(model.mutable_graph()));
  const pb::Graph& g = model.graph();
  Random rnd(HashCombine(seed, 0x72616e646f6dULL));

  std::vector<int> frac(g.nodes_size(), 0);
  for (const pb::Node& node : g.nodes()) {
    auto in_frac = [&](int j) { return frac[node.inputs(j)]; };
    switch (node.op()) {
      case pb::OP_INPUT:
        frac[node.id()] = static_cast<int>(rnd.Int(4, 6));
        break;
      case pb::OP_CONV:
      case pb::OP_LINEAR: {
        const GemmShape gemm = MacGemmShape(g, node);
        const int out_c = static_cast<int>(gemm.n * gemm.groups);
        const int f_in = in_frac(0);
        const int f_out = std::clamp(f_in + static_cast<int>(rnd.Int(-2, 2)), -6, 10);
        frac[node.id()] = f_out;
        // Accumulator spread ~ sqrt(K) * 74 * 60; a shift near log2(sqrt(K) * 90) maps it to
        // a spread of a few dozen int8 steps.
        const int base_shift =
            static_cast<int>(std::lround(std::log2(std::sqrt(static_cast<double>(gemm.k)) * 90.0)));
        pb::QuantizedLayer* layer = model.add_layers();
        layer->set_node_id(node.id());
        std::string weights(static_cast<size_t>(gemm.k * out_c), '\0');
        for (char& w : weights) w = static_cast<char>(rnd.Int8());
        layer->set_weights(weights);
        for (int c = 0; c < out_c; ++c) {
          const int shift = std::max(1, base_shift + static_cast<int>(rnd.Int(-1, 1)));
          layer->add_weight_frac(shift + f_out - f_in);
          const int64_t span = int64_t{1} << std::min(shift + 5, 24);
          layer->add_bias(static_cast<int32_t>(rnd.Int(-span, span)));
        }
        break;
      }
      case pb::OP_ADD:
        frac[node.id()] = std::max(in_frac(0), in_frac(1)) - static_cast<int>(rnd.Int(0, 1));
        break;
      case pb::OP_CONCAT: {
        int m = in_frac(0);
        for (int j = 1; j < node.inputs_size(); ++j) m = std::min(m, in_frac(j));
        frac[node.id()] = m;
        break;
      }
      default:
        frac[node.id()] = in_frac(0);
        break;
    }
  }
  for (int f : frac) model.add_activation_frac(f);

  const int channels = static_cast<int>(g.input_shape().dims(0));
  std::string lut(static_cast<size_t>(channels) * 256, '\0');
  for (char& v : lut) v = static_cast<char>(rnd.Int8());
  model.set_input_lut(lut);
  return model;
}

}  // namespace r2f::accel
