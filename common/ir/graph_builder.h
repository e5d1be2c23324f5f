// GraphBuilder: the only way the model zoo and the tests write graphs, so that ids, names and
// topological order are right by construction. Each method returns the new node's id.
#pragma once

#include <string>
#include <vector>

#include "common/base/status.h"
#include "r2f.pb.h"

namespace r2f {

struct ConvSpec {
  uint32_t out_channels = 0;
  uint32_t kernel = 3;
  uint32_t stride = 1;
  uint32_t pad = 1;
  uint32_t groups = 1;
  bool batch_norm = true;
  bool relu = true;
};

class GraphBuilder {
 public:
  // input_chw: per-image input shape [C, H, W].
  GraphBuilder(std::string network_name, std::vector<uint32_t> input_chw, uint32_t num_classes);

  uint32_t input() const { return 0; }
  uint32_t Conv(const std::string& name, uint32_t in, const ConvSpec& spec);
  uint32_t Linear(const std::string& name, uint32_t in, uint32_t out_features, bool relu = false);
  uint32_t Add(const std::string& name, uint32_t a, uint32_t b, bool relu);
  uint32_t MaxPool(const std::string& name, uint32_t in, uint32_t kernel, uint32_t stride,
                   uint32_t pad);
  uint32_t AvgPool(const std::string& name, uint32_t in, uint32_t kernel, uint32_t stride);
  uint32_t GlobalAvgPool(const std::string& name, uint32_t in);
  uint32_t Concat(const std::string& name, const std::vector<uint32_t>& inputs);
  uint32_t ChannelShuffle(const std::string& name, uint32_t in, uint32_t groups);
  uint32_t Flatten(const std::string& name, uint32_t in);
  uint32_t Slice(const std::string& name, uint32_t in, uint32_t begin, uint32_t end);

  // Output channels of a node added so far (valid for [C,H,W] nodes); used by the zoo to size
  // the next layer. Runs shape inference on the partial graph.
  uint32_t Channels(uint32_t node);

  // Marks `output` as the logits node and checks the whole graph (shape inference).
  Result<pb::Graph> Finish(uint32_t output);

 private:
  pb::Node* AddNode(const std::string& name, pb::OpType op, std::vector<uint32_t> inputs);
  pb::Graph graph_;
};

}  // namespace r2f
