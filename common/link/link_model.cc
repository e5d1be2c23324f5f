#include "common/link/link_model.h"

#include <cmath>
#include <sstream>

namespace r2f {

namespace {

// Bit rates are the paper's Table II. Latencies are our assumptions (one-way, per transfer);
// docs/link_and_codec.md gives the reasoning and sources:
//  - lora: a LoRaWAN class-A device can only receive in a window that opens RECEIVE_DELAY1
//    (default 1 s) after its own uplink, so a request/response pair costs about a second.
//  - ieee802154g: a few hops of a Wi-SUN-like mesh, tens of ms per hop.
//  - hspa / lte_cat4: half of typical operator round-trip times.
struct PresetRow {
  const char* name;
  double uplink_bps;
  double downlink_bps;
  double latency_s;
};

constexpr PresetRow kPresets[] = {
    {"lora", 50e3, 50e3, 1.0},
    {"ieee802154g", 800e3, 800e3, 0.050},
    {"hspa", 5.76e6, 21.1e6, 0.050},
    {"lte_cat4", 50e6, 150e6, 0.025},
};

std::string FormatDouble(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

Status CheckRate(const char* field, double v) {
  if (!std::isfinite(v) || v <= 0) {
    return Status::InvalidArgument(std::string("link.") + field + ": must be finite and > 0, got " +
                                   FormatDouble(v));
  }
  return Status::Ok();
}

}  // namespace

const char* DirectionName(Direction dir) {
  return dir == Direction::kUplink ? "uplink" : "downlink";
}

std::vector<std::string> LinkPresetNames() {
  std::vector<std::string> names;
  for (const PresetRow& row : kPresets) names.emplace_back(row.name);
  return names;
}

Result<LinkSpec> LinkPreset(const std::string& name) {
  for (const PresetRow& row : kPresets) {
    if (name == row.name)
      return LinkSpec{row.name, row.uplink_bps, row.downlink_bps, row.latency_s};
  }
  std::string valid;
  for (const PresetRow& row : kPresets) valid += std::string(valid.empty() ? "" : ", ") + row.name;
  return Status::NotFound("link preset '" + name + "' is unknown; valid presets: " + valid +
                          " (or 'custom' with explicit values)");
}

Status ValidateLinkSpec(const LinkSpec& spec) {
  R2F_RETURN_IF_ERROR(CheckRate("uplink_bps", spec.uplink_bps));
  R2F_RETURN_IF_ERROR(CheckRate("downlink_bps", spec.downlink_bps));
  if (!std::isfinite(spec.latency_s) || spec.latency_s < 0) {
    return Status::InvalidArgument("link.latency_s: must be finite and >= 0, got " +
                                   FormatDouble(spec.latency_s));
  }
  return Status::Ok();
}

Result<LinkSpec> ParseLinkSpec(const LinkParams& params) {
  LinkSpec spec;
  if (params.preset == "custom") {
    const char* missing = !params.uplink_bps     ? "uplink_bps"
                          : !params.downlink_bps ? "downlink_bps"
                          : !params.latency_s    ? "latency_s"
                                                 : nullptr;
    if (missing != nullptr) {
      return Status::InvalidArgument(std::string("link.") + missing +
                                     ": required when link.preset is 'custom'");
    }
    spec.name = "custom";
  } else {
    Result<LinkSpec> preset = LinkPreset(params.preset);
    if (!preset.ok()) return preset.status().WithContext("link.preset");
    spec = std::move(preset).value();
  }
  if (params.uplink_bps) spec.uplink_bps = *params.uplink_bps;
  if (params.downlink_bps) spec.downlink_bps = *params.downlink_bps;
  if (params.latency_s) spec.latency_s = *params.latency_s;
  R2F_RETURN_IF_ERROR(ValidateLinkSpec(spec));
  return spec;
}

double LinkBandwidthBps(const LinkSpec& spec, Direction dir) {
  return dir == Direction::kUplink ? spec.uplink_bps : spec.downlink_bps;
}

double ModelledSeconds(const LinkSpec& spec, Direction dir, uint64_t bytes) {
  return static_cast<double>(bytes) * 8.0 / LinkBandwidthBps(spec, dir) + spec.latency_s;
}

}  // namespace r2f
