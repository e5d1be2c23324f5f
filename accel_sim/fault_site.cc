// The names of fault sites, TMR modes and training references, shared by every config and command
// line, and their wire forms (with the accelerator's geometry): the one mapping of these enums.
#include "accel_sim/accelerator.h"

#include <algorithm>

#include "accel_sim/cycle_model.h"

namespace r2f::accel {

const char* FaultSiteName(FaultSite site) {
  switch (site) {
    case FaultSite::kWeights:
      return "weights";
    case FaultSite::kInputs:
      return "inputs";
    case FaultSite::kHidden:
      return "hidden";
    case FaultSite::kOutputs:
      return "outputs";
  }
  return "unknown";
}

Result<FaultSite> ParseFaultSite(const std::string& name) {
  for (int s = 0; s < kNumFaultSites; ++s) {
    const auto site = static_cast<FaultSite>(s);
    if (name == FaultSiteName(site)) return site;
  }
  return Status::InvalidArgument("unknown fault site '" + name +
                                 "' (known: weights, inputs, hidden, outputs)");
}

const char* TmrModeName(TmrMode mode) {
  switch (mode) {
    case TmrMode::kNone:
      return "none";
    case TmrMode::kPartial:
      return "partial";
    case TmrMode::kLayerWise:
      return "layer_wise";
    case TmrMode::kNetworkWise:
      return "network_wise";
  }
  return "unknown";
}

bool TmrConfig::Triplicates(uint32_t node_id) const {
  switch (mode) {
    case TmrMode::kNone:
      return false;
    case TmrMode::kPartial:
      return std::find(protected_layers.begin(), protected_layers.end(), node_id) !=
             protected_layers.end();
    case TmrMode::kLayerWise:
    case TmrMode::kNetworkWise:
      return true;
  }
  return false;
}

Result<TmrMode> ParseTmrMode(const std::string& name) {
  for (TmrMode mode :
       {TmrMode::kNone, TmrMode::kPartial, TmrMode::kLayerWise, TmrMode::kNetworkWise}) {
    if (name == TmrModeName(mode)) return mode;
  }
  return Status::InvalidArgument("unknown TMR mode '" + name +
                                 "' (known: none, partial, layer_wise, network_wise)");
}

pb::TmrModeProto TmrModeToProto(TmrMode mode) {
  switch (mode) {
    case TmrMode::kNone:
      return pb::TMR_NONE;
    case TmrMode::kPartial:
      return pb::TMR_PARTIAL;
    case TmrMode::kLayerWise:
      return pb::TMR_LAYER_WISE;
    case TmrMode::kNetworkWise:
      return pb::TMR_NETWORK_WISE;
  }
  return pb::TMR_NONE;
}

TmrMode TmrModeFromProto(pb::TmrModeProto mode) {
  for (TmrMode m :
       {TmrMode::kNone, TmrMode::kPartial, TmrMode::kLayerWise, TmrMode::kNetworkWise}) {
    if (TmrModeToProto(m) == mode) return m;
  }
  return TmrMode::kNone;
}

const char* TrainingReferenceName(TrainingReference reference) {
  switch (reference) {
    case TrainingReference::kChain:
      return "chain";
    case TrainingReference::kLocal:
      return "local";
    case TrainingReference::kLocalExact:
      return "exact";
  }
  return "unknown";
}

Result<TrainingReference> ParseTrainingReference(const std::string& name) {
  for (TrainingReference r :
       {TrainingReference::kChain, TrainingReference::kLocal, TrainingReference::kLocalExact}) {
    if (name == TrainingReferenceName(r)) return r;
  }
  return Status::InvalidArgument("unknown training reference '" + name +
                                 "' (known: chain, local, exact)");
}

pb::IncrementReference TrainingReferenceToProto(TrainingReference reference) {
  switch (reference) {
    case TrainingReference::kLocal:
      return pb::REFERENCE_LOCAL;
    case TrainingReference::kLocalExact:
      return pb::REFERENCE_LOCAL_EXACT;
    case TrainingReference::kChain:
      break;
  }
  return pb::REFERENCE_CHAIN;
}

TrainingReference TrainingReferenceFromProto(pb::IncrementReference reference) {
  for (TrainingReference r :
       {TrainingReference::kChain, TrainingReference::kLocal, TrainingReference::kLocalExact}) {
    if (TrainingReferenceToProto(r) == reference) return r;
  }
  return TrainingReference::kChain;
}

pb::AcceleratorGeometry AcceleratorGeometryToProto(const AcceleratorConfig& config) {
  pb::AcceleratorGeometry g;
  g.set_rows(static_cast<uint32_t>(config.rows));
  g.set_cols(static_cast<uint32_t>(config.cols));
  g.set_buffer_kb(static_cast<uint32_t>(config.buffer_kb));
  g.set_dram_bytes_per_cycle(config.dram_bytes_per_cycle);
  g.set_clock_mhz(config.clock_mhz);
  return g;
}

Result<AcceleratorConfig> AcceleratorConfigFromProto(const pb::AcceleratorGeometry& g) {
  AcceleratorConfig config;
  if (g.ByteSizeLong() == 0) return config;  // a device that predates the field
  constexpr uint32_t kMaxDimension = 1u << 16;
  if (g.rows() > kMaxDimension || g.cols() > kMaxDimension || g.buffer_kb() > (1u << 30)) {
    return Status::InvalidArgument(
        "accelerator geometry out of range: " + std::to_string(g.rows()) + " x " +
        std::to_string(g.cols()) + ", buffer_kb " + std::to_string(g.buffer_kb()));
  }
  config.rows = static_cast<int>(g.rows());
  config.cols = static_cast<int>(g.cols());
  config.buffer_kb = static_cast<int>(g.buffer_kb());
  config.dram_bytes_per_cycle = g.dram_bytes_per_cycle();
  config.clock_mhz = g.clock_mhz();
  R2F_RETURN_IF_ERROR(ValidateAcceleratorConfig(config));
  return config;
}

}  // namespace r2f::accel
