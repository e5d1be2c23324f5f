// The link model: how long the device <-> server transfers of one retraining iteration take on a
// given IoT link (docs/link_and_codec.md, paper Table II).
//
// A transfer of `bytes` in one direction is modelled as
//   seconds = bytes * 8 / bandwidth(direction) + latency
// i.e. one serialisation at the link's nominal bit rate plus one one-way latency per transfer
// (a transfer = one logical payload, however many MQTT chunks carry it: chunks are pipelined).
// Callers pass the bytes that actually go on the wire (serialised envelopes), so protocol
// framing below MQTT (TCP/IP, radio MAC) is not counted. docs/link_and_codec.md lists the
// presets and where their latencies come from.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/base/status.h"

namespace r2f {

enum class Direction {
  kUplink,    // device -> server (intermediate outputs, increments)
  kDownlink,  // server -> device (model deployment)
};

const char* DirectionName(Direction dir);

struct LinkSpec {
  std::string name;         // preset name, or "custom"
  double uplink_bps = 0;    // bit/s, > 0
  double downlink_bps = 0;  // bit/s, > 0
  double latency_s = 0;     // one-way latency added once per transfer, >= 0
};

// The presets, in the order of the paper's Table II: "lora", "ieee802154g", "hspa", "lte_cat4".
std::vector<std::string> LinkPresetNames();

// A preset by exact name; NotFound (listing the valid names) otherwise. "custom" is not a preset:
// it has no defaults (use ParseLinkSpec).
Result<LinkSpec> LinkPreset(const std::string& name);

// Checks that the bit rates are finite and > 0 and the latency finite and >= 0.
Status ValidateLinkSpec(const LinkSpec& spec);

// The plain values of a link section of a config (the YAML side lives elsewhere and only fills
// this struct). `preset` is a preset name or "custom". For "custom" all three values are
// required; for a preset any value given overrides the preset's (e.g. a measured latency).
struct LinkParams {
  std::string preset;
  std::optional<double> uplink_bps;
  std::optional<double> downlink_bps;
  std::optional<double> latency_s;
};

// Builds and validates the LinkSpec described by `params`. Errors name the offending field
// ("link.uplink_bps: must be finite and > 0, got -1").
Result<LinkSpec> ParseLinkSpec(const LinkParams& params);

// Nominal bit rate of `dir`.
double LinkBandwidthBps(const LinkSpec& spec, Direction dir);

// bytes * 8 / bandwidth(dir) + latency. `spec` must be valid (ValidateLinkSpec).
double ModelledSeconds(const LinkSpec& spec, Direction dir, uint64_t bytes);

}  // namespace r2f
