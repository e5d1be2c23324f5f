#include "common/ir/graph.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <sstream>

namespace r2f {
namespace {

Status NodeError(const pb::Node& node, const std::string& what) {
  return Status::InvalidArgument("node " + std::to_string(node.id()) + " '" + node.name() + "' (" +
                                 OpName(node.op()) + "): " + what);
}

// Dims beyond uint32 (from a hostile graph's huge pads or sizes) saturate at UINT32_MAX rather
// than wrap to a small size: the element limits of later checks then reject them.
pb::Shape MakeShape(std::initializer_list<int64_t> dims) {
  pb::Shape s;
  for (int64_t d : dims) {
    s.add_dims(static_cast<uint32_t>(std::clamp<int64_t>(d, 0, UINT32_MAX)));
  }
  return s;
}

// Output size of a sliding window; negative or zero means the window does not fit.
int64_t WindowOut(int64_t in, int64_t k, int64_t stride, int64_t pad) {
  return (in + 2 * pad - k) / stride + 1;
}

// The output shape of one node from its inputs' shapes, one method per kind of operator.
class NodeShape {
 public:
  NodeShape(const pb::Graph& graph, const pb::Node& node) : graph_(graph), node_(node) {}

  Status Infer(pb::Shape* out) const {
    switch (node_.op()) {
      case pb::OP_INPUT:
        return NodeError(node_, "only node 0 may be the input");
      case pb::OP_CONV:
        return Conv(out);
      case pb::OP_LINEAR:
        return Linear(out);
      case pb::OP_ADD:
        return Add(out);
      case pb::OP_MAXPOOL:
      case pb::OP_AVGPOOL:
        return Pool(out);
      case pb::OP_GLOBAL_AVGPOOL:
        R2F_RETURN_IF_ERROR(NeedInputs(1));
        R2F_RETURN_IF_ERROR(NeedChw(In(0)));
        *out = MakeShape({In(0).dims(0), 1, 1});
        return Status::Ok();
      case pb::OP_CONCAT:
        return Concat(out);
      case pb::OP_CHANNEL_SHUFFLE:
        return Shuffle(out);
      case pb::OP_FLATTEN:
        R2F_RETURN_IF_ERROR(NeedInputs(1));
        *out = MakeShape({NumElements(In(0))});
        return Status::Ok();
      case pb::OP_SLICE:
        return Slice(out);
      default:
        return NodeError(node_, "unknown op " + std::to_string(node_.op()));
    }
  }

 private:
  const pb::Shape& In(int i) const { return graph_.nodes(node_.inputs(i)).output_shape(); }
  Status NeedInputs(int n) const {
    if (node_.inputs_size() == n) return Status::Ok();
    return NodeError(node_, "expects " + std::to_string(n) + " input(s), has " +
                                std::to_string(node_.inputs_size()));
  }
  Status NeedChw(const pb::Shape& s) const {
    if (s.dims_size() == 3) return Status::Ok();
    return NodeError(node_, "needs a [C,H,W] input, got " + ShapeToString(s));
  }

  Status Conv(pb::Shape* out) const {
    R2F_RETURN_IF_ERROR(NeedInputs(1));
    const pb::Shape& s = In(0);
    R2F_RETURN_IF_ERROR(NeedChw(s));
    if (!node_.has_conv()) return NodeError(node_, "missing conv attributes");
    const pb::ConvAttr& c = node_.conv();
    if (c.kernel_h() == 0 || c.kernel_w() == 0 || c.stride_h() == 0 || c.stride_w() == 0 ||
        c.groups() == 0 || c.out_channels() == 0) {
      return NodeError(node_, "kernel, stride, groups and out_channels must be positive");
    }
    if (s.dims(0) % c.groups() != 0 || c.out_channels() % c.groups() != 0) {
      return NodeError(node_, "groups " + std::to_string(c.groups()) + " must divide in channels " +
                                  std::to_string(s.dims(0)) + " and out channels " +
                                  std::to_string(c.out_channels()));
    }
    int64_t h = WindowOut(s.dims(1), c.kernel_h(), c.stride_h(), c.pad_h());
    int64_t w = WindowOut(s.dims(2), c.kernel_w(), c.stride_w(), c.pad_w());
    if (h <= 0 || w <= 0) {
      return NodeError(node_, "kernel larger than padded input " + ShapeToString(s));
    }
    *out = MakeShape({c.out_channels(), h, w});
    return Status::Ok();
  }

