// The device daemon's configuration (configs/client.yaml, documented there and in
// docs/daemons.md). Every key is validated; errors name the file, the line and the key.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "accel_sim/accelerator.h"
#include "common/base/config.h"
#include "common/base/status.h"
#include "common/data/dataset.h"
#include "common/net/transport.h"

namespace r2f {

// What the request handler (client/device_service.h) needs: no MQTT in here.
struct DeviceServiceOptions {
  std::string device_id;  // for messages
  accel::AcceleratorConfig accelerator;
  accel::FaultConfig faults;  // this device's soft errors
  // Where the deployed model and the mode are kept (model.pb, mode.pb) so that a restarted
  // device keeps them; empty keeps them in memory only (unit tests).
  std::string state_dir;
  uint64_t max_model_bytes = 64ull << 20;
  uint64_t max_samples_per_request = 4096;
  // Test hook (debug.handler_delay_ms): sleep after a request has been executed (its effects
  // persisted) and before its reply is handed to the transport. That is the window in which a
  // crash loses the reply but not the effect, the hard case for idempotent retries; the fault
  // tests kill the daemon or the broker inside it. 0 in production.
  std::chrono::milliseconds reply_delay{0};
};

struct DeviceConfig {
  std::string source;          // the config file
  TransportOptions transport;  // device role, broker section
  DatasetSpec train_data;      // the device's own application data
  DatasetSpec test_data;
  DeviceServiceOptions service;
  std::string log_level = "info";
  std::string log_file;  // empty: stderr only
};

// The largest request a device with these limits accepts: a deployModel of max_model_bytes
// or a getData of max_samples_per_request sample ids, plus framing. ParseDeviceConfig sets
// TransportOptions::max_incoming_payload_bytes to it.
uint64_t MaxRequestBytes(const DeviceServiceOptions& service);

// Reads and validates a device config file.
Result<DeviceConfig> LoadDeviceConfig(const std::string& path);
// The same from an already opened map (tests build configs from strings).
Result<DeviceConfig> ParseDeviceConfig(ConfigMap& map);

}  // namespace r2f
