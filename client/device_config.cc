#include "client/device_config.h"

#include <algorithm>
#include <array>
#include <limits>

#include "common/net/broker_config.h"

namespace r2f {
namespace {

constexpr int64_t kMaxInt = std::numeric_limits<int32_t>::max();

void ParseAccelerator(ConfigMap a, accel::AcceleratorConfig* out) {
  out->rows = static_cast<int>(a.GetInt("rows", out->rows, 1, 4096));
  out->cols = static_cast<int>(a.GetInt("cols", out->cols, 1, 4096));
  out->buffer_kb = static_cast<int>(a.GetInt("buffer_kb", out->buffer_kb, 1, 1 << 22));
  out->dram_bytes_per_cycle =
      a.GetDouble("dram_bytes_per_cycle", out->dram_bytes_per_cycle, 1e-3, 1e6);
  out->clock_mhz = a.GetDouble("clock_mhz", out->clock_mhz, 1e-3, 1e6);
}

void ParseFaults(ConfigMap f, accel::FaultConfig* out) {
  out->ber = f.GetDouble("ber", out->ber, 0.0, 1.0);
  out->seed = static_cast<uint64_t>(
      f.GetInt("seed", static_cast<int64_t>(out->seed), 0, std::numeric_limits<int64_t>::max()));
  std::vector<std::string> all;
  for (int s = 0; s < accel::kNumFaultSites; ++s) {
    all.push_back(accel::FaultSiteName(static_cast<accel::FaultSite>(s)));
  }
  const std::vector<std::string> sites = f.GetStringList("sites", all);
  out->sites = {false, false, false, false};
  for (const std::string& site : sites) {
    Result<accel::FaultSite> parsed = accel::ParseFaultSite(site);
    if (!parsed.ok()) {
      f.Fail("sites", parsed.status().message());
      continue;
    }
    bool& on = out->sites[static_cast<size_t>(*parsed)];
    if (on) f.Fail("sites", "fault site '" + site + "' is listed twice");
    on = true;
  }
}

}  // namespace

uint64_t MaxRequestBytes(const DeviceServiceOptions& service) {
  return service.max_model_bytes + 16 * service.max_samples_per_request + (64u << 10);
}

Result<DeviceConfig> ParseDeviceConfig(ConfigMap& map) {
  DeviceConfig cfg;
  cfg.source = map.origin();
  cfg.transport.role = TransportOptions::Role::kDevice;
  cfg.transport.device_id = map.RequireString("device_id");
  if (!cfg.transport.device_id.empty()) {
    if (Status st = ValidateDeviceId(cfg.transport.device_id); !st.ok()) {
      map.Fail("device_id", st.message());
    }
  }
  cfg.service.device_id = cfg.transport.device_id;

  ConfigMap broker = map.Section("broker");
  ParseBrokerConfig(broker, &cfg.transport);  // errors stay in the map for Finish()
  cfg.transport.persistent_session =
      broker.GetBool("persistent_session", cfg.transport.persistent_session);
  cfg.transport.status_interval = std::chrono::milliseconds(static_cast<int64_t>(
      1000 * broker.GetDouble("status_interval_s", cfg.transport.status_interval.count() / 1000.0,
                              0.0, 3600.0)));

  ConfigMap data = map.Section("data");
  ConfigMap train = data.Section("train");
  ConfigMap test = data.Section("test");
  cfg.train_data.split = "train";
  cfg.test_data.split = "test";
  ParseDatasetSpec(train, &cfg.train_data);
  ParseDatasetSpec(test, &cfg.test_data);

  ParseAccelerator(map.Section("accelerator"), &cfg.service.accelerator);
  ParseFaults(map.Section("fault"), &cfg.service.faults);

  cfg.service.state_dir = map.GetString("state_dir", "cache/device/" + cfg.transport.device_id);
  if (cfg.service.state_dir.empty()) map.Fail("state_dir", "must not be empty");

  ConfigMap limits = map.Section("limits");
  cfg.service.max_model_bytes = static_cast<uint64_t>(limits.GetInt(
      "max_model_bytes", static_cast<int64_t>(cfg.service.max_model_bytes), 1024, 1ll << 32));
  cfg.service.max_samples_per_request = static_cast<uint64_t>(
      limits.GetInt("max_samples_per_request",
                    static_cast<int64_t>(cfg.service.max_samples_per_request), 1, 1 << 20));
  cfg.transport.max_queued_requests = static_cast<size_t>(limits.GetInt(
      "max_queued_requests", static_cast<int64_t>(cfg.transport.max_queued_requests), 1, 4096));
  // No request is larger than a deployModel of the largest model accepted or a getData naming
  // the most samples (a sample id takes at most 11 bytes): the transport refuses anything
  // larger at its first chunk, so the device never buffers what it would refuse anyway.
  cfg.transport.max_incoming_payload_bytes = MaxRequestBytes(cfg.service);

  ConfigMap log = map.Section("log");
  cfg.log_level =
      log.GetChoice("level", cfg.log_level, {"trace", "debug", "info", "warn", "error", "off"});
  cfg.log_file = log.GetString("file", "");

  ConfigMap debug = map.Section("debug");
  cfg.service.reply_delay =
      std::chrono::milliseconds(debug.GetInt("handler_delay_ms", 0, 0, kMaxInt));

  R2F_RETURN_IF_ERROR(map.Finish());
  return cfg;
}

Result<DeviceConfig> LoadDeviceConfig(const std::string& path) {
  R2F_ASSIGN_OR_RETURN(ConfigMap map, ConfigMap::LoadFile(path));
  return ParseDeviceConfig(map);
}

}  // namespace r2f
