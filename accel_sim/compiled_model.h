// A QuantizedModel checked and prepared for execution.
//
// Compile() is the single gate between a deployed model (bytes from the server) and the
// executor: it runs shape inference on the graph, checks every parameter size and every
// fixed-point shift against docs/quantization.md, and precomputes what the fast path needs
// (weights packed for the GEMM kernel, per-channel requantisation shifts). After Compile()
// succeeds the executor does no more checking: every index it computes is in range and no
// integer it computes can overflow.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "accel_sim/fault_plan.h"
#include "accel_sim/int16_gemm.h"
#include "common/base/status.h"
#include "common/ir/graph.h"
#include "r2f.pb.h"

namespace r2f::accel {

// Largest right shift and largest left shift accepted in a requantisation (see Compile()).
inline constexpr int kMaxRightShift = 40;
inline constexpr int kMaxMacLeftShift = 31;   // int32 accumulator * 2^31 fits int64
inline constexpr int kMaxAddAlignShift = 24;  // int8 * 2^24 fits int32; sums are int64
inline constexpr int kMaxFrac = 64;           // |activation or weight frac|

// A convolution or linear layer as the array sees it. A linear layer is the 1x1 convolution of
// a [F, 1, 1] input, so one code path serves both.
struct MacLayer {
  uint32_t node_id = 0;
  int mac_index = 0;  // position among the MAC layers, graph order
  std::string name;
  uint32_t input_node = 0;

  int in_c = 0, in_h = 0, in_w = 0;
  int out_c = 0, out_h = 0, out_w = 0;
  int kernel_h = 1, kernel_w = 1;
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;
  int groups = 1;
  bool relu = false;
  int in_frac = 0;
  int out_frac = 0;

  int group_in_c = 0;   // in_c / groups
  int group_out_c = 0;  // N per group
  int k = 0;            // per group: group_in_c * kernel_h * kernel_w

  std::vector<int8_t> weights;        // [out_c][k], as in pb::QuantizedLayer
  std::vector<int8_t> weights_t;      // [groups][k][group_out_c]: one input's weights, contiguous
  std::vector<PackedWeights> packed;  // per group, for the int8 GEMM (int16_gemm.h)
  std::vector<int32_t> bias;          // per out channel, at the accumulator scale
  std::vector<int> shift;             // per out channel: in_frac + weight_frac[c] - out_frac
  bool direct_kernel = false;         // small per-group GEMMs (depthwise): direct int32 loops

  // Output channel oc's weights by kk, from the packed copy when there is one: the GEMM has
  // just streamed that copy through the cache, while the int8 array is read by no other hot
  // path (reading it for every weight flip cost a cache miss each).
  class CachedWeights {
   public:
    CachedWeights(const MacLayer& L, int oc)
        : plain_(L.packed.empty() ? L.weights.data() + static_cast<int64_t>(oc) * L.k : nullptr),
          packed_(L.packed.empty() ? kNoRow : L.packed[oc / L.group_out_c],
                  L.packed.empty() ? 0 : oc % L.group_out_c) {}
    int8_t At(int kk) const { return plain_ != nullptr ? plain_[kk] : packed_.At(kk); }

   private:
    static inline const PackedWeights kNoRow{};
    const int8_t* plain_;
    PackedWeights::RowReader packed_;
  };

  int64_t out_spatial() const { return static_cast<int64_t>(out_h) * out_w; }
  int64_t in_elements() const { return static_cast<int64_t>(in_c) * in_h * in_w; }
  int64_t out_elements() const { return out_spatial() * out_c; }
  int64_t weight_count() const { return static_cast<int64_t>(out_c) * k; }
  LayerExposure Exposure() const;
};

// Per-node facts the executor reads (shapes per image, fixed-point formats, attributes).
struct NodeInfo {
  uint32_t id = 0;
  std::string name;
  pb::OpType op = pb::OP_UNSPECIFIED;
  std::vector<uint32_t> inputs;
  std::vector<uint32_t> dims;  // per-image output shape
  int64_t elements = 0;        // per image
  int frac = 0;                // activation_frac
  bool relu = false;
  int mac_index = -1;  // index into CompiledModel::mac_layers(), -1 if not a MAC layer
  int pool_kernel = 0, pool_stride = 0, pool_pad = 0;
  int shuffle_groups = 0;
  int slice_begin = 0, slice_end = 0;
};

class CompiledModel {
 public:
  // Validates and prepares `model`. Errors name the node or layer and what is wrong, e.g.
  // "layer 12 'layer2.0.conv1': expected 4608 weights, got 100".
  //
  // `previous` (optional, not retained): a compiled model whose prepared weights are reused for
  // every MAC layer of the same node and shape: copied, with only the weights that differ
  // patched in. A retraining step changes about 1% of the int8 weights, and preparing every
  // layer anew was most of a deployModel's build. The result is the same as without.
  static Result<std::unique_ptr<CompiledModel>> Compile(pb::QuantizedModel model,
                                                        const CompiledModel* previous = nullptr);
  // The same checks without preparing the kernels (no weight copies, transposes or packing):
  // OK exactly when Compile would succeed. *model gets its output shapes filled in.
  static Status Check(pb::QuantizedModel* model);

  // The model as given, with output shapes filled in.
  const pb::QuantizedModel& model() const { return model_; }
  const pb::Graph& graph() const { return model_.graph(); }
  const std::vector<NodeInfo>& nodes() const { return nodes_; }
  const std::vector<MacLayer>& mac_layers() const { return mac_layers_; }
  const std::vector<uint32_t>& mac_layer_ids() const { return mac_layer_ids_; }
  const std::vector<int8_t>& input_lut() const { return input_lut_; }
  uint32_t output_node() const { return model_.graph().output(); }
  // MAC layers whose prepared weights came from Compile's `previous` (the others were prepared
  // anew).
  int reused_layers() const { return reused_layers_; }

 private:
  CompiledModel() = default;
  Status FormatAndShapes();  // the format version, then shape inference of the graph
  // The other checks; with `kernels` also what the kernels read (from `previous` where it can).
  Status Build(bool kernels, const CompiledModel* previous = nullptr);
  void PrepareKernels(const std::vector<int>& quantized_layer, const CompiledModel* previous);

  pb::QuantizedModel model_;
  std::vector<NodeInfo> nodes_;
  std::vector<MacLayer> mac_layers_;
  std::vector<uint32_t> mac_layer_ids_;
  std::vector<int8_t> input_lut_;
  int reused_layers_ = 0;
};

}  // namespace r2f::accel
