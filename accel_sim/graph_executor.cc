#include "accel_sim/graph_executor.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "accel_sim/elementwise_ops.h"
#include "accel_sim/fault_sampler.h"
#include "accel_sim/mac_kernels.h"
#include "accel_sim/tmr_voter.h"

namespace r2f::accel {
namespace {

bool FaultsEnabled(const FaultConfig& f) {
  if (!(f.ber > 0.0)) return false;
  for (bool on : f.sites) {
    if (on) return true;
  }
  return false;
}

Status CheckRequest(const CompiledModel& model, const ChainRequest& req) {
  if (req.pixels == nullptr || req.batch <= 0) {
    return Status::InvalidArgument("image batch is empty");
  }
  if (static_cast<int>(req.sample_ids.size()) != req.batch) {
    return Status::InvalidArgument("image batch: " + std::to_string(req.sample_ids.size()) +
                                   " sample ids for " + std::to_string(req.batch) + " images");
  }
  if (req.chains.empty()) return Status::InvalidArgument("no chain to execute");
  if (req.mac_output_hook != nullptr && req.chains.size() != 1) {
    return Status::Internal("a MAC output hook needs a single chain, not " +
                            std::to_string(req.chains.size()));
  }
  for (size_t c = 0; c < req.chains.size(); ++c) {
    const ChainSpec& chain = req.chains[c];
    if (chain.input_chain >= 0 && (static_cast<size_t>(chain.input_chain) >= c ||
                                   req.chains[chain.input_chain].input_chain >= 0)) {
      return Status::Internal("chain " + std::to_string(c) + " reads its inputs from chain " +
                              std::to_string(chain.input_chain) +
                              ", which is not an earlier chain with activations of its own");
    }
    if (chain.replicas.size() != model.mac_layers().size()) {
      return Status::Internal("chain spec covers " + std::to_string(chain.replicas.size()) +
                              " of " + std::to_string(model.mac_layers().size()) + " MAC layers");
    }
    for (const auto& r : chain.replicas) {
      if (r.size() != 1 && r.size() != 3) {
        return Status::Internal("a MAC layer runs once or three times, not " +
                                std::to_string(r.size()));
      }
    }
  }
  return Status::Ok();
}

// One (chain, image) execution of the current MAC layer.
struct Item {
  int chain;
  int image;
  int source_chain;  // the first chain with the same input image (itself if unique)
  bool aliased;      // another chain's item reads the very same input buffer
};

// Runs the request's chains node by node; one object per ExecuteChains call.
class ChainRunner {
 public:
  ChainRunner(const CompiledModel& model, const ChainRequest& req,
              std::vector<std::vector<int8_t>>* arena,
              std::vector<std::vector<ExecutionFaults>>* faults,
              std::vector<std::vector<int8_t>>* faulty_inputs,
              std::vector<std::vector<int8_t*>>* node_ptr,
              std::vector<std::vector<LayerFaultStats>>* stats,
              std::vector<std::vector<std::vector<uint8_t>>>* disagree)
      : model_(model),
        req_(req),
        arena_(*arena),
        faults_(*faults),
        faulty_inputs_(*faulty_inputs),
        node_ptr_(*node_ptr),
        stats_(*stats),
        disagree_(*disagree),
        chains_(static_cast<int>(req.chains.size())),
        batch_(req.batch),
        faults_on_(FaultsEnabled(req.faults)) {}

  Status Run() {
    AssignBuffers();
    const std::vector<NodeInfo>& nodes = model_.nodes();
    if (faults_on_) R2F_RETURN_IF_ERROR(PrepareAllFaults());
    QuantizeInput(model_.input_lut(), nodes[0], batch_, req_.pixels, node_ptr_[0][0]);
    for (const NodeInfo& node : nodes) {
      if (node.op == pb::OP_INPUT || node.op == pb::OP_FLATTEN) continue;
      if (node.mac_index >= 0) {
        const MacLayer& L = model_.mac_layers()[node.mac_index];
        R2F_RETURN_IF_ERROR(RunMacNode(L));
        if (req_.mac_output_hook != nullptr) {
          R2F_RETURN_IF_ERROR((*req_.mac_output_hook)(static_cast<size_t>(node.mac_index),
                                                      Out(L, 0, 0), L.out_elements() * batch_));
        }
        continue;
      }
      std::vector<const int8_t*> inputs(node.inputs.size());
      for (int c = 0; c < chains_; ++c) {
        // A chain that borrows its MAC inputs needs no activations of its own.
        if (req_.chains[c].input_chain >= 0) continue;
        for (size_t j = 0; j < node.inputs.size(); ++j) inputs[j] = node_ptr_[c][node.inputs[j]];
        RunElementwiseNode(nodes, node, inputs, batch_, node_ptr_[c][node.id]);
      }
    }
    return Status::Ok();
  }

