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
  if (!resume) return dir_.StartFresh();

  R2F_ASSIGN_OR_RETURN(state_, dir_.Resume(&start_model_));
  R2F_RETURN_IF_ERROR(trainer_->Load(dir_.trainer_prefix()));
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
  samples_ = c_.samples > 0 ? std::min<uint64_t>(c_.samples, available) : available;
  per_epoch_ = static_cast<int64_t>(samples_ / c_.batch_size);
  if (per_epoch_ == 0) {
    return Status::InvalidArgument("train.samples " + std::to_string(samples_) +
                                   " is smaller than one batch of " +
                                   std::to_string(c_.batch_size));
  }
  total_ = per_epoch_ * c_.epochs;
  if (c_.max_iterations > 0) total_ = std::min(total_, c_.max_iterations);

  if (c_.method == RetrainMethod::kAprm && c_.policy == ThresholdPolicy::kOffline &&
      !state_.increment_layers_decided) {
    R2F_RETURN_IF_ERROR(DecideIncrementLayers(available));
  }
  result_.increment_layers = state_.increment_layers;
  R2F_ASSIGN_OR_RETURN(mirror_, DeviceMirror::Create(start_model_, accel::AcceleratorConfig{}));
  R2F_ASSIGN_OR_RETURN(result_.tmr_overhead, mirror_->TmrOverhead(c_.session.tmr, c_.batch_size));
  server_.TakeRecords(device);  // set-up calls are not iterations
  return Status::Ok();
}

// The offline policy of the paper: one random training input, every layer's similarity
// between the faulty chain and the TMR reference; layers at or above the threshold are sent as
// increments for the whole run.
Status RetrainLoop::DecideIncrementLayers(uint64_t train_samples) {
  pb::GetDataRequest probe;
  probe.set_mode(pb::MODE_TRAINING);
  probe.set_split(pb::SPLIT_TRAIN);
  Rng rng(MixKey({c_.seed, 0x0FF1ull}));
  probe.add_sample_ids(rng.Below(train_samples));
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
  for (int i = 0; i < c_.batch_size; ++i) req.add_sample_ids(order_[first + i]);
  req.set_execution_tag(1 + static_cast<uint64_t>(it));
  req.set_policy(PolicyOf(c_));
  req.set_similarity_threshold(c_.similarity_threshold);
  for (uint32_t id : state_.increment_layers) req.add_increment_layers(id);
  req.set_lz4_raw(c_.lz4_raw);
  req.set_reference(c_.reference);
  return req;
}

Status RetrainLoop::RunIteration(int64_t it) {
  const std::string& device = c_.session.device_id;
  IterationTiming t;
  t.iteration = it;
  R2F_ASSIGN_OR_RETURN(pb::DataReply reply, server_.getData(device, IterationRequest(it)));
  // A device that predates the layer-local reference ignores the field and runs the chain;
  // the reconstruction would still be right, but the run would not be what was asked for.
  if (c_.method == RetrainMethod::kAprm && reply.reference() != c_.reference) {
    return Status::InvalidArgument("retrain: device " + device + " ran the " +
                                   ReferenceName(reply.reference()) +
                                   " reference, the run asks for " + ReferenceName(c_.reference) +
                                   " (a device without support for method.reference: local?)");
  }
  const double clock_hz = reply.clock_mhz() * 1e6;
  t.modelled(Stage::kFp) = clock_hz > 0 ? reply.fp_cycles() / clock_hz : 0;
  t.measured(Stage::kFp) = reply.fp_wall_seconds();
  t.modelled(Stage::kTmr) = clock_hz > 0 ? reply.tmr_cycles() / clock_hz : 0;
  t.modelled(Stage::kIncrement) = t.measured(Stage::kIncrement) = reply.increment_seconds();
  t.modelled(Stage::kCodec) = t.measured(Stage::kCodec) = reply.codec_seconds();

  // Decompression on the server: the clean recompute and the decoding.
  R2F_ASSIGN_OR_RETURN(Reconstruction recon, ReconstructLayers(reply, mirror_->clean()));
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
  R2F_ASSIGN_OR_RETURN(pb::Ack ack, server_.deployModel(device, next, c_.session.deploy_as_delta));
  (void)ack;
  AddCallRecords(&t);
  R2F_RETURN_IF_ERROR(mirror_->Set(std::move(next)));
  result_.timing.Add(t);
  R2F_RETURN_IF_ERROR(
      dir_.AppendStage(t, {{"loss", step.loss},
                           {"batch_top1", double(step.top1_hits) / step.samples},
                           {"increment_layers", double(recon.increment_layers)},
                           {"model_version", double(mirror_->model().model_version())}}));

  loss_avg_ = loss_avg_ < 0 ? step.loss : 0.95 * loss_avg_ + 0.05 * step.loss;
  hits_ += step.top1_hits;
  seen_ += step.samples;
  state_.last_iteration = it;
  state_.model_version = mirror_->model().model_version();
  R2F_RETURN_IF_ERROR(Checkpoint(it));
  ReportProgress(it, static_cast<double>(t.uplink_bytes));
  return Status::Ok();
}

// The calls of this iteration: bytes and modelled link times.
void RetrainLoop::AddCallRecords(IterationTiming* t) {
  for (const CallRecord& r : server_.TakeRecords(c_.session.device_id)) {
    t->uplink_bytes += r.uplink_bytes;
    t->downlink_bytes += r.downlink_bytes;
    t->modelled(Stage::kUplink) += r.modelled_uplink_s;
    t->modelled(Stage::kDownlink) += r.modelled_downlink_s;
    // A call's wall time covers both directions; it is logged with the direction that carries
    // its payload (the data reply up, the model down).
    t->measured(r.kind == pb::MSG_GET_DATA ? Stage::kUplink : Stage::kDownlink) += r.measured_s;
  }
}

Status RetrainLoop::Checkpoint(int64_t it) {
  const bool last = it + 1 == total_;
  if (!last && !(c_.checkpoint_every > 0 && (it + 1) % c_.checkpoint_every == 0)) {
    return Status::Ok();
  }
  R2F_RETURN_IF_ERROR(trainer_->Save(dir_.trainer_prefix()));
  return dir_.SaveCheckpoint(state_, mirror_->model());
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
// as Base, and summary.json.
Status RetrainLoop::Finish() {
  const pb::QuantizedModel& model = mirror_->model();
  result_.iterations = total_;
  result_.final_model_version = model.model_version();
  result_.final_model_path = dir_.final_model_path();
  R2F_RETURN_IF_ERROR(dir_.WriteFinalModel(model));
  R2F_ASSIGN_OR_RETURN(RemoteEvalResult after,
                       RunRemoteEval(server_, c_.EvalDevice(), model, EvalSettingsOf(c_)));
  result_.after = after.accuracy;
  GetLogger("retrain")->info("{}: retrained (after) {}", c_.session.device_id,
                             result_.after.ToString());
  return dir_.WriteSummary(RetrainSummaryJson(c_, result_));
}

}  // namespace r2f
