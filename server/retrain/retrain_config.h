// The retrain config (configs/retrain/*.yaml): which device, which method (DRM or APRM with
// its threshold policy and reference), the training settings, the evaluation before and after,
// and the run directory. LibTorch-free.
#pragma once

#include <cstdint>
#include <string>

#include "common/base/status.h"
#include "r2f.pb.h"
#include "server/api/remote_session.h"
#include "server/model/hil_settings.h"
#include "server/retrain/do_no_harm.h"

namespace r2f {

class ConfigMap;

enum class RetrainMethod { kDrm, kAprm };
enum class ThresholdPolicy { kOffline, kAdaptive };

// "drm" / "aprm", "offline" / "adaptive": the names of the config and of summary.json.
const char* RetrainMethodName(RetrainMethod method);
const char* ThresholdPolicyName(ThresholdPolicy policy);

struct RetrainConfig {
  std::string source;
  RemoteSessionConfig session;  // device, broker, link, model, TMR protection set
  RetrainMethod method = RetrainMethod::kAprm;
  ThresholdPolicy policy = ThresholdPolicy::kOffline;
  double similarity_threshold = 0.6;
  bool lz4_raw = false;  // also LZ4 the layers sent raw (off: the paper's DRM)
  // What APRM's increments (and the offline policy's similarities) are taken against: the
  // paper's LW-TMR reference chain (chain), our layer-local TMR (local, approximate), or
  // layer-local TMR with patches where the replicas disagree (exact, the default: the rebuild
  // equals DRM's data; docs/retraining.md). With exact the device chooses each layer's form per
  // batch, so the threshold policy and similarity threshold do not apply.
  pb::IncrementReference reference = pb::REFERENCE_LOCAL_EXACT;
  // The device also sends each layer's checksum so that the rebuild is checked against its true
  // outputs (a debug option: mismatched_layers in stages.jsonl and summary.json).
  bool verify_rebuild = false;
  // Training
  int64_t samples = 0;  // training samples per epoch from the device's train split; 0 = all
  int batch_size = 16;
  int epochs = 1;
  uint64_t seed = 1;
  HilSettings hil;
  // Evaluation before and after, on the faulty device
  int64_t eval_images = 2000;
  int eval_batch_size = 100;
  bool eval_before = true;
  // Do no harm: validation on held-out training samples, keep the best model.
  ValidationSettings validation;
  // The device Base and retrained accuracy are measured on; empty: the training device. A
  // different device gives the paper's unmatched-retraining baselines (UR-F / UR-C, Fig. 2):
  // train on a simulation of the accelerator at another BER, deploy on the real one.
  std::string eval_device_id;
  // Run directory, checkpoints
  std::string run_dir = "runs/retrain";
  int checkpoint_every = 50;  // iterations; 0 = only at the end
  // Send each iteration's getData right behind the previous deploy instead of after its Ack
  // (R2fServer::deployModelThenGetData): the same requests, results and model files, one round
  // trip less per iteration (docs/retraining.md, "Pipelined calls").
  bool pipeline = true;
  int64_t max_iterations = 0;  // stop early (tests); 0 = all

  // The device Base and retrained accuracy are measured on.
  const std::string& EvalDevice() const {
    return eval_device_id.empty() ? session.device_id : eval_device_id;
  }
};

// Reads and validates a retrain config; errors name the file, the line and the key.
Result<RetrainConfig> LoadRetrainConfig(const std::string& path);

// The settings a run's batches, faults and updates follow, as (config key, value) pairs: the
// device, the model, the protection set, the method and the training schedule. The checkpoint
// records them; --resume under other values is refused (a changed batch size or seed would mix
// two runs' batches in one model). Validation and evaluation sizes, timeouts and the link are
// not among them: a resumed run keeps its held-out samples whatever the config says now.
using RunSettings = std::vector<std::pair<std::string, std::string>>;
RunSettings RunDefiningSettings(const RetrainConfig& config);

// FailedPrecondition listing every key whose value differs between the run's `recorded`
// settings and `now` (or that only one of them has), naming `run_dir`; OK when they agree.
Status CheckResumeSettings(const std::string& run_dir, const RunSettings& recorded,
                           const RunSettings& now);

// The method sections of an already opened map (the fleet config reads them per device too):
// method, train, eval, run. Errors are collected by the map (ConfigMap::Finish).
void ParseRetrainSections(ConfigMap& map, RetrainConfig* out);

}  // namespace r2f