 private:
  // The input of chain c's layer L: its own activations, or those of the chain it borrows from.
  int8_t* In(const MacLayer& L, int c, int b) const {
    const int source = req_.chains[c].input_chain >= 0 ? req_.chains[c].input_chain : c;
    return node_ptr_[source][L.input_node] + b * L.in_elements();
  }
  int8_t* Out(const MacLayer& L, int c, int b) const {
    return node_ptr_[c][L.node_id] + b * L.out_elements();
  }
  ExecutionFaults& Faults(int c, const MacLayer& L, int b, int r) {
    return faults_[c][(static_cast<size_t>(L.mac_index) * batch_ + b) * 3 + r];
  }
  int8_t* FaultyInput(const MacLayer& L, int c, int b) {
    return faulty_inputs_[c].data() + b * L.in_elements();
  }

  // Each chain owns one arena with every node's output; the input node (chain 0's) and
  // flatten nodes alias existing buffers, as flatten does not move bytes.
  void AssignBuffers() {
    const std::vector<NodeInfo>& nodes = model_.nodes();
    int64_t arena_size = 0;
    for (const NodeInfo& n : nodes) {
      if (n.op != pb::OP_INPUT && n.op != pb::OP_FLATTEN) arena_size += n.elements * batch_;
    }
    const int64_t input_size = nodes[0].elements * batch_;
    int64_t max_in = 0;
    for (const MacLayer& L : model_.mac_layers()) max_in = std::max(max_in, L.in_elements());
    arena_.resize(chains_);
    faults_.resize(chains_);
    faulty_inputs_.resize(chains_);
    node_ptr_.assign(chains_, std::vector<int8_t*>(nodes.size(), nullptr));
    stats_.assign(chains_, std::vector<LayerFaultStats>(model_.mac_layers().size()));
    disagree_.resize(chains_);
    for (int c = 0; c < chains_; ++c) {
      disagree_[c].resize(model_.mac_layers().size());
      for (size_t m = 0; m < model_.mac_layers().size(); ++m) {
        const MacLayer& L = model_.mac_layers()[m];
        const bool record =
            req_.chains[c].record_disagreement && req_.chains[c].replicas[m].size() == 3;
        disagree_[c][m].assign(record ? static_cast<size_t>(L.out_elements() * batch_) : 0, 0);
      }
    }
    for (int c = 0; c < chains_; ++c) {
      const int64_t size = arena_size + (c == 0 ? input_size : 0);
      if (static_cast<int64_t>(arena_[c].size()) < size)
        arena_[c].resize(static_cast<size_t>(size));
      const size_t executions = model_.mac_layers().size() * batch_ * 3;
      if (faults_on_ && faults_[c].size() < executions) faults_[c].resize(executions);
      if (faults_on_ && static_cast<int64_t>(faulty_inputs_[c].size()) < max_in * batch_) {
        faulty_inputs_[c].resize(static_cast<size_t>(max_in * batch_));
      }
      int64_t offset = 0;
      for (const NodeInfo& n : nodes) {
        if (n.op == pb::OP_FLATTEN) {
          node_ptr_[c][n.id] = node_ptr_[c][n.inputs[0]];
        } else if (n.op == pb::OP_INPUT) {
          node_ptr_[c][n.id] = arena_[0].data() + arena_size;
        } else {
          node_ptr_[c][n.id] = arena_[c].data() + offset;
          offset += n.elements * batch_;
        }
      }
      for (size_t m = 0; m < model_.mac_layers().size(); ++m) {
        stats_[c][m].node_id = model_.mac_layers()[m].node_id;
      }
    }
  }

