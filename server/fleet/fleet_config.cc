#include "server/fleet/fleet_config.h"

#include <algorithm>
#include <set>

#include "common/base/config.h"
#include "common/net/transport_message.h"

namespace r2f {
namespace {

void ParseFleetSection(ConfigMap f, FleetConfig* out) {
  out->devices = f.GetStringList("devices", {});
  std::set<std::string> seen;
  for (const std::string& d : out->devices) {
    if (Status st = ValidateDeviceId(d); !st.ok()) f.Fail("devices", st.message());
    if (!seen.insert(d).second) f.Fail("devices", "device '" + d + "' is listed twice");
  }
  out->discover = f.GetBool("discover", out->discover);
  if (out->discover == !out->devices.empty()) {
    f.Fail("devices", "give either a list of devices or discover: true");
  }
  out->discover_wait = std::chrono::milliseconds(static_cast<int64_t>(
      1000 * f.GetDouble("discover_wait_s", out->discover_wait.count() / 1000.0, 0.1, 600)));
  out->max_concurrent =
      static_cast<int>(f.GetInt("max_concurrent", out->max_concurrent, 1, 256));
  out->lease = std::chrono::milliseconds(
      static_cast<int64_t>(1000 * f.GetDouble("lease_s", out->lease.count() / 1000.0, 1, 3600)));
  out->job_attempts = static_cast<int>(f.GetInt("job_attempts", out->job_attempts, 1, 100));
  out->threads_per_job =
      static_cast<int>(f.GetInt("threads_per_job", out->threads_per_job, 0, 256));
  out->plot_script = f.GetString("plot_script", out->plot_script);
}

// Per device: method, train, eval and link sections on top of the shared settings.
void ParseOverrides(ConfigMap overrides, FleetConfig* out) {
  for (const std::string& device : overrides.Keys()) {
    const bool listed = out->discover || std::find(out->devices.begin(), out->devices.end(),
                                                   device) != out->devices.end();
    if (!listed) overrides.Fail(device, "not one of fleet.devices");
    ConfigMap ov = overrides.Section(device);
    RetrainConfig c = out->base;
    c.session.device_id = device;
    if (ov.Has("link")) ApplyLinkSection(ov.Section("link"), &c.session);
    ParseRetrainSections(ov, &c);
    if (ov.Section("run").Has("dir")) {
      ov.Section("run").Fail("dir", "each device's run is <run.dir>/<device> of the fleet");
    }
    if (listed) out->overridden[device] = std::move(c);
  }
}

}  // namespace

RetrainConfig FleetConfig::JobFor(const std::string& device) const {
  auto it = overridden.find(device);
  RetrainConfig c = it != overridden.end() ? it->second : base;
  c.session.device_id = device;
  c.run_dir = base.run_dir + "/" + device;
  return c;
}

Result<FleetConfig> LoadFleetConfig(const std::string& path) {
  R2F_ASSIGN_OR_RETURN(ConfigMap map, ConfigMap::LoadFile(path));
  FleetConfig f;
  f.source = path;
  f.base.source = path;
  f.base.run_dir = "runs/fleet";
  ParseRemoteSession(map, "fleet", &f.base.session, /*one_device=*/false);
  ParseRetrainSections(map, &f.base);
  ConfigMap fleet = map.Section("fleet");
  ParseFleetSection(fleet, &f);
  ParseOverrides(fleet.Section("overrides"), &f);
  R2F_RETURN_IF_ERROR(map.Finish());
  return f;
}

}  // namespace r2f
