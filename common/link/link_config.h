// The `link` section of a config (eval, retrain): which IoT link the run models (paper Table II)
// and whether real traffic is slowed to it. The YAML side of common/link/link_model.h.
//
//   link:
//     preset: hspa            # lora | ieee802154g | hspa | lte_cat4 | custom
//     uplink_bps: 5.76e6      # optional for a preset (overrides it), required for custom
//     downlink_bps: 21.1e6    #   "
//     latency_s: 0.05         #   "
//     throttle: false         # hold the run's MQTT traffic to the link's bit rates
//     throttle_burst_bytes: 65536
#pragma once

#include <cstdint>

#include "common/base/config.h"
#include "common/base/status.h"
#include "common/link/link_model.h"

namespace r2f {

struct LinkConfig {
  LinkSpec spec;
  // Token-bucket throttles (common/link/throttle.h), one per direction, delay each call by what its
  // bytes would take on the link, so a loopback run "feels" the link. Off by default: the link
  // model's time is logged either way.
  bool throttle = false;
  uint64_t throttle_burst_bytes = 64 * 1024;
};

// Reads the keys above from `section` into *out and returns section.Finish() (the first error
// in the section, unknown keys included), e.g.
//   eval.yaml:7: key 'link.preset': must be one of {lora, ieee802154g, hspa, lte_cat4, custom}
//   eval.yaml:7: key 'link.preset': link.uplink_bps: required when link.preset is 'custom'
Status ParseLinkConfig(ConfigMap& section, LinkConfig* out);

}  // namespace r2f
