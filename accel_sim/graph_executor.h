// Runs one or more "chains" of a compiled model over a batch of images on the faulty array.
//
// A chain is one pass through the whole graph with its own activations. Within a chain a MAC
// layer runs once, or three times with independent faults and a bitwise vote (LW / partial
// TMR). Several chains serve NW-TMR (three chains, voted by the caller) and training mode (the
// deployed chain plus the LW-TMR reference chain). Chains share work where that is exact: a MAC
// layer's clean GEMM is computed once per distinct input image, so chains whose inputs still
// agree bit for bit (at BER 0, or before the first flip) pay for one GEMM. A lone execution
// with input flips runs its own GEMM on its flipped input (see execution_faults.h).
//
// The faults of every execution of every MAC layer are drawn and indexed in one parallel pass
// before the forward pass, and bound to each layer's input just before the layer runs: the
// faulty path then adds one OpenMP synchronisation per call, not one per layer.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "accel_sim/accelerator.h"
#include "accel_sim/compiled_model.h"
#include "accel_sim/execution_faults.h"

namespace r2f::accel {

struct ChainSpec {
  // Per MAC layer (graph order): the replica indices of its executions. One entry: the layer
  // runs once. Three: three executions with independent faults, bitwise-voted (TMR). Replica
  // indices key the fault streams, so chains that must be independent use different ones.
  std::vector<std::vector<uint32_t>> replicas;
  // -1: the chain computes its own activations. Otherwise the index of an earlier chain whose
  // activations feed this chain's MAC layers (the layer-local TMR reference: each layer re-run
  // on the deployed chain's input); the chain then runs no element-wise node of its own.
  int input_chain = -1;
  // Record, for every three-replica layer, where the replicas' results were not all equal
  // (ChainWorkspace::disagreement): where the vote may be wrong.
  bool record_disagreement = false;
};

struct ChainRequest {
  const uint8_t* pixels = nullptr;  // batch x C x H x W
  int batch = 0;
  std::vector<uint64_t> sample_ids;  // one per image
  FaultConfig faults;
  uint64_t execution_tag = 0;
  std::vector<ChainSpec> chains;
  // Called after every MAC layer with its output (single-chain requests only): the layer's
  // values may be rewritten before later nodes read them (Accelerator::InferWithOverrides).
  const MacOutputHook* mac_output_hook = nullptr;
};

// Activations of every node of every chain, reused from call to call.
class ChainWorkspace {
 public:
  // The batch buffer of `node` in `chain`: batch * elements values (valid after Execute).
  const int8_t* node_output(int chain, uint32_t node) const { return node_ptr_[chain][node]; }
  const std::vector<LayerFaultStats>& fault_stats(int chain) const { return stats_[chain]; }
  // With ChainSpec::record_disagreement: per element of MAC layer `mac`'s batch output, 1 where
  // its three replicas disagreed (empty for a layer that ran once).
  const std::vector<uint8_t>& disagreement(int chain, size_t mac) const {
    return disagree_[chain][mac];
  }

 private:
  friend Status ExecuteChains(const CompiledModel&, const ChainRequest&, ChainWorkspace*);
  std::vector<std::vector<int8_t>> arena_;  // per chain
  // Per chain: [(MAC layer * batch + image) * 3 + replica], all layers indexed before the pass.
  std::vector<std::vector<ExecutionFaults>> faults_;
  std::vector<std::vector<int8_t>> faulty_inputs_;   // per chain: flipped layer inputs, per image
  std::vector<std::vector<int8_t*>> node_ptr_;       // per chain, per node
  std::vector<std::vector<LayerFaultStats>> stats_;  // per chain, per MAC layer
  std::vector<std::vector<std::vector<uint8_t>>> disagree_;  // per chain, per MAC layer
};

// Executes every chain of `request`. Checks the request's shape (chain specs sized to the MAC
// layers, one or three replicas, sample ids per image); the model is trusted (compiled).
Status ExecuteChains(const CompiledModel& model, const ChainRequest& request,
                     ChainWorkspace* workspace);

}  // namespace r2f::accel
