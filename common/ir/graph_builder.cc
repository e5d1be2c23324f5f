#include "common/ir/graph_builder.h"

#include <stdexcept>

#include "common/ir/graph.h"

namespace r2f {

GraphBuilder::GraphBuilder(std::string network_name, std::vector<uint32_t> input_chw,
                           uint32_t num_classes) {
  graph_.set_name(std::move(network_name));
  graph_.set_num_classes(num_classes);
  for (uint32_t d : input_chw) graph_.mutable_input_shape()->add_dims(d);
  AddNode("input", pb::OP_INPUT, {});
}

pb::Node* GraphBuilder::AddNode(const std::string& name, pb::OpType op,
                                std::vector<uint32_t> inputs) {
  pb::Node* node = graph_.add_nodes();
  node->set_id(static_cast<uint32_t>(graph_.nodes_size() - 1));
  node->set_name(name);
  node->set_op(op);
  for (uint32_t in : inputs) node->add_inputs(in);
  return node;
}

uint32_t GraphBuilder::Conv(const std::string& name, uint32_t in, const ConvSpec& spec) {
  pb::Node* node = AddNode(name, pb::OP_CONV, {in});
  pb::ConvAttr* c = node->mutable_conv();
  c->set_out_channels(spec.out_channels);
  c->set_kernel_h(spec.kernel);
  c->set_kernel_w(spec.kernel);
  c->set_stride_h(spec.stride);
  c->set_stride_w(spec.stride);
  c->set_pad_h(spec.pad);
  c->set_pad_w(spec.pad);
  c->set_groups(spec.groups);
  c->set_batch_norm(spec.batch_norm);
  node->set_activation(spec.relu ? pb::ACT_RELU : pb::ACT_NONE);
  return node->id();
}

uint32_t GraphBuilder::Linear(const std::string& name, uint32_t in, uint32_t out_features,
                              bool relu) {
  pb::Node* node = AddNode(name, pb::OP_LINEAR, {in});
  node->mutable_linear()->set_out_features(out_features);
  node->set_activation(relu ? pb::ACT_RELU : pb::ACT_NONE);
  return node->id();
}

uint32_t GraphBuilder::Add(const std::string& name, uint32_t a, uint32_t b, bool relu) {
  pb::Node* node = AddNode(name, pb::OP_ADD, {a, b});
  node->set_activation(relu ? pb::ACT_RELU : pb::ACT_NONE);
  return node->id();
}

uint32_t GraphBuilder::MaxPool(const std::string& name, uint32_t in, uint32_t kernel,
                               uint32_t stride, uint32_t pad) {
  pb::Node* node = AddNode(name, pb::OP_MAXPOOL, {in});
  node->mutable_pool()->set_kernel(kernel);
  node->mutable_pool()->set_stride(stride);
  node->mutable_pool()->set_pad(pad);
  return node->id();
}

uint32_t GraphBuilder::AvgPool(const std::string& name, uint32_t in, uint32_t kernel,
                               uint32_t stride) {
  pb::Node* node = AddNode(name, pb::OP_AVGPOOL, {in});
  node->mutable_pool()->set_kernel(kernel);
  node->mutable_pool()->set_stride(stride);
  return node->id();
}

uint32_t GraphBuilder::GlobalAvgPool(const std::string& name, uint32_t in) {
  return AddNode(name, pb::OP_GLOBAL_AVGPOOL, {in})->id();
}

uint32_t GraphBuilder::Concat(const std::string& name, const std::vector<uint32_t>& inputs) {
  return AddNode(name, pb::OP_CONCAT, inputs)->id();
}

uint32_t GraphBuilder::ChannelShuffle(const std::string& name, uint32_t in, uint32_t groups) {
  pb::Node* node = AddNode(name, pb::OP_CHANNEL_SHUFFLE, {in});
  node->mutable_shuffle()->set_groups(groups);
  return node->id();
}

uint32_t GraphBuilder::Flatten(const std::string& name, uint32_t in) {
  return AddNode(name, pb::OP_FLATTEN, {in})->id();
}

uint32_t GraphBuilder::Slice(const std::string& name, uint32_t in, uint32_t begin, uint32_t end) {
  pb::Node* node = AddNode(name, pb::OP_SLICE, {in});
  node->mutable_slice()->set_begin(begin);
  node->mutable_slice()->set_end(end);
  return node->id();
}

uint32_t GraphBuilder::Channels(uint32_t node) {
  // The zoo is code, not input: a malformed partial graph is a programming error.
  pb::Graph partial = graph_;
  partial.set_output(node);
  partial.set_num_classes(0);
  Status st = InferShapes(&partial);
  const pb::Shape& s = partial.nodes(node).output_shape();
  if (s.dims_size() == 0) throw std::logic_error("GraphBuilder::Channels: " + st.ToString());
  return s.dims(0);
}

Result<pb::Graph> GraphBuilder::Finish(uint32_t output) {
  graph_.set_output(output);
  R2F_RETURN_IF_ERROR(InferShapes(&graph_).WithContext("graph '" + graph_.name() + "'"));
  return graph_;
}

}  // namespace r2f
