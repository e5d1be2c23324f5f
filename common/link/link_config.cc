#include "common/link/link_config.h"

#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace r2f {
namespace {

// Absent keys stay unset so that a preset keeps its own value. Bit rates below 1 bit/s or above
// 1 Tbit/s are typos, not links.
std::optional<double> OptionalDouble(ConfigMap& section, const std::string& key, double min,
                                     double max) {
  if (!section.Has(key)) return std::nullopt;
  return section.GetDouble(key, 0.0, min, max);
}

}  // namespace

Status ParseLinkConfig(ConfigMap& section, LinkConfig* out) {
  std::vector<std::string> choices = LinkPresetNames();
  choices.push_back("custom");
  LinkParams params;
  params.preset = section.RequireString("preset");
  if (!params.preset.empty()) params.preset = section.GetChoice("preset", "", choices);
  params.uplink_bps = OptionalDouble(section, "uplink_bps", 1.0, 1e12);
  params.downlink_bps = OptionalDouble(section, "downlink_bps", 1.0, 1e12);
  params.latency_s = OptionalDouble(section, "latency_s", 0.0, 3600.0);
  out->throttle = section.GetBool("throttle", out->throttle);
  out->throttle_burst_bytes = static_cast<uint64_t>(
      section.GetInt("throttle_burst_bytes", static_cast<int64_t>(out->throttle_burst_bytes), 1,
                     std::numeric_limits<int32_t>::max()));
  // Only build the spec from values that passed their own checks, so that one mistake gives
  // one message.
  Status first = section.Finish();
  if (!first.ok()) return first;
  auto spec = ParseLinkSpec(params);
  if (!spec.ok()) {
    section.Fail("preset", spec.status().message());
    return section.Finish();
  }
  out->spec = std::move(spec).value();
  return Status::Ok();
}

}  // namespace r2f
