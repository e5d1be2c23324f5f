// The simulated AIoT accelerator: the device-side public API of accel_sim.
//
// An Accelerator holds one deployed QuantizedModel and executes it in exact int8 arithmetic
// (docs/quantization.md) on a modelled 32x32 weight-stationary systolic array, with random bit
// flips injected into weights, inputs, accumulators and outputs of every MAC layer
// (docs/accel_sim.md), and with layer-wise / network-wise / partial TMR. No LibTorch: the client
// links this.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "accel_sim/int8_tensor.h"
#include "common/base/status.h"
#include "r2f.pb.h"

namespace r2f::accel {

struct AcceleratorConfig {
  int rows = 32;                     // PE rows: reduction dimension K
  int cols = 32;                     // PE columns: output channels N
  int buffer_kb = 1024;              // on-chip buffer
  double dram_bytes_per_cycle = 16;  // off-chip bandwidth
  double clock_mhz = 200;
};

enum class FaultSite : int { kWeights = 0, kInputs = 1, kHidden = 2, kOutputs = 3 };
inline constexpr int kNumFaultSites = 4;
// "weights", "inputs", "hidden", "outputs": the names configs and command lines use.
const char* FaultSiteName(FaultSite site);
// The inverse of FaultSiteName; InvalidArgument naming `name` and the known names otherwise.
Result<FaultSite> ParseFaultSite(const std::string& name);

// How flip positions are drawn. kSparse: geometric skips, cost O(flips). kDense: one Bernoulli
// draw per exposed bit, as per-element-mask injectors do (the benchmark's naive baseline).
enum class Sampling { kSparse, kDense };

struct FaultConfig {
  double ber = 0.0;  // flipped bits / exposed bits, per site
  std::array<bool, kNumFaultSites> sites = {true, true, true, true};
  uint64_t seed = 1;  // the device's seed
  Sampling sampling = Sampling::kSparse;
};

enum class TmrMode {
  kNone,         // every layer once
  kPartial,      // the layers in TmrConfig::protected_layers three times, voted (LW style)
  kLayerWise,    // every MAC layer three times, the voted output feeds the next layer
  kNetworkWise,  // three independent whole chains, outputs voted per layer
};

// "none", "partial", "layer_wise", "network_wise".
const char* TmrModeName(TmrMode mode);
// The inverse of TmrModeName; InvalidArgument naming `name` and the known names otherwise.
Result<TmrMode> ParseTmrMode(const std::string& name);
// The wire form of a TMR mode (SetAIoTModeRequest.tmr) and back. Values the enum does not know
// map to kNone; the device checks pb::TmrModeProto_IsValid before it gets here.
pb::TmrModeProto TmrModeToProto(TmrMode mode);
TmrMode TmrModeFromProto(pb::TmrModeProto mode);

// The wire form of the geometry and clock (Ack.accelerator) and back. An empty message (from a
// device that predates it) gives the default AcceleratorConfig; values the cycle model cannot
// use give InvalidArgument (ValidateAcceleratorConfig's message).
pb::AcceleratorGeometry AcceleratorGeometryToProto(const AcceleratorConfig& config);
Result<AcceleratorConfig> AcceleratorConfigFromProto(const pb::AcceleratorGeometry& geometry);

// The reference training mode runs beside the deployed chain; the device sends each MAC layer's
// output as an increment against it (docs/retraining.md).
enum class TrainingReference {
  // The paper's LW-TMR reference chain: every MAC layer three times, voted, the voted output
  // feeding the next layer. It approximates the clean chain, so an increment also carries every
  // difference that earlier layers' faults propagated into the layer.
  kChain,
  // Ours, layer-local TMR: each MAC layer's three voted replicas read the deployed chain's own
  // input to that layer. The increment then holds only the layer's own faults (very sparse), and
  // the server rebuilds the chain layer by layer from its own reconstruction (InferWithOverrides).
  kLocal,
  // kLocal, and the result also says where each layer's three replicas disagreed
  // (TrainingResult::disagreement): the device sends its own output there, so that the rebuild
  // is exact except where all three replicas agree on the same wrong value (docs/retraining.md).
  kLocalExact,
};

// "chain", "local", "exact".
const char* TrainingReferenceName(TrainingReference reference);
// The inverse of TrainingReferenceName; InvalidArgument naming `name` and the known names.
Result<TrainingReference> ParseTrainingReference(const std::string& name);
// The wire form (GetDataRequest.reference) and back; unknown values map to the chain.
pb::IncrementReference TrainingReferenceToProto(TrainingReference reference);
TrainingReference TrainingReferenceFromProto(pb::IncrementReference reference);

struct TmrConfig {
  TmrMode mode = TmrMode::kNone;
  std::vector<uint32_t> protected_layers;  // node ids of MAC layers (kPartial)

