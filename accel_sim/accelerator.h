// The simulated AIoT accelerator: the device-side public API of accel_sim.
//
// An Accelerator holds one deployed QuantizedModel and executes it in exact int8 arithmetic
// (docs/quantization.md) on a modelled 32x32 weight-stationary systolic array, with random bit
// flips injected into weights, inputs, accumulators and outputs of every MAC layer (DESIGN §4),
// and with layer-wise / network-wise / partial TMR. No LibTorch: the client links this.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "accel_sim/int8_tensor.h"
#include "common/status.h"
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

struct TmrConfig {
  TmrMode mode = TmrMode::kNone;
  std::vector<uint32_t> protected_layers;  // node ids of MAC layers (kPartial)
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
  Int8Tensor logits;                  // of the faulty chain
  std::vector<Int8Tensor> faulty;     // per MAC layer: the chain as deployed (partial TMR on S)
  std::vector<Int8Tensor> reference;  // per MAC layer: the LW-TMR reference chain
  RunStats faulty_stats;
  RunStats reference_stats;
};

class Accelerator {
 public:
  virtual ~Accelerator() = default;

  // Validates the model (graph, shapes, parameter sizes, shift ranges); errors name the layer.
  static Result<std::unique_ptr<Accelerator>> Create(const pb::QuantizedModel& model,
                                                     const AcceleratorConfig& config);

  virtual const pb::QuantizedModel& model() const = 0;
  // Node ids of the MAC layers, in graph order (the layers of Algorithm 1).
  virtual const std::vector<uint32_t>& mac_layers() const = 0;

  // Inference on the faulty accelerator. execution_tag distinguishes executions (iteration,
  // evaluation pass) so that each sees fresh soft errors.
  virtual Result<InferenceResult> Infer(const ImageBatch& images, const FaultConfig& faults,
                                        const TmrConfig& tmr, uint64_t execution_tag,
                                        bool keep_layer_outputs) = 0;

  // Training mode (DESIGN §5 step 1): the faulty chain as deployed, plus the LW-TMR reference
  // chain whose voted outputs approximate the error-free outputs.
  virtual Result<TrainingResult> RunTraining(const ImageBatch& images, const FaultConfig& faults,
                                             const TmrConfig& tmr, uint64_t execution_tag) = 0;
};

}  // namespace r2f::accel
