// The fleet config (configs/fleet.yaml): one retraining job per device, from shared settings
// with per-device overrides, and how the server runs them (docs/fleet.md).
//
//   <every section of a retrain config: broker, link, model, tmr, method, train, eval, run, call>
//   fleet:
//     devices: [dev-1, dev-2]   # or empty with discover: true
//     discover: false           # every device whose retained status is "online"
//     discover_wait_s: 3        # how long to listen for statuses before choosing
//     max_concurrent: 2         # jobs at a time in this server process
//     lease_s: 60               # a device is this server's while its requests renew the lease
//     job_attempts: 3           # a job that failed (device gone, lease lost) is tried again
//     threads_per_job: 0        # LibTorch / OpenMP threads of one job; 0: cores / max_concurrent
//     plot_script: docs/figures/plot_fleet.py   # "" for no plot
//     overrides:                # per device: method, train, eval, link sections
//       dev-2: {method: {mode: drm}, link: {preset: hspa}, train: {max_iterations: 100}}
//
// Each device's run lives in <run.dir>/<device>/ (stages.jsonl, summary.json, checkpoint).
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "server/retrain/retrain_config.h"

namespace r2f {

struct FleetConfig {
  std::string source;
  RetrainConfig base;                // the shared settings; base.run_dir is the fleet's directory
  std::vector<std::string> devices;  // explicit list (empty with discover)
  bool discover = false;
  std::chrono::milliseconds discover_wait{3000};
  int max_concurrent = 2;
  std::chrono::milliseconds lease{60000};
  int job_attempts = 3;
  int threads_per_job = 0;
  std::string plot_script = "docs/figures/plot_fleet.py";
  std::map<std::string, RetrainConfig> overridden;  // devices with overrides: their whole job

  // The job of `device`: its overrides (or the shared settings) with its run directory.
  RetrainConfig JobFor(const std::string& device) const;
};

// Reads and validates a fleet config; errors name the file, the line and the key.
Result<FleetConfig> LoadFleetConfig(const std::string& path);

}  // namespace r2f
