// The files of one retraining run, and the checkpoint a killed run resumes from
// (docs/retraining.md, "Checkpoints and `--resume`"):
//
//   <dir>/stages.jsonl            one line per iteration (common/link/stage_timer.h)
//   <dir>/checkpoint/state.yaml        CheckpointState; names the files below by version
//   <dir>/checkpoint/model-<v>.pb      the model deployed after state.last_iteration
//   <dir>/checkpoint/kept-<v>.pb       the model do no harm keeps so far (when not Base)
//   <dir>/checkpoint/trainer-<v>.*     master weights and momentum (HilTrainer::Save)
//   <dir>/model.pb                the final model: the one the run deployed at the end
//   <dir>/last_model.pb           the last iteration's model, when do-no-harm kept another
//   <dir>/summary.json            accuracy before and after, bytes, stage totals
//
// A checkpoint writes new files under new names, then replaces state.yaml atomically
// (common/base/atomic_file.h) to name them, then removes the files of the one before: a run
// killed at any point resumes from the last complete checkpoint. Stage lines past the
// checkpoint are dropped on resume and redone.
#pragma once

#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/base/status.h"
#include "common/link/stage_timer.h"
#include "r2f.pb.h"

namespace r2f {

struct CheckpointState {
  int64_t last_iteration = -1;  // the last iteration whose update is in the saved weights
  uint64_t model_version = 0;
  std::vector<uint32_t> increment_layers;  // the offline policy's decision
  bool increment_layers_decided = false;
  int64_t before_count = 0, before_top1 = 0, before_top5 = 0;  // Base accuracy, once measured
  // Do no harm (server/retrain/do_no_harm.h): the validations so far (the first is Base, at
  // iteration -1) and the kept model; kept_model_version names checkpoint/kept-<v>.pb.
  int64_t validation_count = 0;
  std::vector<int64_t> validated_iterations, validated_hits;
  int64_t kept_iteration = -1, kept_hits = 0;
  uint64_t kept_model_version = 0;
  // The exact method's counters (summed over the iterations the checkpoint holds).
  int64_t patched_elements = 0, disagreeing_layers = 0, mismatched_layers = 0;
  // run.pipeline: iterations trained on data asked for behind the deploy before them, and such
  // requests not answered by the deployed model (asked again by the next iteration).
  int64_t prefetched = 0, overtaken = 0;
  // The validation samples held out of training when the run started (0: no do no harm); a
  // resumed run keeps them, whatever the config says now, so it trains on the same samples.
  int64_t validation_held_out = 0;
  // The run's defining settings as (config key, value) (RunDefiningSettings in
  // retrain_config.h), checked by --resume; empty in checkpoints written before they were kept.
  std::vector<std::pair<std::string, std::string>> settings;
};

class RunDirectory {
 public:
  explicit RunDirectory(std::string dir) : dir_(std::move(dir)) {}

  // Creates the directory for a new run: removes an earlier run's checkpoint and stage lines.
  Status StartFresh();
  // Reads the checkpoint and its model into *model, and the kept model into *kept when the
  // state names one (NotFound, saying how to start, when there is none; Corruption when a model
  // does not match the state), and drops the stage lines of iterations after it. `accept`, if
  // given, sees the state first: its error is returned before anything in the directory changes.
  Result<CheckpointState> Resume(pb::QuantizedModel* model, pb::QuantizedModel* kept,
                                 const std::function<Status(const CheckpointState&)>& accept = {});
  // The totals of the stage lines on file (a resumed run keeps counting from them).
  Result<TimingTotals> ReplayStages() const;

  // One line of stages.jsonl, flushed.
  Status AppendStage(const IterationTiming& timing, const std::map<std::string, double>& extra);
  // The state and the models of a checkpoint; the trainer saves itself under
  // trainer_prefix(state.model_version) first, so that a state on disk never names files that
  // are not there. `kept` (null: Base is kept) is the model state.kept_model_version names.
  Status SaveCheckpoint(const CheckpointState& state, const pb::QuantizedModel& model,
                        const pb::QuantizedModel* kept) const;
  // The final model (model.pb), the last iteration's (last_model.pb) and summary.json.
  Status WriteFinalModel(const pb::QuantizedModel& model) const;
  Status WriteLastModel(const pb::QuantizedModel& model) const;
  Status WriteSummary(const std::string& json) const;

  const std::string& dir() const { return dir_; }
  // The trainer's files of the checkpoint of `model_version` (older checkpoints: unversioned).
  std::string trainer_prefix(uint64_t model_version) const;
  std::string final_model_path() const { return dir_ + "/model.pb"; }

 private:
  std::string stages_path() const { return dir_ + "/stages.jsonl"; }
  std::string checkpoint_dir() const { return dir_ + "/checkpoint"; }
  std::string state_path() const { return dir_ + "/checkpoint/state.yaml"; }
  // checkpoint/<what>-<version>.pb
  std::string VersionedFile(const char* what, uint64_t version) const;

  std::string dir_;
  std::ofstream stages_;  // opened by the first AppendStage
};

}  // namespace r2f
