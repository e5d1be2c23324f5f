// `r2f_server retrain`: remote retraining, the heart of R2F (docs/retraining.md).
//
// Per iteration (a batch of the device's training samples):
//   1. getData(training): the device runs its faulty chain (as deployed, partial TMR on S) and,
//      for APRM, the TMR reference; it sends inputs, labels, and each MAC layer's output raw
//      (DRM) or as a compressed sparse increment against the reference (APRM).
//   2. the server rebuilds the faulty outputs (recomputing the clean ones for increments),
//   3. runs the hardware-in-the-loop forward, backpropagates and takes an SGD step,
//   4. converts the master weights to int8 with the fixed formats and deploys the new model.
// Every iteration's seven stage times go to <run_dir>/stages.jsonl. Do no harm (do_no_harm.h)
// validates held-out samples on the device every `validation.every` iterations and keeps the
// best model. The run ends with Base and retrained accuracy measured on the same faulty device,
// and <run_dir>/summary.json (server/retrain/run_directory.h lists the files). LibTorch-free
// header.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/base/metrics.h"
#include "common/base/status.h"
#include "common/link/stage_timer.h"
#include "server/retrain/progress.h"
#include "server/retrain/retrain_config.h"

namespace r2f {

class R2fServer;

struct RetrainResult {
  std::string run_dir;
  std::string device_id;
  std::string served_by;  // the server that finished the run (its MQTT client id)
  int64_t iterations = 0;
  int64_t resumed_from = -1;  // last completed iteration restored from a checkpoint
  Accuracy before;
  Accuracy after;              // of the final model (do no harm: the kept one)
  Accuracy after_last;         // of the last iteration's model, when do no harm kept another one
  BestModelKeeper validation;  // do no harm (has_base() false when it was off)
  // The exact method's counters over the run: elements sent as patches, layers (summed over
  // iterations) whose replicas disagreed, and layers whose rebuild failed its checksum
  // (method.verify_rebuild).
  struct {
    int64_t patched_elements = 0, disagreeing_layers = 0, mismatched_layers = 0;
  } rebuild;
  // run.pipeline: iterations trained on data asked for right behind the deploy before them, and
  // such requests not answered by the deployed model (it was resent or refused first, or the
  // request failed), which the next iteration asked again.
  int64_t prefetched = 0, overtaken = 0;
  TimingTotals timing;
  std::vector<uint32_t> increment_layers;  // offline policy: the layers sent as increments
  uint64_t final_model_version = 0;
  double tmr_overhead = 0;  // r = 2 * sum_{i in S} O_i / sum_i O_i of the protection set
  std::string final_model_path;
};

// Runs (or, with resume, continues) the retraining described by `config` through `server`,
// which may serve other runs at the same time (each run only takes its own devices' call
// records). `progress` (may be empty) hears about every iteration.
Result<RetrainResult> RunRetrain(const RetrainConfig& config, bool resume, R2fServer& server,
                                 const ProgressSink& progress);

// The same with a connection of its own to the config's broker and a ProgressPrinter.
Result<RetrainResult> RunRetrain(const RetrainConfig& config, bool resume);

// The stage table printed at the end of a run.
std::string FormatStageTable(const TimingTotals& totals);

// summary.json of a finished run.
std::string RetrainSummaryJson(const RetrainConfig& config, const RetrainResult& result);

}  // namespace r2f
