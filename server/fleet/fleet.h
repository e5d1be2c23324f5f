// `r2f_server fleet`: one server process retrains many devices, each against its own soft errors
// (the paper's Fig. 2: matched retraining), up to fleet.max_concurrent jobs at a time; several
// such processes may share one fleet (docs/fleet.md).
//
// Each job is a retraining run (server/retrain/retrain.h) in <run.dir>/<device>/. A device is
// driven by the server that holds its lease (client/device_lease.h); a server that cannot get
// it leaves the device to its holder and looks again later, so a device whose server died is
// taken over when the lease expires, and the run resumes from its checkpoint in the shared run
// directory. A device is done when its summary.json exists, whoever wrote it; each process
// returns when every device is done or has failed job_attempts times.
#pragma once

#include <string>
#include <vector>

#include "common/base/status.h"
#include "server/fleet/fleet_config.h"
#include "server/retrain/retrain.h"

namespace r2f {

struct FleetJob {
  std::string device;
  enum class State { kDone, kDoneElsewhere, kFailed };
  State state = State::kFailed;
  RetrainResult result;  // done (also when another server did it: read from its summary.json)
  Status last_error;     // the last failure, if any
  int attempts = 0;      // jobs this server started for the device
  double wall_s = 0;     // this server's time on the device
};

struct FleetResult {
  std::string server;  // this process's client id
  std::vector<FleetJob> jobs;
  double wall_s = 0;
  uint64_t bytes_received = 0;  // MQTT payload bytes this process received (every topic)
  std::string json_path;        // <run.dir>/fleet.json
  std::string plot_path;        // <run.dir>/fleet.png, when the plot script ran
};

// Runs the fleet. `restart` first removes the fleet's run directory (only safe while no other
// server works on it); without it finished devices are skipped and interrupted ones resume.
// `observer` (may be empty) hears every job's progress too, on the jobs' threads.
Result<FleetResult> RunFleet(const FleetConfig& config, bool restart,
                             const ProgressSink& observer = {});

// The table printed at the end: device, Base, after, change with its 95% interval, uplink,
// modelled and measured time, and who served it.
std::string FormatFleetTable(const FleetResult& result);

}  // namespace r2f
