// The Accelerator implementation: turns the public TMR modes into chain specs for the graph
// executor, and assembles results, fault statistics and modelled cycles.
#include "accel_sim/accelerator.h"

#include <algorithm>
#include <cmath>
#include <mutex>

#include "accel_sim/compiled_model.h"
#include "accel_sim/cycle_model.h"
#include "accel_sim/graph_executor.h"
#include "accel_sim/parallel_for.h"
#include "accel_sim/tmr_voter.h"

namespace r2f::accel {
namespace {

// Replica indices (fault stream keys): the deployed chain uses 0..2, the LW-TMR reference
// chain of training mode 3..5, so that their soft errors are independent.
constexpr uint32_t kReferenceReplicaBase = 3;

std::vector<uint32_t> Once(uint32_t r) { return {r}; }
std::vector<uint32_t> Thrice(uint32_t base) { return {base, base + 1, base + 2}; }

class AcceleratorImpl : public Accelerator {
 public:
  AcceleratorImpl(std::unique_ptr<CompiledModel> model, const AcceleratorConfig& config)
      : model_(std::move(model)), config_(config) {}

  const pb::QuantizedModel& model() const override { return model_->model(); }
  const std::vector<uint32_t>& mac_layers() const override { return model_->mac_layer_ids(); }
  const CompiledModel& compiled() const { return *model_; }

  void AdoptBuffers(Accelerator& previous) override {
    auto* other = dynamic_cast<AcceleratorImpl*>(&previous);
    if (other == nullptr || other == this) return;
    std::scoped_lock lock(mu_, other->mu_);
    ws_ = std::move(other->ws_);
    other->ws_ = ChainWorkspace();
  }

  Result<InferenceResult> Infer(const ImageBatch& images, const FaultConfig& faults,
                                const TmrConfig& tmr, uint64_t execution_tag,
                                bool keep_layer_outputs) override {
    ChainRequest req;
    R2F_RETURN_IF_ERROR(Prepare(images, faults, tmr, execution_tag, &req));
    std::lock_guard<std::mutex> lock(mu_);
    R2F_RETURN_IF_ERROR(ExecuteChains(*model_, req, &ws_));
    const int chains = static_cast<int>(req.chains.size());
    InferenceResult result;
    result.logits = Logits(0, chains, images.batch);
    if (keep_layer_outputs) result.layer_outputs = LayerOutputs(0, chains, images.batch);
    result.stats = Stats(0, chains, images.batch, tmr);
    return result;
  }

  using Accelerator::RunTraining;
  Result<TrainingResult> RunTraining(const ImageBatch& images, const FaultConfig& faults,
                                     const TmrConfig& tmr, uint64_t execution_tag,
                                     TrainingReference reference) override {
    ChainRequest req;
    R2F_RETURN_IF_ERROR(Prepare(images, faults, tmr, execution_tag, &req));
    const int deployed = static_cast<int>(req.chains.size());
    ChainSpec ref = Uniform(Thrice(kReferenceReplicaBase));
    switch (reference) {
      case TrainingReference::kChain:
        break;
      case TrainingReference::kLocal:
      case TrainingReference::kLocalExact:
        // Three deployed chains feed three different inputs to every layer: there is no one
        // "input of the deployed chain" to re-run the layer on.
        if (deployed != 1) {
          return Status::InvalidArgument(
              std::string("training reference '") + TrainingReferenceName(reference) +
              "' needs a single deployed chain; TMR mode " + std::string(TmrModeName(tmr.mode)) +
              " runs " + std::to_string(deployed));
        }
        ref.input_chain = 0;
        ref.record_disagreement = reference == TrainingReference::kLocalExact;
        break;
      default:
        return Status::InvalidArgument("unknown training reference " +
                                       std::to_string(static_cast<int>(reference)));
    }
    req.chains.push_back(std::move(ref));
    std::lock_guard<std::mutex> lock(mu_);
    R2F_RETURN_IF_ERROR(ExecuteChains(*model_, req, &ws_));
    TrainingResult result;
    result.logits = Logits(0, deployed, images.batch);
    // Every MAC layer's output of both chains, and the exact method's disagreement masks, in
    // one parallel pass: on one thread these copies (~3-5 MB per ResNet18 batch) took 0.3 ms
    // of a 9.4 ms training pass while the other thread waited.
    const size_t layers = model_->mac_layers().size();
    const bool masks = reference == TrainingReference::kLocalExact;
    result.faulty.resize(layers);
    result.reference.resize(layers);
    if (masks) result.disagreement.resize(layers);
    ParallelFor(static_cast<int64_t>(layers * (masks ? 3 : 2)), [&](int64_t j) {
      const size_t m = static_cast<size_t>(j) % layers;
      const uint32_t id = model_->mac_layer_ids()[m];
      switch (static_cast<size_t>(j) / layers) {
        case 0:
          result.faulty[m] = NodeTensor(id, 0, deployed, images.batch);
          break;
        case 1:
          result.reference[m] = NodeTensor(id, deployed, deployed + 1, images.batch);
          break;
        default:
          result.disagreement[m] = ws_.disagreement(deployed, m);
      }
    });
    result.faulty_stats = Stats(0, deployed, images.batch, tmr);
    // Both references execute every MAC layer three times: the cost of LW-TMR.
    TmrConfig lw;
    lw.mode = TmrMode::kLayerWise;
    result.reference_stats = Stats(deployed, deployed + 1, images.batch, lw);
    return result;
  }

