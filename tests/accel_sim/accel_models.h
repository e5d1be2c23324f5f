// Small quantized models for the accel tests: single layers with chosen geometry and small
// GraphBuilder graphs, with random full-range parameters. Header-only.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "accel_sim/compiled_model.h"
#include "accel_sim/graph_executor.h"
#include "accel_sim/random_model.h"
#include "common/ir/graph.h"
#include "common/ir/graph_builder.h"
#include "r2f.pb.h"
#include "tests/accel_sim/accel_reference.h"

namespace r2f::accel::testing {

// A graph holding one convolution (or a linear layer when `linear`) of geometry g; the layer is
// the graph's output.
inline pb::Graph SingleLayerGraph(const ConvGeometry& g, bool relu, bool linear = false) {
  pb::Graph graph;
  graph.set_name("single");
  pb::Node* in = graph.add_nodes();
  in->set_id(0);
  in->set_name("input");
  in->set_op(pb::OP_INPUT);
  if (linear) {
    // Linear layers take a flat input: input [C,1,1] -> flatten -> linear.
    graph.mutable_input_shape()->add_dims(g.in_c);
    graph.mutable_input_shape()->add_dims(1);
    graph.mutable_input_shape()->add_dims(1);
    pb::Node* flat = graph.add_nodes();
    flat->set_id(1);
    flat->set_name("flatten");
    flat->set_op(pb::OP_FLATTEN);
    flat->add_inputs(0);
    pb::Node* fc = graph.add_nodes();
    fc->set_id(2);
    fc->set_name("fc");
    fc->set_op(pb::OP_LINEAR);
    fc->add_inputs(1);
    fc->mutable_linear()->set_out_features(g.out_c);
    fc->set_activation(relu ? pb::ACT_RELU : pb::ACT_NONE);
    graph.set_output(2);
    graph.set_num_classes(g.out_c);
    return graph;
  }
  graph.mutable_input_shape()->add_dims(g.in_c);
  graph.mutable_input_shape()->add_dims(g.in_h);
  graph.mutable_input_shape()->add_dims(g.in_w);
  pb::Node* conv = graph.add_nodes();
  conv->set_id(1);
  conv->set_name("conv");
  conv->set_op(pb::OP_CONV);
  conv->add_inputs(0);
  pb::ConvAttr* c = conv->mutable_conv();
  c->set_out_channels(g.out_c);
  c->set_kernel_h(g.kh);
  c->set_kernel_w(g.kw);
  c->set_stride_h(g.sh);
  c->set_stride_w(g.sw);
  c->set_pad_h(g.ph);
  c->set_pad_w(g.pw);
  c->set_groups(g.groups);
  conv->set_activation(relu ? pb::ACT_RELU : pb::ACT_NONE);
  graph.set_output(1);
  graph.set_num_classes(static_cast<uint32_t>(g.out_c * g.OutH() * g.OutW()));
  return graph;
}

// Random parameters; per-channel shifts spread over [min_shift, max_shift] so that tests see
// rounding, saturation and (for shifts <= 0) left shifts.
inline pb::QuantizedModel SingleLayerModel(const ConvGeometry& g, bool relu, uint64_t seed,
                                           bool linear = false, int min_shift = -2,
                                           int max_shift = 14) {
  pb::Graph graph = SingleLayerGraph(g, relu, linear);
  pb::QuantizedModel model = MakeRandomQuantizedModel(graph, seed).value();
  std::mt19937_64 rng(seed * 7919 + 1);
  pb::QuantizedLayer* layer = model.mutable_layers(0);
  const int f_in = model.activation_frac(0);
  const int f_out = model.activation_frac(model.graph().output());
  for (int c = 0; c < layer->weight_frac_size(); ++c) {
    const int shift = min_shift + static_cast<int>(rng() % (max_shift - min_shift + 1));
    layer->set_weight_frac(c, shift + f_out - f_in);
    const int64_t span = int64_t{1} << std::clamp(shift + 6, 4, 24);
    layer->set_bias(c, static_cast<int32_t>(static_cast<int64_t>(rng() % (2 * span + 1)) - span));
  }
  return model;
}

inline std::unique_ptr<CompiledModel> Compile(const pb::QuantizedModel& model) {
  auto compiled = CompiledModel::Compile(model);
  if (!compiled.ok()) return nullptr;
  return std::move(compiled).value();
}

// Random CHW int8 images (extremes over-represented).
inline std::vector<int8_t> RandomImages(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int8_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = RandomInt8(rng);
  return v;
}

// A few small graphs covering every op, for whole-model tests.
inline std::vector<pb::Graph> SmallGraphs() {
  std::vector<pb::Graph> graphs;
  {  // residual block with a strided downsample, max pool with padding, linear head
    GraphBuilder b("residual", {3, 11, 9}, 10);
    uint32_t x = b.Conv("stem", b.input(), ConvSpec{8, 3, 1, 1, 1, true, true});
    x = b.MaxPool("pool", x, 3, 2, 1);
    uint32_t y = b.Conv("c1", x, ConvSpec{12, 3, 2, 1, 1, true, true});
    y = b.Conv("c2", y, ConvSpec{12, 3, 1, 1, 1, true, false});
    uint32_t s = b.Conv("down", x, ConvSpec{12, 1, 2, 0, 1, true, false});
    x = b.Add("add", y, s, true);
    x = b.GlobalAvgPool("gap", x);
    x = b.Flatten("flat", x);
    graphs.push_back(b.Finish(b.Linear("fc", x, 10)).value());
  }
  {  // shufflenet-like unit: slice, depthwise, concat, shuffle; average pool
    GraphBuilder b("shuffle", {2, 12, 12}, 6);
    uint32_t x = b.Conv("stem", b.input(), ConvSpec{8, 3, 1, 1, 1, true, true});
    uint32_t l = b.Slice("left", x, 0, 4);
    uint32_t r = b.Slice("right", x, 4, 8);
    r = b.Conv("pw1", r, ConvSpec{4, 1, 1, 0, 1, true, true});
    r = b.Conv("dw", r, ConvSpec{4, 3, 1, 1, 4, true, false});
    r = b.Conv("pw2", r, ConvSpec{4, 1, 1, 0, 1, true, true});
    x = b.Concat("cat", {l, r});
    x = b.ChannelShuffle("shuffle", x, 2);
    x = b.Conv("grouped", x, ConvSpec{16, 3, 2, 1, 2, true, true});
    x = b.AvgPool("avg", x, 2, 2);
    x = b.Conv("head", x, ConvSpec{6, 1, 1, 0, 1, true, false});
    x = b.GlobalAvgPool("gap", x);
    graphs.push_back(b.Finish(b.Flatten("flat", x)).value());
  }
  {  // squeezenet-like fire module with a three-way concat and a 5x5 strided conv
    GraphBuilder b("fire", {1, 15, 15}, 4);
    uint32_t x = b.Conv("stem", b.input(), ConvSpec{6, 5, 2, 2, 1, true, true});
    uint32_t sq = b.Conv("squeeze", x, ConvSpec{4, 1, 1, 0, 1, true, true});
    uint32_t e1 = b.Conv("e1", sq, ConvSpec{5, 1, 1, 0, 1, true, true});
    uint32_t e3 = b.Conv("e3", sq, ConvSpec{7, 3, 1, 1, 1, true, true});
    x = b.Concat("cat", {e1, e3, sq});
    x = b.MaxPool("pool", x, 2, 2, 0);
    x = b.Flatten("flat", x);
    x = b.Linear("fc1", x, 24, true);
    graphs.push_back(b.Finish(b.Linear("fc2", x, 4)).value());
  }
  return graphs;
}

// The fast executor's clean output of every node (one chain, no faults), image-major like
// RefRun::nodes. Empty on error.
inline std::vector<std::vector<int8_t>> FastExecute(const CompiledModel& model,
                                                    const uint8_t* pixels, int batch) {
  ChainRequest req;
  req.pixels = pixels;
  req.batch = batch;
  for (int b = 0; b < batch; ++b) req.sample_ids.push_back(static_cast<uint64_t>(b));
  req.faults.ber = 0;
  ChainSpec spec;
  spec.replicas.assign(model.mac_layers().size(), std::vector<uint32_t>{0});
  req.chains.push_back(spec);
  ChainWorkspace ws;
  if (!ExecuteChains(model, req, &ws).ok()) return {};
  std::vector<std::vector<int8_t>> nodes;
  for (const NodeInfo& n : model.nodes()) {
    const int8_t* p = ws.node_output(0, n.id);
    nodes.emplace_back(p, p + n.elements * batch);
  }
  return nodes;
}

}  // namespace r2f::accel::testing
