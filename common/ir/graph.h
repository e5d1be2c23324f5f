// Graph IR utilities shared by both executors: validation, shape inference and the per-layer
// figures (GEMM shape, parameters, MACs) that the cycle model, the zoo listing and the
// critical-layer search all read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "r2f.pb.h"

namespace r2f {

inline constexpr uint32_t kQuantizedModelFormatVersion = 1;

bool IsMacLayer(const pb::Node& node);
// The product of the dims; INT64_MAX if it does not fit (a hostile shape), 0 if a dim is 0.
int64_t NumElements(const pb::Shape& shape);
std::string ShapeToString(const pb::Shape& shape);
const char* OpName(pb::OpType op);

// Checks the structure (ids, topological order, arity, attributes) and fills every node's
// output_shape from graph->input_shape. Errors name the node ("node 12 'layer3.0.conv1': ...").
Status InferShapes(pb::Graph* graph);

// The GEMM a MAC layer lowers to, per image and per group (docs/graph_ir.md):
// M = H_out * W_out (1 for linear), K = C_in/groups * kh * kw, N = C_out/groups.
struct GemmShape {
  int64_t m = 0;  // rows streamed per image
  int64_t k = 0;
  int64_t n = 0;
  int64_t groups = 1;
  int64_t Macs() const { return m * k * n * groups; }
};
// Requires shapes to be inferred.
GemmShape MacGemmShape(const pb::Graph& graph, const pb::Node& node);

// Weights plus bias (BN counted as folded into the bias).
int64_t ParamCount(const pb::Graph& graph, const pb::Node& node);

std::vector<uint32_t> MacLayerIds(const pb::Graph& graph);

struct GraphStats {
  int mac_layers = 0;
  int64_t params = 0;
  int64_t macs_per_image = 0;
};
GraphStats ComputeStats(const pb::Graph& graph);

}  // namespace r2f
