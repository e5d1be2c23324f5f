// `r2f_server retrain`: remote retraining (DESIGN §5), the heart of R2F.
//
// Per iteration (a batch of the device's training samples):
//   1. getData(training): the device runs its faulty chain (as deployed, partial TMR on S) and,
//      for APRM, the LW-TMR reference chain; it sends inputs, labels, and each MAC layer's
//      output raw (DRM) or as a compressed sparse increment against the reference (APRM).
//   2. the server rebuilds the faulty outputs (recomputing the clean ones for increments),
//   3. runs the hardware-in-the-loop forward, backpropagates and takes an SGD step,
//   4. converts the master weights to int8 with the fixed formats and deploys the new model.
// Every iteration's seven stage times go to <run_dir>/stages.jsonl; the run ends with Base and
// retrained accuracy measured on the same faulty device, and <run_dir>/summary.json.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "accel_sim/accelerator.h"
#include "common/increment_codec.h"
#include "common/metrics.h"
#include "common/stage_timer.h"
#include "common/status.h"
#include "server/hil_trainer.h"
#include "server/remote_session.h"

namespace r2f {

enum class RetrainMethod { kDrm, kAprm };
enum class ThresholdPolicy { kOffline, kAdaptive };

struct RetrainConfig {
  std::string source;
  RemoteSessionConfig session;  // device, broker, link, model, TMR protection set
  RetrainMethod method = RetrainMethod::kAprm;
  ThresholdPolicy policy = ThresholdPolicy::kOffline;
  double similarity_threshold = 0.6;
  bool lz4_raw = false;  // also LZ4 the layers sent raw (off: the paper's DRM)
  // What APRM's increments (and the offline policy's similarities) are taken against: the
  // paper's LW-TMR reference chain, or our layer-local TMR (docs/retraining.md).
  pb::IncrementReference reference = pb::REFERENCE_CHAIN;
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
  // The device Base and retrained accuracy are measured on; empty: the training device. A
  // different device gives the paper's unmatched-retraining baselines (UR-F / UR-C, Fig. 2):
  // train on a simulation of the accelerator at another BER, deploy on the real one.
  std::string eval_device_id;
  // Run directory, checkpoints
  std::string run_dir = "runs/retrain";
  int checkpoint_every = 50;   // iterations; 0 = only at the end
  int64_t max_iterations = 0;  // stop early (tests); 0 = all
};

Result<RetrainConfig> LoadRetrainConfig(const std::string& path);

struct RetrainResult {
  std::string run_dir;
  int64_t iterations = 0;
  int64_t resumed_from = -1;  // last completed iteration restored from a checkpoint
  Accuracy before;
  Accuracy after;
  TimingTotals timing;
  std::vector<uint32_t> increment_layers;  // offline policy: the layers sent as increments
  uint64_t final_model_version = 0;
  double tmr_overhead = 0;  // r = 2 * sum_{i in S} O_i / sum_i O_i of the protection set
  std::string final_model_path;
};

// Runs (or, with resume, continues) the retraining described by `config`.
Result<RetrainResult> RunRetrain(const RetrainConfig& config, bool resume);

// The stage table printed at the end of a run.
std::string FormatStageTable(const TimingTotals& totals);

}  // namespace r2f
