// The names of fault sites, TMR modes and training references, shared by every config and command
// line, and their wire forms: the one mapping of these enums.
#include "accel_sim/accelerator.h"

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
  }
  return "unknown";
}

Result<TrainingReference> ParseTrainingReference(const std::string& name) {
  for (TrainingReference r : {TrainingReference::kChain, TrainingReference::kLocal}) {
    if (name == TrainingReferenceName(r)) return r;
  }
  return Status::InvalidArgument("unknown training reference '" + name + "' (known: chain, local)");
}

pb::IncrementReference TrainingReferenceToProto(TrainingReference reference) {
  return reference == TrainingReference::kLocal ? pb::REFERENCE_LOCAL : pb::REFERENCE_CHAIN;
}

TrainingReference TrainingReferenceFromProto(pb::IncrementReference reference) {
  return reference == pb::REFERENCE_LOCAL ? TrainingReference::kLocal : TrainingReference::kChain;
}

}  // namespace r2f::accel