  // The (chain, image) items of a layer, each pointing at the first chain whose input image is
  // bit-identical, so that they can share one clean GEMM, and knowing whether another chain
  // reads the same buffer (the graph input is shared by all chains).
  void FindSharedInputs(const MacLayer& L) {
    items_.clear();
    for (int c = 0; c < chains_; ++c) {
      for (int b = 0; b < batch_; ++b) {
        int source = c;
        bool aliased = false;
        for (int c2 = 0; c2 < chains_; ++c2) {
          aliased |= c2 != c && In(L, c2, b) == In(L, c, b);
          if (c2 < c && source == c &&
              (In(L, c2, b) == In(L, c, b) ||
               std::memcmp(In(L, c2, b), In(L, c, b), static_cast<size_t>(L.in_elements())) == 0)) {
            source = c2;
          }
        }
        items_.push_back({c, b, source, aliased});
      }
    }
  }

  // Exposure is a property of the executions, whatever the BER.
  void CountExposure(const MacLayer& L) {
    const LayerExposure exposure = L.Exposure();
    for (int c = 0; c < chains_; ++c) {
      LayerFaultStats& st = stats_[c][L.mac_index];
      const uint64_t executions =
          static_cast<uint64_t>(batch_) * req_.chains[c].replicas[L.mac_index].size();
      for (int s = 0; s < kNumFaultSites; ++s) {
        if (req_.faults.sites[s]) {
          st.exposed_bits[s] += exposure.Bits(static_cast<FaultSite>(s)) * executions;
        }
      }
    }
  }

  // Whether another chain runs layer m as three TMR replicas on chain c's very input buffer.
  bool SharesInputWithTmr(int c, int m) const {
    auto source = [&](int chain) {
      return req_.chains[chain].input_chain >= 0 ? req_.chains[chain].input_chain : chain;
    };
    for (int c2 = 0; c2 < chains_; ++c2) {
      if (c2 != c && source(c2) == source(c) && req_.chains[c2].replicas[m].size() == 3) {
        return true;
      }
    }
    return false;
  }

  // Draws the flips of every execution of every MAC layer and indexes them (the part that
  // needs no layer input), in one parallel pass before the forward pass: on a loaded machine
  // every OpenMP synchronisation can cost a scheduler time slice, so the faulty path adds one
  // per call rather than one per layer.
  Status PrepareAllFaults() {
    const auto& layers = model_.mac_layers();
    const auto num_layers = static_cast<int64_t>(layers.size());
    const int64_t num_items = chains_ * num_layers * batch_;
    // Flip counts per item, summed afterwards: atomic adds from both threads to the same
    // statistics would bounce their cache line.
    item_flips_.assign(static_cast<size_t>(num_items), {});
    Status failure;
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t i = 0; i < num_items; ++i) {
      const int c = static_cast<int>(i / (num_layers * batch_));
      const MacLayer& L = layers[(i / batch_) % num_layers];
      const int b = static_cast<int>(i % batch_);
      thread_local FaultPlan plan;
      const std::vector<uint32_t>& replicas = req_.chains[c].replicas[L.mac_index];
      for (size_t r = 0; r < replicas.size(); ++r) {
        const FaultKey key{req_.faults.seed, req_.execution_tag, req_.sample_ids[b], L.node_id,
                           replicas[r]};
        SampleFaultPlan(req_.faults, key, L.Exposure(), &plan);
        for (int s = 0; s < kNumFaultSites; ++s) item_flips_[i][s] += plan.flips[s].size();
        // A lone execution reads its own flipped input (see ExecutionFaults::Build), unless
        // TMR replicas run a clean GEMM on the same input buffer anyway (the layer-local
        // reference): then it joins that GEMM with deltas, which costs less than a GEMM of its
        // own.
        const bool private_input = replicas.size() == 1 && !SharesInputWithTmr(c, L.mac_index);
        Status status = Faults(c, L, b, static_cast<int>(r)).Build(L, plan, private_input);
        if (!status.ok()) {
#pragma omp critical(r2f_fault_failure)
          failure = status;
        }
      }
    }
    for (int64_t i = 0; i < num_items; ++i) {
      const int c = static_cast<int>(i / (num_layers * batch_));
      const int m = static_cast<int>((i / batch_) % num_layers);
      for (int s = 0; s < kNumFaultSites; ++s) stats_[c][m].flips[s] += item_flips_[i][s];
    }
    return failure;
  }