  Status Linear(pb::Shape* out) const {
    R2F_RETURN_IF_ERROR(NeedInputs(1));
    if (In(0).dims_size() != 1) {
      return NodeError(node_, "needs a flat [F] input, got " + ShapeToString(In(0)));
    }
    if (!node_.has_linear() || node_.linear().out_features() == 0) {
      return NodeError(node_, "out_features must be positive");
    }
    *out = MakeShape({node_.linear().out_features()});
    return Status::Ok();
  }

  Status Add(pb::Shape* out) const {
    R2F_RETURN_IF_ERROR(NeedInputs(2));
    if (In(0).SerializeAsString() != In(1).SerializeAsString()) {
      return NodeError(
          node_, "input shapes differ: " + ShapeToString(In(0)) + " vs " + ShapeToString(In(1)));
    }
    *out = In(0);
    return Status::Ok();
  }

  Status Pool(pb::Shape* out) const {
    R2F_RETURN_IF_ERROR(NeedInputs(1));
    const pb::Shape& s = In(0);
    R2F_RETURN_IF_ERROR(NeedChw(s));
    const pb::PoolAttr& p = node_.pool();
    if (p.kernel() == 0 || p.stride() == 0) {
      return NodeError(node_, "kernel and stride must be positive");
    }
    if (node_.op() == pb::OP_AVGPOOL && p.pad() != 0) {
      return NodeError(node_, "average pooling takes no padding");
    }
    if (p.pad() * 2 > p.kernel())
      return NodeError(node_, "padding must be at most half the kernel");
    int64_t h = WindowOut(s.dims(1), p.kernel(), p.stride(), p.pad());
    int64_t w = WindowOut(s.dims(2), p.kernel(), p.stride(), p.pad());
    if (h <= 0 || w <= 0) return NodeError(node_, "window larger than input " + ShapeToString(s));
    *out = MakeShape({s.dims(0), h, w});
    return Status::Ok();
  }

  Status Concat(pb::Shape* out) const {
    if (node_.inputs_size() < 2) return NodeError(node_, "needs at least two inputs");
    int64_t channels = 0;
    for (int i = 0; i < node_.inputs_size(); ++i) {
      const pb::Shape& s = In(i);
      R2F_RETURN_IF_ERROR(NeedChw(s));
      if (s.dims(1) != In(0).dims(1) || s.dims(2) != In(0).dims(2)) {
        return NodeError(
            node_, "spatial sizes differ: " + ShapeToString(s) + " vs " + ShapeToString(In(0)));
      }
      channels += s.dims(0);
    }
    *out = MakeShape({channels, In(0).dims(1), In(0).dims(2)});
    return Status::Ok();
  }

  Status Shuffle(pb::Shape* out) const {
    R2F_RETURN_IF_ERROR(NeedInputs(1));
    R2F_RETURN_IF_ERROR(NeedChw(In(0)));
    uint32_t g = node_.shuffle().groups();
    if (g == 0 || In(0).dims(0) % g != 0)
      return NodeError(node_, "groups must divide the channels");
    *out = In(0);
    return Status::Ok();
  }

  Status Slice(pb::Shape* out) const {
    R2F_RETURN_IF_ERROR(NeedInputs(1));
    const pb::Shape& s = In(0);
    R2F_RETURN_IF_ERROR(NeedChw(s));
    const pb::SliceAttr& sl = node_.slice();
    if (sl.begin() >= sl.end() || sl.end() > s.dims(0)) {
      return NodeError(node_, "channel range [" + std::to_string(sl.begin()) + ", " +
                                  std::to_string(sl.end()) + ") outside " + ShapeToString(s));
    }
    *out = MakeShape({sl.end() - sl.begin(), s.dims(1), s.dims(2)});
    return Status::Ok();
  }