  Result<InferenceResult> InferWithOverrides(const ImageBatch& images, const MacOutputHook& hook,
                                             bool keep_layer_outputs) override {
    if (!hook) return Status::InvalidArgument("InferWithOverrides: no hook");
    ChainRequest req;
    const TmrConfig none;
    R2F_RETURN_IF_ERROR(Prepare(images, FaultConfig{}, none, /*tag=*/0, &req));
    req.mac_output_hook = &hook;
    std::lock_guard<std::mutex> lock(mu_);
    R2F_RETURN_IF_ERROR(ExecuteChains(*model_, req, &ws_));
    InferenceResult result;
    result.logits = Logits(0, 1, images.batch);
    if (keep_layer_outputs) result.layer_outputs = LayerOutputs(0, 1, images.batch);
    result.stats = Stats(0, 1, images.batch, none);
    return result;
  }

 private:
  ChainSpec Uniform(const std::vector<uint32_t>& replicas) const {
    ChainSpec spec;
    spec.replicas.assign(model_->mac_layers().size(), replicas);
    return spec;
  }

  // "12 ('layer2.0.conv1', OP_CONV)", or "99 (no such node)".
  std::string DescribeNode(uint32_t id) const {
    const auto& nodes = model_->nodes();
    if (id >= nodes.size()) return std::to_string(id) + " (no such node)";
    return std::to_string(id) + " ('" + nodes[id].name + "', " + pb::OpType_Name(nodes[id].op) +
           ")";
  }

  // Checks the call's arguments and builds the deployed chain(s) for `tmr`.
  Status Prepare(const ImageBatch& images, const FaultConfig& faults, const TmrConfig& tmr,
                 uint64_t tag, ChainRequest* req) const {
    if (images.pixels == nullptr || images.batch <= 0) {
      return Status::InvalidArgument("image batch: no pixels or batch size " +
                                     std::to_string(images.batch));
    }
    if (!images.sample_ids.empty() &&
        images.sample_ids.size() != static_cast<size_t>(images.batch)) {
      return Status::InvalidArgument("image batch: " + std::to_string(images.sample_ids.size()) +
                                     " sample ids for " + std::to_string(images.batch) + " images");
    }
    if (!(faults.ber >= 0.0 && faults.ber <= 1.0)) {
      return Status::InvalidArgument("fault config: ber must be in [0, 1], got " +
                                     std::to_string(faults.ber));
    }
    req->pixels = images.pixels;
    req->batch = images.batch;
    req->sample_ids = images.sample_ids;
    if (req->sample_ids.empty()) {
      // Without ids an image is known by its position in the batch.
      for (int b = 0; b < images.batch; ++b) req->sample_ids.push_back(static_cast<uint64_t>(b));
    }
    req->faults = faults;
    req->execution_tag = tag;
    req->chains.clear();
    switch (tmr.mode) {
      case TmrMode::kNone:
        req->chains.push_back(Uniform(Once(0)));
        break;
      case TmrMode::kLayerWise:
        req->chains.push_back(Uniform(Thrice(0)));
        break;
      case TmrMode::kNetworkWise:
        for (uint32_t c = 0; c < 3; ++c) req->chains.push_back(Uniform(Once(c)));
        break;
      case TmrMode::kPartial: {
        ChainSpec spec = Uniform(Once(0));
        for (uint32_t id : tmr.protected_layers) {
          const auto& ids = model_->mac_layer_ids();
          auto it = std::find(ids.begin(), ids.end(), id);
          if (it == ids.end()) {
            return Status::InvalidArgument("tmr: protected layer " + DescribeNode(id) +
                                           " is not a MAC layer (conv or linear) of the model");
          }
          spec.replicas[it - ids.begin()] = Thrice(0);
        }
        req->chains.push_back(std::move(spec));
        break;
      }
      default:
        return Status::InvalidArgument("tmr: unknown mode " +
                                       std::to_string(static_cast<int>(tmr.mode)));
    }
    return Status::Ok();
  }

