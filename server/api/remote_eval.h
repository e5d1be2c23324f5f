// `r2f_server eval`: deploys a model to a remote device, sets inference mode with the chosen TMR
// protection, evaluates the device's own data set in batches over MQTT and reports accuracy,
// soft-error counts, accelerator cycles and link traffic (configs/eval.yaml, docs/daemons.md).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "accel_sim/accelerator.h"
#include "common/base/metrics.h"
#include "common/base/status.h"
#include "common/link/link_config.h"
#include "r2f.pb.h"
#include "server/api/r2f_server_api.h"
#include "server/api/remote_session.h"

namespace r2f {

struct EvalSettings {
  pb::DataSplit split = pb::SPLIT_TEST;
  int64_t images = 0;                // the first `images` samples of the split; 0 = all
  std::vector<uint64_t> sample_ids;  // explicit samples of the split (overrides images)
  int batch_size = 100;
  uint64_t execution_tag = 0;
  bool layer_similarity = false;
  bool deploy_as_delta = true;
  // false: the caller has just deployed `model` itself (the search evaluates dozens of
  // protection sets of one model: resending 0.7 MB per set would cost minutes on a slow link).
  bool deploy = true;
  accel::TmrConfig tmr;
};

struct EvalConfig {
  std::string source;
  RemoteSessionConfig session;  // device, broker, link, model, TMR
  EvalSettings eval;            // its tmr and deploy_as_delta are the session's
};

// Reads and validates an eval config (configs/eval.yaml).
Result<EvalConfig> LoadEvalConfig(const std::string& path);

struct RemoteEvalResult {
  std::string device_id;
  uint64_t model_version = 0;
  std::string deploy_detail;  // the device's Ack.detail
  std::string split_name;
  int64_t images = 0;
  int batches = 0;
  Accuracy accuracy;
  std::vector<uint32_t> predictions;  // top-1 per image, in sample order (ties: lower class)
  std::vector<uint8_t> labels;        // the device's label per image, in sample order
  std::string logits;                 // int8 [images, classes], in sample order
  std::array<uint64_t, accel::kNumFaultSites> flips{};
  std::array<uint64_t, accel::kNumFaultSites> exposed_bits{};
  int64_t cycles = 0;  // accelerator cycles of all batches
  double clock_mhz = 0;
  double accel_seconds = 0;              // cycles / clock: the modelled accelerator time
  std::vector<uint32_t> layer_ids;       // MAC layers (with layer_similarity)
  std::vector<double> layer_similarity;  // per MAC layer, share of outputs equal to clean
  // Link traffic of every call of the run (deploy, mode, data), summed from the CallRecords.
  LinkSpec link;
  uint64_t downlink_bytes = 0, uplink_bytes = 0;
  double modelled_downlink_s = 0, modelled_uplink_s = 0, measured_s = 0, throttle_s = 0;
  double wall_seconds = 0;
};

// Runs the evaluation through `server` (which must have no call records pending that should
// not be counted: they are taken and summed).
Result<RemoteEvalResult> RunRemoteEval(R2fServer& server, const std::string& device,
                                       const pb::QuantizedModel& model,
                                       const EvalSettings& settings);

// InvalidArgument when `images` (eval.images) exceed the `available` samples of `device`'s
// `split` ("train" or "test"); a retraining run checks it before it trains.
Status CheckEvalImages(const std::string& device, int64_t images, uint64_t available,
                       const std::string& split);

// The human-readable report printed by `r2f_server eval`.
std::string FormatEvalReport(const RemoteEvalResult& result);

}  // namespace r2f
