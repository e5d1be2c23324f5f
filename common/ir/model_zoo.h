// The model zoo: the paper's five networks as graph IR, each with a width multiplier and a
// small-image stem (no stride-2 stem or early max-pool, so 28x28 and 32x32 inputs keep enough
// spatial resolution). The LibTorch module is built *from* these graphs (torch_graph.h).
#pragma once

#include <string>
#include <vector>

#include "common/base/status.h"
#include "r2f.pb.h"

namespace r2f {

struct NetworkSpec {
  std::string network;  // one of NetworkNames()
  double width = 1.0;   // channel multiplier against the ImageNet original
  std::vector<uint32_t> input_chw = {1, 28, 28};
  uint32_t num_classes = 10;
};

// resnet18, resnet50, mobilenetv2, shufflenetv2, squeezenet.
const std::vector<std::string>& NetworkNames();

// The default spec of a network for Fashion-MNIST (the width used in docs and the demo).
Result<NetworkSpec> DefaultNetworkSpec(const std::string& network);

// Builds the float training graph (convolutions carry batch_norm = true).
Result<pb::Graph> BuildNetwork(const NetworkSpec& spec);

}  // namespace r2f