  // A node's batch output over chains [first, last): the chain itself, or the bitwise vote of
  // three chains (NW-TMR).
  Int8Tensor NodeTensor(uint32_t node_id, int first, int last, int batch) const {
    const NodeInfo& node = model_->nodes()[node_id];
    Int8Tensor t;
    t.batch = batch;
    t.dims = node.dims;
    t.frac = node.frac;
    const int64_t n = node.elements * batch;
    if (last - first == 1) {
      // Copied in one pass: resize-then-copy zero-filled the fresh buffer first, which cost
      // as much as the copy (a training step copies every MAC layer's output twice).
      const int8_t* src = ws_.node_output(first, node_id);
      t.data.assign(src, src + n);
    } else {
      t.data.resize(static_cast<size_t>(n));
      VoteBuffers(ws_.node_output(first, node_id), ws_.node_output(first + 1, node_id),
                  ws_.node_output(first + 2, node_id), n, t.data.data());
    }
    return t;
  }

  Int8Tensor Logits(int first, int last, int batch) const {
    Int8Tensor t = NodeTensor(model_->output_node(), first, last, batch);
    t.dims = {model_->graph().num_classes()};
    return t;
  }

  std::vector<Int8Tensor> LayerOutputs(int first, int last, int batch) const {
    const std::vector<uint32_t>& ids = model_->mac_layer_ids();
    std::vector<Int8Tensor> out(ids.size());
    ParallelFor(static_cast<int64_t>(ids.size()),
                [&](int64_t m) { out[m] = NodeTensor(ids[m], first, last, batch); });
    return out;
  }

  RunStats Stats(int first, int last, int batch, const TmrConfig& tmr) const {
    RunStats stats;
    const auto& layers = model_->mac_layers();
    stats.faults.resize(layers.size());
    for (size_t m = 0; m < layers.size(); ++m) {
      LayerFaultStats& s = stats.faults[m];
      s.node_id = layers[m].node_id;
      for (int c = first; c < last; ++c) {
        const LayerFaultStats& cs = ws_.fault_stats(c)[m];
        for (int site = 0; site < kNumFaultSites; ++site) {
          s.exposed_bits[site] += cs.exposed_bits[site];
          s.flips[site] += cs.flips[site];
          stats.total_flips += cs.flips[site];
        }
      }
    }
    const std::vector<LayerCycleReport> reports = ModelNetwork(config_, model_->graph(), batch);
    for (const LayerCycleReport& r : reports) {
      LayerCycles lc;
      lc.node_id = r.node_id;
      lc.macs = r.macs;
      lc.folds = r.folds;
      lc.compute_cycles = r.compute_cycles;
      lc.stall_cycles = r.stall_cycles;
      lc.executions = tmr.Triplicates(r.node_id) ? 3 : 1;
      stats.total_cycles += r.TotalCycles() * lc.executions;
      stats.cycles.push_back(lc);
    }
    return stats;
  }

  std::unique_ptr<CompiledModel> model_;
  AcceleratorConfig config_;
  // The workspace is reused between calls; calls on one Accelerator are serialised.
  mutable std::mutex mu_;
  ChainWorkspace ws_;
};

}  // namespace

Result<std::unique_ptr<Accelerator>> Accelerator::Create(pb::QuantizedModel model,
                                                         const AcceleratorConfig& config,
                                                         const Accelerator* previous) {
  R2F_RETURN_IF_ERROR(ValidateAcceleratorConfig(config));
  const auto* reuse = dynamic_cast<const AcceleratorImpl*>(previous);
  R2F_ASSIGN_OR_RETURN(
      std::unique_ptr<CompiledModel> compiled,
      CompiledModel::Compile(std::move(model), reuse ? &reuse->compiled() : nullptr));
  return std::unique_ptr<Accelerator>(new AcceleratorImpl(std::move(compiled), config));
}

Status Accelerator::Validate(pb::QuantizedModel* model) { return CompiledModel::Check(model); }

}  // namespace r2f::accel