  const pb::Graph& graph_;
  const pb::Node& node_;
};

Status InferNode(const pb::Graph& graph, const pb::Node& node, pb::Shape* out) {
  return NodeShape(graph, node).Infer(out);
}

}  // namespace

bool IsMacLayer(const pb::Node& node) {
  return node.op() == pb::OP_CONV || node.op() == pb::OP_LINEAR;
}

int64_t NumElements(const pb::Shape& shape) {
  if (std::find(shape.dims().begin(), shape.dims().end(), 0u) != shape.dims().end()) return 0;
  int64_t n = 1;
  for (uint32_t d : shape.dims()) {
    if (n > std::numeric_limits<int64_t>::max() / d) return std::numeric_limits<int64_t>::max();
    n *= d;
  }
  return n;
}

std::string ShapeToString(const pb::Shape& shape) {
  std::ostringstream os;
  os << "[";
  for (int i = 0; i < shape.dims_size(); ++i) os << (i ? "," : "") << shape.dims(i);
  os << "]";
  return os.str();
}

const char* OpName(pb::OpType op) {
  switch (op) {
    case pb::OP_INPUT:
      return "input";
    case pb::OP_CONV:
      return "conv";
    case pb::OP_LINEAR:
      return "linear";
    case pb::OP_ADD:
      return "add";
    case pb::OP_MAXPOOL:
      return "maxpool";
    case pb::OP_AVGPOOL:
      return "avgpool";
    case pb::OP_GLOBAL_AVGPOOL:
      return "global_avgpool";
    case pb::OP_CONCAT:
      return "concat";
    case pb::OP_CHANNEL_SHUFFLE:
      return "channel_shuffle";
    case pb::OP_FLATTEN:
      return "flatten";
    case pb::OP_SLICE:
      return "slice";
    default:
      return "unknown";
  }
}

Status InferShapes(pb::Graph* graph) {
  if (graph->nodes_size() == 0) return Status::InvalidArgument("graph has no nodes");
  pb::Node* input = graph->mutable_nodes(0);
  if (input->op() != pb::OP_INPUT || input->inputs_size() != 0) {
    return Status::InvalidArgument("graph: node 0 must be the input and have no inputs");
  }
  if (graph->input_shape().dims_size() != 3 || NumElements(graph->input_shape()) == 0) {
    return Status::InvalidArgument("graph: input_shape must be a non-empty [C,H,W], got " +
                                   ShapeToString(graph->input_shape()));
  }
  *input->mutable_output_shape() = graph->input_shape();
  for (int i = 0; i < graph->nodes_size(); ++i) {
    pb::Node* node = graph->mutable_nodes(i);
    if (node->id() != static_cast<uint32_t>(i)) {
      return NodeError(*node, "id must equal its index " + std::to_string(i));
    }
    if (i == 0) continue;
    for (uint32_t in : node->inputs()) {
      if (in >= static_cast<uint32_t>(i)) {
        return NodeError(*node, "input " + std::to_string(in) + " is not an earlier node");
      }
    }
    pb::Shape shape;
    R2F_RETURN_IF_ERROR(InferNode(*graph, *node, &shape));
    *node->mutable_output_shape() = shape;
  }
  if (graph->output() >= static_cast<uint32_t>(graph->nodes_size()) || graph->output() == 0) {
    return Status::InvalidArgument("graph: output node " + std::to_string(graph->output()) +
                                   " does not exist");
  }
  const pb::Shape& logits = graph->nodes(graph->output()).output_shape();
  if (graph->num_classes() == 0 || NumElements(logits) != graph->num_classes()) {
    return Status::InvalidArgument("graph: output node has " + ShapeToString(logits) +
                                   " elements but num_classes is " +
                                   std::to_string(graph->num_classes()));
  }
  return Status::Ok();
}

GemmShape MacGemmShape(const pb::Graph& graph, const pb::Node& node) {
  GemmShape g;
  const pb::Shape& in = graph.nodes(node.inputs(0)).output_shape();
  if (node.op() == pb::OP_CONV) {
    const pb::ConvAttr& c = node.conv();
    g.groups = c.groups();
    g.m = static_cast<int64_t>(node.output_shape().dims(1)) * node.output_shape().dims(2);
    g.k = static_cast<int64_t>(in.dims(0) / c.groups()) * c.kernel_h() * c.kernel_w();
    g.n = c.out_channels() / c.groups();
  } else if (node.op() == pb::OP_LINEAR) {
    g.m = 1;
    g.k = in.dims(0);
    g.n = node.linear().out_features();
  }
  return g;
}

int64_t ParamCount(const pb::Graph& graph, const pb::Node& node) {
  if (!IsMacLayer(node)) return 0;
  GemmShape g = MacGemmShape(graph, node);
  return g.k * g.n * g.groups + g.n * g.groups;
}

std::vector<uint32_t> MacLayerIds(const pb::Graph& graph) {
  std::vector<uint32_t> ids;
  for (const pb::Node& n : graph.nodes()) {
    if (IsMacLayer(n)) ids.push_back(n.id());
  }
  return ids;
}

GraphStats ComputeStats(const pb::Graph& graph) {
  GraphStats st;
  for (const pb::Node& n : graph.nodes()) {
    if (!IsMacLayer(n)) continue;
    ++st.mac_layers;
    st.params += ParamCount(graph, n);
    st.macs_per_image += MacGemmShape(graph, n).Macs();
  }
  return st;
}

}  // namespace r2f