  // Whether MAC layer `node_id` runs three times: every layer under layer- and network-wise
  // TMR, the protected ones under partial TMR. The cycle counts and r both follow it.
  bool Triplicates(uint32_t node_id) const;
};

// A batch of uint8 images in NCHW order, shaped as the graph's input. sample_ids identify the
// images in the device's data set: faults are keyed by (seed, execution tag, sample id, layer,
// replica, site), so an image sees the same faults however the images are batched.
struct ImageBatch {
  const uint8_t* pixels = nullptr;
  int batch = 0;
  std::vector<uint64_t> sample_ids;
};

struct LayerFaultStats {
  uint32_t node_id = 0;
  std::array<uint64_t, kNumFaultSites> exposed_bits = {};
  std::array<uint64_t, kNumFaultSites> flips = {};
};

struct LayerCycles {
  uint32_t node_id = 0;
  int64_t macs = 0;
  int64_t folds = 0;
  int64_t compute_cycles = 0;
  int64_t stall_cycles = 0;
  int executions = 1;  // 3 for a TMR-protected layer
};

struct RunStats {
  std::vector<LayerFaultStats> faults;  // one per MAC layer, in graph order
  std::vector<LayerCycles> cycles;      // one per MAC layer, in graph order
  int64_t total_cycles = 0;             // sum of (compute + stall) * executions
  uint64_t total_flips = 0;
};

struct InferenceResult {
  Int8Tensor logits;                      // [batch, num_classes] at the output node's frac
  std::vector<Int8Tensor> layer_outputs;  // per MAC layer in graph order (if requested)
  RunStats stats;
};

struct TrainingResult {
  Int8Tensor logits;               // of the faulty chain
  std::vector<Int8Tensor> faulty;  // per MAC layer: the chain as deployed (partial TMR on S)
  // Per MAC layer: the reference's voted outputs, of the LW-TMR chain (kChain) or of each layer
  // on the deployed chain's input (kLocal).
  std::vector<Int8Tensor> reference;
  RunStats faulty_stats;
  RunStats reference_stats;  // both references: three executions of every MAC layer
  // kLocalExact, per MAC layer: batch * elements flags, 1 where the three replicas of the
  // reference disagreed. Empty for the other references.
  std::vector<std::vector<uint8_t>> disagreement;
};

// Called after each MAC layer of InferWithOverrides, in graph order, with the layer's batch
// output (`elements` int8 values, NCHW). It may rewrite the values in place; the rest of the
// graph then runs on the rewritten values. An error stops the run and is returned.
using MacOutputHook = std::function<Status(size_t mac_index, int8_t* output, int64_t elements)>;

class Accelerator {
 public:
  virtual ~Accelerator() = default;

  // Validates the model (graph, shapes, parameter sizes, shift ranges); errors name the layer.
  // Takes the model by value: a caller that no longer needs it moves it in. `previous`
  // (optional, only read during the call): an accelerator, typically the one running, whose
  // prepared weights are reused for the layers of the same shape, patched where the weights
  // differ. A retrained model changes ~1% of them: the build of a deployModel's delta drops
  // from packing every layer to copying and patching. Results are the same as without.
  static Result<std::unique_ptr<Accelerator>> Create(pb::QuantizedModel model,
                                                     const AcceleratorConfig& config,
                                                     const Accelerator* previous = nullptr);
  // OK exactly when Create would accept *model (with a valid config), in a fraction of its
  // time: the checks without preparing the kernels. Fills in the graph's output shapes, as
  // Create does on its copy; *model is otherwise unchanged.
  static Status Validate(pb::QuantizedModel* model);

  virtual const pb::QuantizedModel& model() const = 0;
  // Node ids of the MAC layers, in graph order (the layers of Algorithm 1).
  virtual const std::vector<uint32_t>& mac_layers() const = 0;

  // Inference on the faulty accelerator. execution_tag distinguishes executions (iteration,
  // evaluation pass) so that each sees fresh soft errors.
  virtual Result<InferenceResult> Infer(const ImageBatch& images, const FaultConfig& faults,
                                        const TmrConfig& tmr, uint64_t execution_tag,
                                        bool keep_layer_outputs) = 0;

  // Training mode (docs/retraining.md): the faulty chain as deployed, plus the TMR reference. Its
  // replicas have fault streams of their own (replica indices 3, 4, 5) for either reference,
  // so the deployed chain's faults do not depend on the reference. kLocal needs one deployed
  // chain (not network-wise TMR): it is that chain's inputs the reference reads.
  virtual Result<TrainingResult> RunTraining(const ImageBatch& images, const FaultConfig& faults,
                                             const TmrConfig& tmr, uint64_t execution_tag,
                                             TrainingReference reference) = 0;
  // The paper's LW-TMR reference chain.
  Result<TrainingResult> RunTraining(const ImageBatch& images, const FaultConfig& faults,
                                     const TmrConfig& tmr, uint64_t execution_tag) {
    return RunTraining(images, faults, tmr, execution_tag, TrainingReference::kChain);
  }

  // The clean model (no faults, no TMR) with every MAC layer's output passed through `hook`
  // before later nodes read it: the server's reconstruction for the layer-local reference,
  // which adds each layer's increment to the clean function of the reconstructed input.
  virtual Result<InferenceResult> InferWithOverrides(const ImageBatch& images,
                                                     const MacOutputHook& hook,
                                                     bool keep_layer_outputs) = 0;

  // Takes over `previous`'s working buffers, leaving it with none (it still works, and
  // allocates again if used). A device gets a new model every iteration (deployModel); without
  // this each one's first run allocated and zeroed the activations of every layer anew, which
  // cost a 1.9 MB getData ~6 ms of page faults and memset. Results do not depend on it.
  virtual void AdoptBuffers(Accelerator& previous) = 0;
};

}  // namespace r2f::accel
