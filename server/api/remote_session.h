// What every remote command (eval, retrain, search) needs to reach one device: the device id,
// the broker, the modelled link, the model to start from and the TMR protection set. Read from
// the same config sections everywhere (configs/eval.yaml documents them):
//   device_id, job_id, broker {...}, link {...}, model {path | pretrain_config, deploy_as_delta},
//   tmr {mode, protected_layers}, call {timeout_s, attempts}
#pragma once

#include <string>

#include "accel_sim/accelerator.h"
#include "common/base/config.h"
#include "common/base/status.h"
#include "common/link/link_config.h"
#include "r2f.pb.h"
#include "server/api/r2f_server_api.h"

namespace r2f {

struct RemoteSessionConfig {
  std::string device_id;
  R2fServerOptions server;  // transport (broker), link, throttle, job id, call timeout
  LinkConfig link;
  std::string model_path;       // model.path
  std::string pretrain_config;  // model.pretrain_config: the model of its PretrainRunDir
  bool deploy_as_delta = true;  // send only changed weights when the device holds our last model
  accel::TmrConfig tmr;
};

// Reads the session sections of `map` (which keeps ownership: the caller reads its own keys
// and calls map.Finish()). `default_job` names the job when the config does not. Without
// `one_device` (a fleet config) there is no device_id key: the caller names the devices.
void ParseRemoteSession(ConfigMap& map, const std::string& default_job, RemoteSessionConfig* out,
                        bool one_device = true);

// The link section into the session's link model and the server's options.
void ApplyLinkSection(ConfigMap link, RemoteSessionConfig* out);

// The TMR section: mode none | partial | layer_wise | network_wise, protected_layers.
void ParseTmrSection(ConfigMap section, accel::TmrConfig* out);

// The model named by the session. NotFound saying which command to run when the pre-training
// has not been done yet.
Result<pb::QuantizedModel> LoadSessionModel(const RemoteSessionConfig& session);

}  // namespace r2f
