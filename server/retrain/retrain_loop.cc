#include "server/retrain/retrain_loop.h"

#include <algorithm>

#include "common/base/logging.h"
#include "common/base/permutation.h"
#include "common/base/random.h"
#include "common/net/transport_message.h"
#include "server/api/r2f_server_api.h"
#include "server/api/remote_eval.h"
#include "server/model/hil_trainer.h"
#include "server/retrain/reconstruct.h"

namespace r2f {
namespace {

using Clock = std::chrono::steady_clock;

// Execution tags name the device executions whose soft errors are drawn: training iteration i
// uses 1 + i; the offline threshold decision and the evaluations have tags of their own, and
// Base and retrained accuracy share one, so both face the same fault pattern (a paired
// comparison).
constexpr uint64_t kEvalTag = 1ull << 61;
constexpr uint64_t kThresholdProbeTag = 1ull << 62;
// Every validation of a run faces the same faults, so that its candidates compare paired.
constexpr uint64_t kValidationTag = 1ull << 60;

pb::LayerEncodingPolicy PolicyOf(const RetrainConfig& c) {
  if (c.method == RetrainMethod::kDrm) return pb::ENCODE_RAW;
  return c.policy == ThresholdPolicy::kOffline ? pb::ENCODE_OFFLINE : pb::ENCODE_ADAPTIVE;
}

EvalSettings EvalSettingsOf(const RetrainConfig& c) {
  EvalSettings e;
  e.split = pb::SPLIT_TEST;
  e.images = c.eval_images;
  e.batch_size = c.eval_batch_size;
  e.execution_tag = kEvalTag;
  e.tmr = c.session.tmr;
  e.deploy_as_delta = false;
  return e;
}

const char* ReferenceName(pb::IncrementReference r) {
  return accel::TrainingReferenceName(accel::TrainingReferenceFromProto(r));
}

}  // namespace

RetrainLoop::RetrainLoop(const RetrainConfig& config, R2fServer& server, ProgressSink progress)
    : c_(config), server_(server), progress_(std::move(progress)), dir_(config.run_dir) {}

RetrainLoop::~RetrainLoop() = default;

Result<RetrainResult> RetrainLoop::Run(bool resume) {
  R2F_RETURN_IF_ERROR(Start(resume));
  R2F_RETURN_IF_ERROR(MeasureBase());
  R2F_RETURN_IF_ERROR(PrepareDevice());
  R2F_RETURN_IF_ERROR(ValidateBase());
  started_ = Clock::now();
  for (int64_t it = state_.last_iteration + 1; it < total_; ++it) {
    R2F_RETURN_IF_ERROR(RunIteration(it));
  }
  R2F_RETURN_IF_ERROR(Finish());
  return result_;
}

Status RetrainLoop::Start(bool resume) {
  result_.run_dir = c_.run_dir;
  result_.device_id = c_.session.device_id;
  result_.served_by = server_.transport().client_id();
  R2F_ASSIGN_OR_RETURN(start_model_, LoadSessionModel(c_.session));
  R2F_ASSIGN_OR_RETURN(trainer_, HilTrainer::Create(start_model_, c_.hil));
  state_.model_version = start_model_.model_version();
  const RunSettings settings = RunDefiningSettings(c_);
  state_.settings = settings;
  if (!resume) return dir_.StartFresh();

  // Checked before the run directory changes: a refused --resume leaves it as it was.
  auto same_settings = [&](const CheckpointState& saved) {
    if (!saved.settings.empty()) return CheckResumeSettings(c_.run_dir, saved.settings, settings);
    GetLogger("retrain")->warn(
        "{}: the checkpoint predates recorded run settings; resuming "
        "without checking them against the config",
        c_.session.device_id);
    return Status::Ok();
  };
  R2F_ASSIGN_OR_RETURN(state_, dir_.Resume(&start_model_, &kept_model_, same_settings));
  state_.settings = settings;  // a checkpoint from before they were recorded gets them now
  R2F_RETURN_IF_ERROR(trainer_->Load(dir_.trainer_prefix(state_.model_version)));
  if (state_.validation_count > 0) {
    std::vector<BestModelKeeper::Point> history;
    for (size_t i = 0; i < state_.validated_iterations.size(); ++i) {
      history.push_back({state_.validated_iterations[i], state_.validated_hits[i]});
    }
    keeper_.Restore(state_.validation_count, std::move(history),
                    {state_.kept_iteration, state_.kept_hits});
  }
  R2F_ASSIGN_OR_RETURN(result_.timing, dir_.ReplayStages());
  result_.resumed_from = state_.last_iteration;
  GetLogger("retrain")->info("{}: resuming after iteration {} (model version {})",
                             c_.session.device_id, state_.last_iteration, state_.model_version);
  return Status::Ok();
}

// Base accuracy on the faulty device, before any retraining (once per run: a resumed run reads
// it from the checkpoint).
Status RetrainLoop::MeasureBase() {
  if (!c_.eval_before || state_.before_count != 0) {
    result_.before =
        Accuracy::FromCounts(state_.before_count, state_.before_top1, state_.before_top5);
    return Status::Ok();
  }
  R2F_ASSIGN_OR_RETURN(RemoteEvalResult before,
                       RunRemoteEval(server_, c_.EvalDevice(), start_model_, EvalSettingsOf(c_)));
  result_.before = before.accuracy;
  state_.before_count = before.accuracy.count();
  state_.before_top1 = before.accuracy.top1_hits();
  state_.before_top5 = before.accuracy.top5_hits();
  GetLogger("retrain")->info("{}: Base (before) {}", c_.session.device_id,
                             result_.before.ToString());
  return Status::Ok();
}

// The device runs the starting model in training mode; the run's size follows from its data.
Status RetrainLoop::PrepareDevice() {
  const std::string& device = c_.session.device_id;
  R2F_ASSIGN_OR_RETURN(pb::Ack deployed, server_.deployModel(device, start_model_, false));
  (void)deployed;
  R2F_RETURN_IF_ERROR(server_.setAIoTMode(device, pb::MODE_TRAINING, c_.session.tmr));
  R2F_ASSIGN_OR_RETURN(pb::Ack ack, server_.LastAck(device));
  const uint64_t available = ack.train_samples();
  if (available == 0) {
    return Status::InvalidArgument("device '" + device + "' has no training data");
  }
  // The retrained evaluation comes after every iteration: a size the test split cannot serve is
  // refused now, not after the training (another eval device is checked by its Base, or then).
  if (c_.EvalDevice() == device) {
    R2F_RETURN_IF_ERROR(
        CheckEvalImages(device, c_.eval_images, ack.test_samples(), "test").WithContext(c_.source));
  }
  Result<accel::AcceleratorConfig> geometry = accel::AcceleratorConfigFromProto(ack.accelerator());
  if (!geometry.ok()) return geometry.status().WithContext("device '" + device + "' Ack");
  device_accelerator_ = *geometry;
  // Do no harm holds its validation samples out of the training pool: validation.images, but
  // never more than a fifth of the device's train split. A resumed run keeps what it started
  // with (its checkpoint says), so that it trains and validates on the same samples.
  const int64_t held_out =
      result_.resumed_from >= 0 ? state_.validation_held_out
      : c_.validation.enabled
          ? std::min<int64_t>(c_.validation.images, static_cast<int64_t>(available / 5))
          : 0;
  state_.validation_held_out = held_out;
  validating_ = held_out > 0;
  TrainValidationSplit split = SplitTrainingData(available, held_out, c_.seed);
  validation_ids_ = std::move(split.validation);
  pool_ = std::move(split.training);
  samples_ = c_.samples > 0 ? std::min<uint64_t>(c_.samples, pool_.size()) : pool_.size();
  per_epoch_ = static_cast<int64_t>(samples_ / c_.batch_size);
  if (per_epoch_ == 0) {
    return Status::InvalidArgument("train.samples " + std::to_string(samples_) +
                                   " is smaller than one batch of " +
                                   std::to_string(c_.batch_size));
  }
  total_ = per_epoch_ * c_.epochs;
  if (c_.max_iterations > 0) total_ = std::min(total_, c_.max_iterations);

  if (c_.method == RetrainMethod::kAprm && c_.policy == ThresholdPolicy::kOffline &&
      c_.reference != pb::REFERENCE_LOCAL_EXACT && !state_.increment_layers_decided) {
    R2F_RETURN_IF_ERROR(DecideIncrementLayers());
  }
  result_.increment_layers = state_.increment_layers;
  R2F_ASSIGN_OR_RETURN(mirror_, DeviceMirror::Create(start_model_, device_accelerator_));
  R2F_ASSIGN_OR_RETURN(result_.tmr_overhead, mirror_->TmrOverhead(c_.session.tmr, c_.batch_size));
  server_.TakeRecords(device);  // set-up calls are not iterations
  return Status::Ok();
}

// The offline policy of the paper: one random training input, every layer's similarity
// between the faulty chain and the TMR reference; layers at or above the threshold are sent as
// increments for the whole run.
Status RetrainLoop::DecideIncrementLayers() {
  pb::GetDataRequest probe;
  probe.set_mode(pb::MODE_TRAINING);
  probe.set_split(pb::SPLIT_TRAIN);
  Rng rng(MixKey({c_.seed, 0x0FF1ull}));
  probe.add_sample_ids(pool_[rng.Below(pool_.size())]);
  probe.set_execution_tag(kThresholdProbeTag);
  probe.set_policy(pb::ENCODE_ADAPTIVE);
  probe.set_similarity_threshold(0.0);
  probe.set_reference(c_.reference);
  R2F_ASSIGN_OR_RETURN(pb::DataReply reply, server_.getData(c_.session.device_id, probe));
  std::vector<uint32_t> layers;
  std::string similarities;
  for (const pb::EncodedLayer& l : reply.layers()) {
    if (l.similarity() >= c_.similarity_threshold) layers.push_back(l.node_id());
    similarities += " " + std::to_string(l.node_id()) + ":" +
                    std::to_string(static_cast<int>(100 * l.similarity() + 0.5)) + "%";
  }
  GetLogger("retrain")->info(
      "{}: offline threshold {:.0f}%: {} of {} layers as increments; similarity{}",
      c_.session.device_id, 100 * c_.similarity_threshold, layers.size(), reply.layers_size(),
      similarities);
  state_.increment_layers = std::move(layers);
  state_.increment_layers_decided = true;
  return Status::Ok();
}

pb::GetDataRequest RetrainLoop::IterationRequest(int64_t it) {
  const int epoch = static_cast<int>(it / per_epoch_);
  if (epoch != order_epoch_) {
    order_ = SeededPermutation(samples_, MixKey({c_.seed, static_cast<uint64_t>(epoch)}));
    order_epoch_ = epoch;
  }
  pb::GetDataRequest req;
  req.set_mode(pb::MODE_TRAINING);
  req.set_split(pb::SPLIT_TRAIN);
  const int64_t first = (it % per_epoch_) * c_.batch_size;
  for (int i = 0; i < c_.batch_size; ++i) req.add_sample_ids(pool_[order_[first + i]]);
  req.set_execution_tag(1 + static_cast<uint64_t>(it));
  req.set_policy(PolicyOf(c_));
  req.set_similarity_threshold(c_.similarity_threshold);
  for (uint32_t id : state_.increment_layers) req.add_increment_layers(id);
  req.set_lz4_raw(c_.lz4_raw);
  req.set_reference(c_.reference);
  req.set_verify_rebuild(c_.verify_rebuild);
  return req;
}

bool RetrainLoop::ValidatesAfter(int64_t it) const {
  return validating_ && ((it + 1) % c_.validation.every == 0 || it + 1 == total_);
}

Status RetrainLoop::RunIteration(int64_t it) {
  const auto start = Clock::now();
  const std::string& device = c_.session.device_id;
  IterationTiming t;
  t.iteration = it;
  pb::DataReply reply;
  if (prefetched_) {  // asked for behind the previous deploy (run.pipeline)
    reply = std::move(*prefetched_);
    prefetched_.reset();
    ++state_.prefetched;
  } else {
    R2F_ASSIGN_OR_RETURN(reply, server_.getData(device, IterationRequest(it)));
  }
  // A device that predates the layer-local reference ignores the field and runs the chain;
  // the reconstruction would still be right, but the run would not be what was asked for.
  if (c_.method == RetrainMethod::kAprm && reply.reference() != c_.reference) {
    return Status::InvalidArgument(
        "retrain: device " + device + " ran the " + ReferenceName(reply.reference()) +
        " reference, the run asks for " + ReferenceName(c_.reference) +
        " (a device built before method.reference: " + ReferenceName(c_.reference) + " existed?)");
  }
  const double clock_hz = reply.clock_mhz() * 1e6;
  t.modelled(Stage::kFp) = clock_hz > 0 ? reply.fp_cycles() / clock_hz : 0;
  t.measured(Stage::kFp) = reply.fp_wall_seconds();
  t.modelled(Stage::kTmr) = clock_hz > 0 ? reply.tmr_cycles() / clock_hz : 0;
  t.modelled(Stage::kIncrement) = t.measured(Stage::kIncrement) = reply.increment_seconds();
  t.modelled(Stage::kCodec) = t.measured(Stage::kCodec) = reply.codec_seconds();

  // Decompression on the server: the clean recompute and the decoding.
  R2F_ASSIGN_OR_RETURN(Reconstruction recon, ReconstructLayers(reply, mirror_->model(), [this] {
                         return mirror_->Clean();
                       }));
  const double server_codec = recon.recompute_seconds + recon.decode_seconds;
  t.modelled(Stage::kCodec) += server_codec;
  t.measured(Stage::kCodec) += server_codec;

  pb::QuantizedModel next;
  HilStepResult step;
  {
    ScopedStageTimer bp(&t, Stage::kBp, ScopedStageTimer::Target::kMeasuredAndModelled);
    R2F_ASSIGN_OR_RETURN(step, trainer_->Step(reply.inputs(), reply.labels(), recon.layers));
    R2F_ASSIGN_OR_RETURN(next, trainer_->Export(mirror_->model().model_version() + 1));
  }
  R2F_RETURN_IF_ERROR(DeployAndPrefetch(it, next));
  std::map<std::string, double> extra;
  AddCallRecords(&t, &extra);
  R2F_RETURN_IF_ERROR(mirror_->Set(std::move(next)));
  CountRebuild(reply, recon.mismatched_layers);
  // The iteration's wall time (validation excluded: it has its own line), to set against
  // FP + BP + codec: what the framework adds.
  extra["wall_s"] = std::chrono::duration<double>(Clock::now() - start).count();
  extra.insert({{"loss", step.loss},
                {"batch_top1", double(step.top1_hits) / step.samples},
                {"increment_layers", double(recon.increment_layers)},
                {"model_version", double(mirror_->model().model_version())}});
  if (reply.reference() == pb::REFERENCE_LOCAL_EXACT) {
    extra["patched_elements"] = double(reply.patched_elements());
    extra["disagreeing_layers"] = double(reply.disagreeing_layers());
  }
  if (c_.verify_rebuild) extra["mismatched_layers"] = recon.mismatched_layers;
  if (ValidatesAfter(it)) {
    R2F_RETURN_IF_ERROR(Validate(it, &t));
    extra["validation_top1"] = keeper_.last_top1();
  }
  t.validation_modelled_s += pending_validation_s_[0];
  t.validation_measured_s += pending_validation_s_[1];
  t.validations += pending_validations_;
  pending_validation_s_[0] = pending_validation_s_[1] = 0;
  pending_validations_ = 0;
  result_.timing.Add(t);
  R2F_RETURN_IF_ERROR(dir_.AppendStage(t, extra));

  loss_avg_ = loss_avg_ < 0 ? step.loss : 0.95 * loss_avg_ + 0.05 * step.loss;
  hits_ += step.top1_hits;
  seen_ += step.samples;
  state_.last_iteration = it;
  state_.model_version = mirror_->model().model_version();
  R2F_RETURN_IF_ERROR(Checkpoint(it));
  ReportProgress(it, static_cast<double>(t.uplink_bytes));
  return Status::Ok();
}

// The exact method's counters (and the checksums' verdict), per run.
void RetrainLoop::CountRebuild(const pb::DataReply& reply, int mismatched_layers) {
  state_.patched_elements += static_cast<int64_t>(reply.patched_elements());
  state_.disagreeing_layers += reply.disagreeing_layers();
  state_.mismatched_layers += mismatched_layers;
  if (mismatched_layers > 0) {
    GetLogger("retrain")->debug("{}: {} layers of the rebuild differ from the device's outputs",
                                c_.session.device_id, mismatched_layers);
  }
}

// Base's validation, once per run (a resumed run has it in its checkpoint). The device runs
// the starting model already (PrepareDevice).
Status RetrainLoop::ValidateBase() {
  if (!validating_ || keeper_.has_base()) return Status::Ok();
  IterationTiming t;
  R2F_RETURN_IF_ERROR(Validate(-1, &t));
  pending_validation_s_[0] = t.validation_modelled_s;
  pending_validation_s_[1] = t.validation_measured_s;
  pending_validations_ = t.validations;
  return Status::Ok();
}

Status RetrainLoop::Validate(int64_t it, IterationTiming* t) {
  const std::string& device = c_.session.device_id;
  EvalSettings e;
  e.split = pb::SPLIT_TRAIN;
  e.sample_ids.assign(validation_ids_.begin(), validation_ids_.end());
  e.batch_size = c_.validation.batch_size;
  e.execution_tag = kValidationTag;
  e.tmr = c_.session.tmr;
  e.deploy = false;  // the device runs mirror_->model() (or, for Base, the starting model)
  const pb::QuantizedModel& model = it < 0 ? start_model_ : mirror_->model();
  R2F_ASSIGN_OR_RETURN(RemoteEvalResult r, RunRemoteEval(server_, device, model, e));
  const int64_t hits = r.accuracy.top1_hits();
  t->validation_modelled_s += r.accel_seconds + r.modelled_uplink_s + r.modelled_downlink_s;
  t->validation_measured_s += r.wall_seconds;
  ++t->validations;
  if (it < 0) {
    keeper_.SetBase(hits, r.accuracy.count());
  } else if (keeper_.Offer(it, hits)) {
    kept_model_ = mirror_->model();
    kept_dirty_ = true;
  }
  GetLogger("retrain")->info(
      "{}: validation {}: top-1 {:.2f}% of {} (kept: {})", device,
      it < 0 ? std::string("of Base") : "after iteration " + std::to_string(it),
      100.0 * hits / r.accuracy.count(), r.accuracy.count(),
      keeper_.kept().iteration < 0 ? std::string("Base")
                                   : "iteration " + std::to_string(keeper_.kept().iteration));
  if (it + 1 == total_) return Status::Ok();
  // Back to training; the mode switch is part of the validation's cost.
  const auto start = Clock::now();
  R2F_RETURN_IF_ERROR(server_.setAIoTMode(device, pb::MODE_TRAINING, c_.session.tmr));
  t->validation_measured_s += std::chrono::duration<double>(Clock::now() - start).count();
  for (const CallRecord& rec : server_.TakeRecords(device)) {
    t->validation_modelled_s += rec.modelled_uplink_s + rec.modelled_downlink_s;
  }
  return Status::Ok();
}

// The next getData goes right behind the deploy unless the run ends or validates first (the
// validation runs on the device between the two).
Status RetrainLoop::DeployAndPrefetch(int64_t it, const pb::QuantizedModel& next) {
  const std::string& device = c_.session.device_id;
  if (!c_.pipeline || it + 1 >= total_ || ValidatesAfter(it)) {
    return server_.deployModel(device, next, c_.session.deploy_as_delta).status();
  }
  // The calls so far are this iteration's; the getData calls from here on the next one's.
  for (CallRecord& r : server_.TakeRecords(device)) call_records_.push_back(std::move(r));
  R2F_ASSIGN_OR_RETURN(R2fServer::DeployedData both,
                       server_.deployModelThenGetData(device, next, c_.session.deploy_as_delta,
                                                      IterationRequest(it + 1)));
  for (CallRecord& r : server_.TakeRecords(device)) {
    (r.kind == pb::MSG_GET_DATA ? next_records_ : call_records_).push_back(std::move(r));
  }
  // Without data from the new model the next iteration asks for it itself.
  prefetched_ = std::move(both.data);
  state_.overtaken += !prefetched_.has_value();
  return Status::Ok();
}

// The calls of this iteration: bytes and modelled link times, and per call kind the device's
// handler time, the request's wait on the device and the rest of the call's wall time (the
// transport's) as extra fields.
void RetrainLoop::AddCallRecords(IterationTiming* t, std::map<std::string, double>* extra) {
  std::vector<CallRecord> records = std::move(call_records_);
  call_records_ = std::move(next_records_);  // a prefetched getData: the next iteration's
  next_records_.clear();
  for (CallRecord& r : server_.TakeRecords(c_.session.device_id)) records.push_back(std::move(r));
  for (const CallRecord& r : records) {
    t->uplink_bytes += r.uplink_bytes;
    t->downlink_bytes += r.downlink_bytes;
    t->modelled(Stage::kUplink) += r.modelled_uplink_s;
    t->modelled(Stage::kDownlink) += r.modelled_downlink_s;
    // A call's wall time covers both directions; it is logged with the direction that carries
    // its payload (the data reply up, the model down). A getData's wait behind a deploy on the
    // device is the deploy's time, counted with the deploy's call.
    t->measured(r.kind == pb::MSG_GET_DATA ? Stage::kUplink : Stage::kDownlink) +=
        r.measured_s - r.device_queue_s;
    const std::string call = r.kind == pb::MSG_GET_DATA       ? "getdata"
                             : r.kind == pb::MSG_DEPLOY_MODEL ? "deploy"
                                                              : "other";
    (*extra)[call + "_device_s"] += r.device_s;
    (*extra)[call + "_transport_s"] += r.measured_s - r.device_s - r.device_queue_s;
    // A getData sent behind a deploy (run.pipeline) waits on the device while it deploys.
    if (r.kind == pb::MSG_GET_DATA) (*extra)["getdata_queued_s"] += r.device_queue_s;
  }
}

Status RetrainLoop::Checkpoint(int64_t it) {
  const bool last = it + 1 == total_;
  if (!last && !(c_.checkpoint_every > 0 && (it + 1) % c_.checkpoint_every == 0)) {
    return Status::Ok();
  }
  R2F_RETURN_IF_ERROR(trainer_->Save(dir_.trainer_prefix(state_.model_version)));
  state_.validation_count = keeper_.count();
  state_.validated_iterations.clear();
  state_.validated_hits.clear();
  for (const BestModelKeeper::Point& p : keeper_.history()) {
    state_.validated_iterations.push_back(p.iteration);
    state_.validated_hits.push_back(p.hits);
  }
  state_.kept_iteration = keeper_.kept().iteration;
  state_.kept_hits = keeper_.kept().hits;
  state_.kept_model_version = keeper_.kept().iteration >= 0 ? kept_model_.model_version() : 0;
  R2F_RETURN_IF_ERROR(
      dir_.SaveCheckpoint(state_, mirror_->model(), kept_dirty_ ? &kept_model_ : nullptr));
  kept_dirty_ = false;
  return Status::Ok();
}

void RetrainLoop::ReportProgress(int64_t it, double uplink_bytes) {
  if (!progress_) return;
  RetrainProgress p;
  p.device = c_.session.device_id;
  p.done = it + 1;
  p.total = total_;
  p.first = result_.resumed_from + 1;
  p.loss = loss_avg_;
  p.hits = hits_;
  p.seen = seen_;
  p.uplink_mb = uplink_bytes / 1e6;
  p.elapsed_s = std::chrono::duration<double>(Clock::now() - started_).count();
  p.finished = it + 1 == total_;
  progress_(p);
}

// The final model, the retrained accuracy on the same faulty device and the same fault pattern
// as Base, and summary.json. With do no harm the final model is the kept one; the last
// iteration's model is then evaluated too (accuracy_last), before the kept one is deployed.
Status RetrainLoop::Finish() {
  const pb::QuantizedModel& last = mirror_->model();
  result_.iterations = total_;
  result_.final_model_path = dir_.final_model_path();
  const auto log = GetLogger("retrain");
  pb::QuantizedModel final_model = last;
  if (validating_ && keeper_.kept().iteration != total_ - 1) {
    R2F_RETURN_IF_ERROR(dir_.WriteLastModel(last));
    R2F_ASSIGN_OR_RETURN(RemoteEvalResult r,
                         RunRemoteEval(server_, c_.EvalDevice(), last, EvalSettingsOf(c_)));
    result_.after_last = r.accuracy;
    log->info("{}: last iteration's model {}", c_.session.device_id, r.accuracy.ToString());
    if (keeper_.kept().iteration < 0) {
      R2F_ASSIGN_OR_RETURN(final_model, LoadSessionModel(c_.session));
    } else {
      final_model = kept_model_;
    }
  }
  if (state_.overtaken > 0) {
    log->info(
        "{}: {} getData requests sent behind a deploy were not answered by its model (it "
        "was resent or refused first, or the request failed) and were asked again",
        c_.session.device_id, state_.overtaken);
  }
  result_.prefetched = state_.prefetched;
  result_.overtaken = state_.overtaken;
  if (validating_) {
    result_.validation = keeper_;
    log->info("{}: do no harm: {}", c_.session.device_id, keeper_.Reason());
  }
  result_.final_model_version = final_model.model_version();
  R2F_RETURN_IF_ERROR(dir_.WriteFinalModel(final_model));
  R2F_ASSIGN_OR_RETURN(RemoteEvalResult after,
                       RunRemoteEval(server_, c_.EvalDevice(), final_model, EvalSettingsOf(c_)));
  result_.after = after.accuracy;
  log->info("{}: retrained (after) {}", c_.session.device_id, result_.after.ToString());
  result_.rebuild.patched_elements = state_.patched_elements;
  result_.rebuild.disagreeing_layers = state_.disagreeing_layers;
  result_.rebuild.mismatched_layers = state_.mismatched_layers;
  return dir_.WriteSummary(RetrainSummaryJson(c_, result_));
}

}  // namespace r2f