  // Gives every execution of layer L its input (see ExecutionFaults::BindInput). A private
  // input is the layer input itself, flipped in place (undone by RestoreInputs after the
  // layer), unless another chain reads the same buffer: then a copy.
  void BindInputs(const MacLayer& L) {
    private_input_.assign(items_.size(), nullptr);
    in_place_.assign(items_.size(), 0);
    for (size_t i = 0; i < items_.size(); ++i) {
      const Item& it = items_[i];
      const size_t replicas = req_.chains[it.chain].replicas[L.mac_index].size();
      for (size_t r = 0; r < replicas; ++r) {
        ExecutionFaults& f = Faults(it.chain, L, it.image, static_cast<int>(r));
        if (!f.any()) continue;
        int8_t* flipped = nullptr;
        if (f.has_private_input()) {
          flipped = it.aliased ? FaultyInput(L, it.chain, it.image) : In(L, it.chain, it.image);
          private_input_[i] = flipped;
          in_place_[i] = !it.aliased;
        }
        f.BindInput(In(L, it.chain, it.image), flipped);
      }
    }
  }

  // Undoes the in-place input flips of BindInputs: the layer input is another node's output,
  // read again by later nodes and reported to the caller.
  void RestoreInputs(const MacLayer& L) {
    for (size_t i = 0; i < items_.size(); ++i) {
      if (!in_place_[i]) continue;
      Faults(items_[i].chain, L, items_[i].image, 0).ToggleInputFlips(private_input_[i]);
      in_place_[i] = 0;
    }
  }

  Status RunMacNode(const MacLayer& L) {
    FindSharedInputs(L);
    CountExposure(L);
    if (faults_on_) BindInputs(L);
    // One GEMM per distinct input image, feeding every item that shares it; an execution with
    // its own flipped input gets a GEMM of its own.
    images_.clear();
    image_of_.assign(items_.size(), -1);
    if (!faults_on_) {
      private_input_.assign(items_.size(), nullptr);
      in_place_.assign(items_.size(), 0);
    }
    for (size_t i = 0; i < items_.size(); ++i) {
      const Item& it = items_[i];
      MacTarget target;
      target.output = Out(L, it.chain, it.image);
      target.replicas = static_cast<int>(req_.chains[it.chain].replicas[L.mac_index].size());
      std::vector<uint8_t>& mask = disagree_[it.chain][L.mac_index];
      if (!mask.empty()) target.disagree = mask.data() + it.image * L.out_elements();
      for (int r = 0; faults_on_ && r < target.replicas; ++r) {
        const ExecutionFaults& f = Faults(it.chain, L, it.image, r);
        if (f.any()) target.faults[r] = &f;
      }
      if (private_input_[i] != nullptr) {
        images_.push_back(MacImage{private_input_[i], {target}});
        continue;
      }
      // The first item with this clean input image owns the shared GEMM.
      const size_t source = static_cast<size_t>(it.source_chain) * batch_ + it.image;
      int& shared = image_of_[source];
      if (shared < 0) {
        shared = static_cast<int>(images_.size());
        images_.push_back(MacImage{In(L, it.chain, it.image), {}});
      }
      images_[shared].targets.push_back(target);
    }
    RunMacLayer(L, images_);
    RestoreInputs(L);
    return Status::Ok();
  }

  const CompiledModel& model_;
  const ChainRequest& req_;
  std::vector<std::vector<int8_t>>& arena_;
  std::vector<std::vector<ExecutionFaults>>& faults_;
  std::vector<std::vector<int8_t>>& faulty_inputs_;
  std::vector<std::vector<int8_t*>>& node_ptr_;
  std::vector<std::vector<LayerFaultStats>>& stats_;
  std::vector<std::vector<std::vector<uint8_t>>>& disagree_;
  const int chains_;
  const int batch_;
  const bool faults_on_;
  std::vector<Item> items_;
  std::vector<MacImage> images_;
  std::vector<int> image_of_;  // per source item: index of its shared clean GEMM image
  std::vector<std::array<uint64_t, kNumFaultSites>> item_flips_;  // PrepareAllFaults' counts
  std::vector<int8_t*> private_input_;  // per item: its own flipped input, or nullptr
  std::vector<uint8_t> in_place_;       // per item: private_input_ is its flipped layer input
};

}  // namespace

Status ExecuteChains(const CompiledModel& model, const ChainRequest& req, ChainWorkspace* ws) {
  R2F_RETURN_IF_ERROR(CheckRequest(model, req));
  ChainRunner runner(model, req, &ws->arena_, &ws->faults_, &ws->faulty_inputs_, &ws->node_ptr_,
                     &ws->stats_, &ws->disagree_);
  return runner.Run();
}

}  // namespace r2f::accel
