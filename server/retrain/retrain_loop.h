// One retraining run as a small state machine: start (fresh or from the checkpoint), Base
// accuracy, the device prepared for training, the iterations, the retrained accuracy. Used by
// RunRetrain (server/retrain/retrain.h); its pieces are private so that each stays short.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "common/base/status.h"
#include "common/link/stage_timer.h"
#include "r2f.pb.h"
#include "server/api/r2f_server_api.h"
#include "server/retrain/device_mirror.h"
#include "server/retrain/do_no_harm.h"
#include "server/retrain/progress.h"
#include "server/retrain/retrain.h"
#include "server/retrain/run_directory.h"

namespace r2f {

class HilTrainer;

class RetrainLoop {
 public:
  // `config` and `server` must outlive the loop.
  RetrainLoop(const RetrainConfig& config, R2fServer& server, ProgressSink progress);
  ~RetrainLoop();

  Result<RetrainResult> Run(bool resume);

 private:
  Status Start(bool resume);
  Status MeasureBase();
  Status PrepareDevice();
  Status DecideIncrementLayers();
  Status ValidateBase();
  // Evaluates the validation set on the model the device runs and offers it to the keeper;
  // the time goes to *t (inference mode, logits only; the device is put back in training mode
  // unless this was the last iteration).
  Status Validate(int64_t it, IterationTiming* t);
  void CountRebuild(const pb::DataReply& reply, int mismatched_layers);
  Status RunIteration(int64_t it);
  pb::GetDataRequest IterationRequest(int64_t it);
  bool ValidatesAfter(int64_t it) const;
  // Deploys iteration it's model; with run.pipeline, iteration it + 1's getData follows right
  // behind it (R2fServer::deployModelThenGetData) and its reply is kept in prefetched_.
  Status DeployAndPrefetch(int64_t it, const pb::QuantizedModel& next);
  void AddCallRecords(IterationTiming* t, std::map<std::string, double>* extra);
  Status Checkpoint(int64_t it);
  void ReportProgress(int64_t it, double uplink_bytes);
  Status Finish();

  const RetrainConfig& c_;
  R2fServer& server_;
  ProgressSink progress_;
  RunDirectory dir_;
  RetrainResult result_;
  CheckpointState state_;
  pb::QuantizedModel start_model_;  // what the run starts from (pre-trained or checkpoint)
  std::unique_ptr<HilTrainer> trainer_;
  std::unique_ptr<DeviceMirror> mirror_;         // the device's model and its clean simulator
  accel::AcceleratorConfig device_accelerator_;  // from the device's Ack

  // Do no harm: the validation samples, the keeper and the model it keeps (unset: Base).
  bool validating_ = false;  // validation.enabled and the device has samples to hold out
  std::vector<uint32_t> validation_ids_;
  BestModelKeeper keeper_;
  pb::QuantizedModel kept_model_;
  bool kept_dirty_ = false;                  // kept_model_ is not in the checkpoint yet
  double pending_validation_s_[2] = {0, 0};  // Base's validation, added to the next stage line
  int pending_validations_ = 0;

  std::vector<uint32_t> pool_;   // the training samples (ids of the train split)
  uint64_t samples_ = 0;         // training samples used per epoch
  int64_t per_epoch_ = 0;        // iterations per epoch
  int64_t total_ = 0;            // iterations of the run
  std::vector<uint32_t> order_;  // the epoch's sample order
  int order_epoch_ = -1;

  // Run.pipeline: the next iteration's getData reply, fetched behind this iteration's deploy.
  std::optional<pb::DataReply> prefetched_;
  // The records of this iteration's calls taken so far, and of the next one's (its getData).
  std::vector<CallRecord> call_records_, next_records_;

  std::chrono::steady_clock::time_point started_;
  double loss_avg_ = -1;
  int64_t hits_ = 0, seen_ = 0;
};

}  // namespace r2f
