#include "client/device_service.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <future>
#include <set>
#include <thread>

#include "client/layer_encoder.h"
#include "client/r2f_client_api.h"
#include "common/base/logging.h"
#include "common/codec/increment_codec.h"
#include "common/codec/weight_delta.h"

namespace r2f {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

const char* ModeName(pb::AIoTMode mode) {
  return mode == pb::MODE_TRAINING ? "training" : "inference";
}

accel::TmrConfig TmrFromProto(const pb::SetAIoTModeRequest& mode) {
  accel::TmrConfig tmr;
  tmr.mode = accel::TmrModeFromProto(mode.tmr());
  tmr.protected_layers.assign(mode.protected_layers().begin(), mode.protected_layers().end());
  return tmr;
}

bool IsMacLayerOf(const accel::Accelerator& accelerator, uint32_t node_id) {
  const auto& ids = accelerator.mac_layers();
  return std::find(ids.begin(), ids.end(), node_id) != ids.end();
}

std::string ImageShape(uint32_t c, uint32_t h, uint32_t w) {
  return std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w);
}

const int8_t* Int8(const std::vector<int8_t>& v) { return v.data(); }

std::string Bytes(const std::vector<int8_t>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size());
}

// Fills the per-MAC-layer reports shared by inference and training replies.
void AddReports(const accel::RunStats& stats, pb::DataReply* reply) {
  for (size_t l = 0; l < stats.faults.size(); ++l) {
    pb::LayerReport* r = reply->add_reports();
    const accel::LayerFaultStats& f = stats.faults[l];
    r->set_node_id(f.node_id);
    for (int s = 0; s < accel::kNumFaultSites; ++s) {
      r->add_exposed_bits(f.exposed_bits[s]);
      r->add_flips(f.flips[s]);
    }
    if (l < stats.cycles.size()) {
      const accel::LayerCycles& c = stats.cycles[l];
      r->set_cycles((c.compute_cycles + c.stall_cycles) * c.executions);
      r->set_executions(c.executions);
    }
  }
  reply->set_fp_cycles(stats.total_cycles);
}

template <typename Proto>
Result<Proto> ParsePayload(const Message& request, const char* type) {
  Proto proto;
  if (!proto.ParseFromString(request.payload)) {
    return Status::InvalidArgument(KindName(request.kind) + " payload of " +
                                   std::to_string(request.payload.size()) +
                                   " bytes is not a valid " + type + " protobuf");
  }
  return proto;
}

}  // namespace

DeviceService::DeviceService(DeviceServiceOptions options, Dataset train, Dataset test)
    : options_(std::move(options)),
      train_(std::move(train)),
      test_(std::move(test)),
      store_(options_.state_dir) {}

Result<std::unique_ptr<DeviceService>> DeviceService::Create(DeviceServiceOptions options,
                                                             Dataset train, Dataset test) {
  if (options.max_samples_per_request == 0) {
    return Status::InvalidArgument("max_samples_per_request must be >= 1");
  }
  if (!(options.faults.ber >= 0.0 && options.faults.ber <= 1.0)) {
    return Status::InvalidArgument("fault.ber must be in [0, 1]");
  }
  std::unique_ptr<DeviceService> service(
      new DeviceService(std::move(options), std::move(train), std::move(test)));
  service->Restore();
  return service;
}

void DeviceService::Restore() {
  auto log = GetLogger("device");
  int replayed = 0;
  auto model = store_.LoadModel(options_.max_model_bytes, &replayed);
  if (model.ok()) {
    auto accelerator = Instantiate(*model);
    if (accelerator.ok()) {
      accelerator_ = std::move(accelerator).value();
      log->info("restored model version {} from {} and {} journalled delta(s)",
                model->model_version(), store_.model_path(), replayed);
    } else {
      log->error("ignoring saved model {}: {}; waiting for a deployModel", store_.model_path(),
                 accelerator.status().ToString());
    }
  } else if (model.status().code() != Status::Code::kNotFound) {
    log->error("ignoring saved model: {}; waiting for a deployModel", model.status().ToString());
  }
  auto mode = store_.LoadMode();
  if (mode.ok()) {
    mode_ = *mode;
    if (Status st = CheckProtection(mode_); !st.ok()) {
      log->error("ignoring saved mode {}: {}", store_.mode_path(), st.ToString());
      mode_ = pb::SetAIoTModeRequest();
    }
  } else if (mode.status().code() != Status::Code::kNotFound) {
    log->error("ignoring saved mode: {}", mode.status().ToString());
  }
  tmr_ = TmrFromProto(mode_);
}

uint64_t DeviceService::model_version() const {
  return accelerator_ ? accelerator_->model().model_version() : 0;
}

Result<std::unique_ptr<accel::Accelerator>> DeviceService::Instantiate(
    pb::QuantizedModel model) const {
  const std::string what = "model version " + std::to_string(model.model_version());
  R2F_RETURN_IF_ERROR(CheckVersion(model));
  // Built from the running model's prepared layers where they fit: a retrained model differs
  // from it in ~1% of its weights.
  auto accelerator =
      accel::Accelerator::Create(std::move(model), options_.accelerator, accelerator_.get());
  if (!accelerator.ok()) return accelerator.status().WithContext(what + " rejected");
  R2F_RETURN_IF_ERROR(CheckFitsData((*accelerator)->model()));
  return accelerator;
}

Status DeviceService::CheckVersion(const pb::QuantizedModel& model) {
  if (model.model_version() != 0) return Status::Ok();
  return Status::InvalidArgument("model version 0: model_version must be >= 1 (0 means no model)");
}

Status DeviceService::CheckFitsData(const pb::QuantizedModel& model) const {
  const pb::Shape& in = model.graph().input_shape();
  for (const Dataset* data : {&train_, &test_}) {
    if (data->size() == 0) continue;
    if (in.dims_size() != 3 || in.dims(0) != data->channels || in.dims(1) != data->height ||
        in.dims(2) != data->width) {
      return Status::InvalidArgument(
          "model version " + std::to_string(model.model_version()) +
          " rejected: it expects images of " +
          (in.dims_size() == 3 ? ImageShape(in.dims(0), in.dims(1), in.dims(2)) : "another shape") +
          ", the device's data set '" + data->name + "' has " +
          ImageShape(data->channels, data->height, data->width));
    }
    // Fewer classes than labels: the server would score a label that no logit stands for.
    if (model.graph().num_classes() < data->num_classes) {
      return Status::InvalidArgument(
          "model version " + std::to_string(model.model_version()) + " rejected: it has " +
          std::to_string(model.graph().num_classes()) + " classes, the device's data set '" +
          data->name + "' has " + std::to_string(data->num_classes));
    }
  }
  return Status::Ok();
}

Status DeviceService::CheckProtection(const pb::SetAIoTModeRequest& request) const {
  if (!pb::AIoTMode_IsValid(request.mode())) {
    return Status::InvalidArgument("unknown AIoT mode " + std::to_string(request.mode()));
  }
  if (!pb::TmrModeProto_IsValid(request.tmr())) {
    return Status::InvalidArgument("unknown TMR mode " + std::to_string(request.tmr()));
  }
  if (request.tmr() != pb::TMR_PARTIAL) {
    if (request.protected_layers_size() > 0) {
      return Status::InvalidArgument(
          "protected_layers are only for TMR partial, the request asks for TMR " +
          std::string(accel::TmrModeName(accel::TmrModeFromProto(request.tmr()))));
    }
    return Status::Ok();
  }
  if (!accelerator_) {
    return Status::InvalidArgument(
        "TMR partial needs a deployed model to check the protected layers against; call "
        "deployModel first");
  }
  std::set<uint32_t> seen;
  for (uint32_t id : request.protected_layers()) {
    if (!IsMacLayerOf(*accelerator_, id)) {
      return Status::InvalidArgument("protected layer " + std::to_string(id) +
                                     " is not a MAC layer of the deployed model version " +
                                     std::to_string(model_version()));
    }
    if (!seen.insert(id).second) {
      return Status::InvalidArgument("protected layer " + std::to_string(id) + " is listed twice");
    }
  }
  return Status::Ok();
}

pb::Ack DeviceService::MakeAck(pb::MessageKind kind, std::string detail) const {
  pb::Ack ack;
  ack.set_request_kind(kind);
  ack.set_model_version(model_version());
  ack.set_mode(mode_.mode());
  ack.set_tmr(mode_.tmr());
  *ack.mutable_protected_layers() = mode_.protected_layers();
  ack.set_detail(std::move(detail));
  ack.set_requests_handled(requests_handled_);
  ack.set_train_samples(train_.size());
  ack.set_test_samples(test_.size());
  *ack.mutable_lease() = lease_.State();
  *ack.mutable_accelerator() = accel::AcceleratorGeometryToProto(options_.accelerator);
  return ack;
}

pb::Ack DeviceService::Lease(const pb::LeaseRequest& request) {
  std::string event;
  pb::LeaseState state = lease_.Handle(request, &event);
  if (!event.empty()) GetLogger("device")->info("{}", event);
  pb::Ack ack =
      MakeAck(pb::MSG_LEASE, state.granted() ? "lease granted" : "lease held by " + state.holder());
  *ack.mutable_lease() = state;
  return ack;
}

Result<pb::Ack> DeviceService::SetAIoTMode(const pb::SetAIoTModeRequest& request) {
  ++requests_handled_;
  R2F_RETURN_IF_ERROR(CheckProtection(request));
  R2F_RETURN_IF_ERROR(store_.SaveMode(request));
  mode_ = request;
  tmr_ = TmrFromProto(mode_);
  std::string detail =
      std::string(ModeName(mode_.mode())) + " mode, TMR " + accel::TmrModeName(tmr_.mode);
  if (mode_.tmr() == pb::TMR_PARTIAL) {
    detail += " on " + std::to_string(mode_.protected_layers_size()) + " layer(s)";
  }
  return MakeAck(pb::MSG_SET_AIOT_MODE, detail);
}

Status DeviceService::Install(std::unique_ptr<accel::Accelerator> accelerator, std::string* detail,
                              bool saved, std::unique_ptr<accel::Accelerator>* replaced) {
  // Durable before the Ack: a device killed right after it restarts with this model.
  if (!saved) R2F_RETURN_IF_ERROR(store_.SaveModel(accelerator->model()));
  if (accelerator_) accelerator->AdoptBuffers(*accelerator_);
  std::swap(accelerator_, accelerator);
  if (replaced != nullptr) *replaced = std::move(accelerator);
  if (mode_.tmr() == pb::TMR_PARTIAL && !CheckProtection(mode_).ok()) {
    // The protection set was chosen for the previous graph; running the new one half-protected
    // by layer ids that now mean something else would be wrong.
    pb::SetAIoTModeRequest fallback;
    fallback.set_mode(mode_.mode());
    // In memory first: the new model runs from here on, whatever happens to the file (an error
    // now would leave it running under the stale set, and the retry finds it deployed).
    mode_ = fallback;
    tmr_ = TmrFromProto(mode_);
    *detail += "; the protected layers are not all MAC layers of the new model, TMR is now none";
    if (Status st = store_.SaveMode(fallback); !st.ok()) {
      // A restart checks the saved mode against the model (Restore) and drops it then.
      GetLogger("device")->error("saving the mode after falling back to TMR none: {}",
                                 st.ToString());
    }
  }
  return Status::Ok();
}

Result<pb::Ack> DeviceService::DeployModel(const pb::DeployModelRequest& request) {
  R2F_ASSIGN_OR_RETURN(pb::Ack ack, StartDeploy(request));
  R2F_RETURN_IF_ERROR(FinishPendingSave());
  return ack;
}

Status DeviceService::FinishPendingSave() {
  if (!pending_save_) return Status::Ok();
  const std::shared_ptr<PendingSave> save = pending_save_;  // FinishSave resets pending_save_
  return FinishSave(*save);
}

Status DeviceService::FinishSave(PendingSave& save) {
  if (save.finished) return save.outcome;
  if (pending_save_.get() == &save) pending_save_.reset();
  Status saved;
  try {
    saved = save.append.get();
    if (!saved.ok()) {
      // The journal is as it was before (AppendDelta cuts a failed record off): start over
      // from the whole model.
      saved = store_.SaveModel(accelerator_->model()).WithContext(saved.message());
    }
  } catch (const std::exception& e) {  // out of memory: not saved
    saved = Status::Internal(std::string("saving the model: ") + e.what());
  }
  if (!saved.ok() && save.previous) {
    // What a restart would load and what runs must agree: back to the acknowledged model.
    const uint64_t unsaved = model_version();
    save.previous->AdoptBuffers(*accelerator_);
    accelerator_ = std::move(save.previous);
    saved = saved.WithContext("model version " + std::to_string(unsaved) +
                              " could not be saved; the device runs version " +
                              std::to_string(model_version()) + " again");
    GetLogger("device")->error("deployModel: {}", saved.ToString());
  }
  save.previous.reset();
  save.outcome = saved;
  save.finished = true;
  return saved;
}

Result<pb::Ack> DeviceService::StartDeploy(const pb::DeployModelRequest& request) {
  (void)FinishPendingSave();  // an earlier deploy's (its own reply reports a failure)
  ++requests_handled_;
  using google::protobuf::util::MessageDifferencer;
  std::string detail;
  if (request.has_model()) {
    const pb::QuantizedModel& model = request.model();
    const uint64_t bytes = model.ByteSizeLong();
    if (bytes > options_.max_model_bytes) {
      return Status::InvalidArgument(
          "model of " + std::to_string(bytes) +
          " bytes exceeds limits.max_model_bytes = " + std::to_string(options_.max_model_bytes));
    }
    if (accelerator_ && model.model_version() == model_version() &&
        MessageDifferencer::Equals(model, accelerator_->model())) {
      return MakeAck(pb::MSG_DEPLOY_MODEL, "model version " + std::to_string(model_version()) +
                                               " already deployed; nothing changed");
    }
    R2F_ASSIGN_OR_RETURN(std::unique_ptr<accel::Accelerator> accelerator, Instantiate(model));
    detail = "deployed model version " + std::to_string(model.model_version()) + " (" +
             std::to_string(bytes) + " bytes)";
    R2F_RETURN_IF_ERROR(Install(std::move(accelerator), &detail));
    return MakeAck(pb::MSG_DEPLOY_MODEL, detail);
  }
  if (!request.has_delta()) {
    return Status::InvalidArgument("deployModel request carries neither a model nor a delta");
  }
  const pb::WeightDelta& delta = request.delta();
  if (!accelerator_) {
    return Status::InvalidArgument("weight delta against version " +
                                   std::to_string(delta.base_version()) +
                                   ", but no model is deployed (send the whole model)");
  }
  if (delta.new_version() == model_version() &&
      delta.weights_crc32() == WeightsCrc32(accelerator_->model())) {
    return MakeAck(pb::MSG_DEPLOY_MODEL, "model version " + std::to_string(model_version()) +
                                             " already deployed; nothing changed");
  }
  R2F_ASSIGN_OR_RETURN(pb::QuantizedModel model, ApplyWeightDelta(accelerator_->model(), delta));
  detail = "applied weight delta " + std::to_string(delta.base_version()) + " -> " +
           std::to_string(delta.new_version()) + " (" + std::to_string(delta.layers_size()) +
           " layer(s) changed)";
  // Built first (the checks and the kernels: ~0.2 ms from the running model's layers), so that
  // only a model the device can run is ever saved.
  R2F_ASSIGN_OR_RETURN(std::unique_ptr<accel::Accelerator> accelerator,
                       Instantiate(std::move(model)));
  if (!store_.NextDeltaAppends()) {  // every kCompactEvery deltas: the model is saved whole
    R2F_RETURN_IF_ERROR(Install(std::move(accelerator), &detail));
    return MakeAck(pb::MSG_DEPLOY_MODEL, detail);
  }
  // The journal's append waits on the disk (its fdatasync took ~1 ms in the loop benchmark, on a
  // host busy with the server and the broker) while the transport runs the next getData on the
  // new model; the Ack waits for it (PendingSave, Handle).
  // Started before the model is installed: if the thread cannot start, nothing has changed.
  auto save = std::make_shared<PendingSave>();
  save->version = delta.new_version();
  save->append =
      std::async(std::launch::async, [this, record = delta] { return store_.AppendDelta(record); });
  pending_save_ = save;
  R2F_RETURN_IF_ERROR(Install(std::move(accelerator), &detail, /*saved=*/true, &save->previous));
  return MakeAck(pb::MSG_DEPLOY_MODEL, detail);
}

Result<pb::DataReply> DeviceService::GetData(const pb::GetDataRequest& request) {
  ++requests_handled_;
  if (!accelerator_) {
    return Status::NotFound("no model deployed on device '" + options_.device_id +
                            "'; call deployModel first");
  }
  if (!pb::AIoTMode_IsValid(request.mode())) {
    return Status::InvalidArgument("unknown AIoT mode " + std::to_string(request.mode()));
  }
  if (request.mode() != mode_.mode()) {
    return Status::InvalidArgument(std::string("getData asks for ") + ModeName(request.mode()) +
                                   " data, but the device is in " + ModeName(mode_.mode()) +
                                   " mode; call setAIoTMode first");
  }
  if (request.split() != pb::SPLIT_TRAIN && request.split() != pb::SPLIT_TEST) {
    return Status::InvalidArgument("unknown data split " + std::to_string(request.split()));
  }
  const Dataset& data = request.split() == pb::SPLIT_TRAIN ? train_ : test_;
  const uint64_t n = static_cast<uint64_t>(request.sample_ids_size());
  if (n == 0) return Status::InvalidArgument("getData names no samples");
  if (n > options_.max_samples_per_request) {
    return Status::InvalidArgument("getData asks for " + std::to_string(n) +
                                   " samples, the device serves at most " +
                                   std::to_string(options_.max_samples_per_request) +
                                   " per request (limits.max_samples_per_request)");
  }
  for (uint64_t id : request.sample_ids()) {
    if (id >= data.size()) {
      return Status::InvalidArgument(
          "sample id " + std::to_string(id) + " is out of range: the device's " +
          (request.split() == pb::SPLIT_TRAIN ? "train" : "test") + " split '" + data.name +
          "' has " + std::to_string(data.size()) + " samples");
    }
  }
  std::vector<uint8_t> pixels(n * data.image_bytes());
  accel::ImageBatch images;
  images.batch = static_cast<int>(n);
  for (uint64_t b = 0; b < n; ++b) {
    const uint64_t id = request.sample_ids(static_cast<int>(b));
    std::copy(data.image(id), data.image(id) + data.image_bytes(),
              pixels.begin() + b * data.image_bytes());
    images.sample_ids.push_back(id);
  }
  images.pixels = pixels.data();
  R2F_ASSIGN_OR_RETURN(pb::DataReply reply, request.mode() == pb::MODE_TRAINING
                                                ? Training(request, data, images)
                                                : Inference(request, images));
  reply.set_mode(request.mode());
  reply.set_model_version(model_version());
  *reply.mutable_sample_ids() = request.sample_ids();
  std::string labels;
  for (uint64_t id : request.sample_ids()) labels.push_back(static_cast<char>(data.labels[id]));
  reply.set_labels(std::move(labels));
  reply.set_num_classes(accelerator_->model().graph().num_classes());
  reply.set_clock_mhz(options_.accelerator.clock_mhz);
  return reply;
}

Result<pb::DataReply> DeviceService::Inference(const pb::GetDataRequest& request,
                                               const accel::ImageBatch& images) {
  const auto start = Clock::now();
  R2F_ASSIGN_OR_RETURN(accel::InferenceResult run,
                       accelerator_->Infer(images, options_.faults, tmr_, request.execution_tag(),
                                           request.layer_similarity()));
  pb::DataReply reply;
  reply.set_logits(Bytes(run.logits.data));
  reply.set_logits_frac(run.logits.frac);
  AddReports(run.stats, &reply);
  if (request.layer_similarity()) {
    R2F_ASSIGN_OR_RETURN(accel::InferenceResult clean,
                         accelerator_->Infer(images, accel::FaultConfig{}, accel::TmrConfig{},
                                             request.execution_tag(), true));
    for (size_t l = 0; l < run.layer_outputs.size(); ++l) {
      const auto& faulty = run.layer_outputs[l].data;
      reply.mutable_reports(static_cast<int>(l))
          ->set_similarity_to_clean(
              Similarity(Int8(faulty), Int8(clean.layer_outputs[l].data), faulty.size()));
    }
  }
  reply.set_fp_wall_seconds(SecondsSince(start));
  return reply;
}

Result<pb::DataReply> DeviceService::Training(const pb::GetDataRequest& request,
                                              const Dataset& data,
                                              const accel::ImageBatch& images) {
  const pb::LayerEncodingPolicy policy = request.policy();
  if (!pb::LayerEncodingPolicy_IsValid(policy)) {
    return Status::InvalidArgument("unknown layer encoding policy " + std::to_string(policy));
  }
  const double threshold = request.similarity_threshold();
  if (!(threshold >= 0.0 && threshold <= 1.0)) {
    return Status::InvalidArgument("similarity_threshold must be in [0, 1], got " +
                                   std::to_string(threshold));
  }
  if (policy != pb::ENCODE_OFFLINE && request.increment_layers_size() > 0) {
    return Status::InvalidArgument(
        "increment_layers are only for ENCODE_OFFLINE, the request asks for " +
        pb::LayerEncodingPolicy_Name(policy));
  }
  if (!pb::IncrementReference_IsValid(request.reference())) {
    return Status::InvalidArgument("unknown increment reference " +
                                   std::to_string(request.reference()));
  }
  const accel::TrainingReference reference_kind =
      accel::TrainingReferenceFromProto(request.reference());
  const std::set<uint32_t> increment_layers(request.increment_layers().begin(),
                                            request.increment_layers().end());
  for (uint32_t id : increment_layers) {
    if (!IsMacLayerOf(*accelerator_, id)) {
      return Status::InvalidArgument("increment layer " + std::to_string(id) +
                                     " is not a MAC layer of the deployed model");
    }
  }

  // DRM (RAW) needs no reference chain; run it only when similarities are asked for.
  const bool with_reference = policy != pb::ENCODE_RAW || request.layer_similarity();
  pb::DataReply reply;
  const auto start = Clock::now();
  accel::Int8Tensor logits;
  std::vector<accel::Int8Tensor> faulty, reference;
  std::vector<std::vector<uint8_t>> disagreement;
  if (with_reference) {
    R2F_ASSIGN_OR_RETURN(accel::TrainingResult run,
                         accelerator_->RunTraining(images, options_.faults, tmr_,
                                                   request.execution_tag(), reference_kind));
    logits = std::move(run.logits);
    faulty = std::move(run.faulty);
    reference = std::move(run.reference);
    disagreement = std::move(run.disagreement);
    AddReports(run.faulty_stats, &reply);
    reply.set_tmr_cycles(run.reference_stats.total_cycles);
    reply.set_reference(request.reference());
  } else {
    R2F_ASSIGN_OR_RETURN(
        accel::InferenceResult run,
        accelerator_->Infer(images, options_.faults, tmr_, request.execution_tag(), true));
    logits = std::move(run.logits);
    faulty = std::move(run.layer_outputs);
    AddReports(run.stats, &reply);
  }
  reply.set_fp_wall_seconds(SecondsSince(start));

  const std::vector<uint32_t>& macs = accelerator_->mac_layers();
  std::vector<LayerOutputs> layers(faulty.size());
  for (size_t l = 0; l < faulty.size(); ++l) {
    layers[l].node_id = macs[l];
    layers[l].faulty = &faulty[l].data;
    if (with_reference) layers[l].reference = &reference[l].data;
    if (l < disagreement.size()) layers[l].mask = &disagreement[l];
  }
  LayerEncoder encoder(request, increment_layers);
  R2F_RETURN_IF_ERROR(encoder.EncodeAll(layers, reply.mutable_layers()));
  const double increment_s = encoder.increment_seconds(), codec_s = encoder.codec_seconds();
  reply.set_patched_elements(encoder.patched());
  reply.set_disagreeing_layers(encoder.disagreeing_layers());
  reply.set_increment_seconds(increment_s);
  reply.set_codec_seconds(codec_s);
  reply.set_logits(Bytes(logits.data));
  reply.set_logits_frac(logits.frac);
  reply.set_inputs(std::string(reinterpret_cast<const char*>(images.pixels),
                               static_cast<size_t>(images.batch) * data.image_bytes()));
  return reply;
}

Result<Message> DeviceService::Handle(const Message& request) {
  auto log = GetLogger("device");
  const auto start = Clock::now();
  size_t samples = 0;
  // Only a getData runs while a deploy's save is pending, on the model being saved; anything
  // else finds the store and the running model settled.
  if (request.kind != pb::MSG_GET_DATA) (void)FinishPendingSave();
  const Status admitted =
      request.kind == pb::MSG_LEASE ? Status::Ok() : lease_.Admit(request.lease_id);
  Result<Message> reply = admitted.ok() ? Dispatch(request, &samples) : Result<Message>(admitted);
  if (reply.ok() && pending_save_) {
    // The reply vouches for the model being saved: it goes out once the save is done, or as an
    // error if it failed (a getData's retryable: run again, it answers from the model the device
    // went back to).
    reply->before_send = [this, save = pending_save_,
                          deploy = request.kind == pb::MSG_DEPLOY_MODEL] {
      const Status saved = FinishSave(*save);
      if (saved.ok() || deploy) return saved;
      return Status::Unavailable("this reply came from model version " +
                                 std::to_string(save->version) +
                                 ", which was not saved: " + saved.message());
    };
  }
  if (reply.ok() && options_.reply_delay.count() > 0 && reply->before_send) {
    // "Executed" includes the save (tests kill the daemon now): settled here, not held.
    const Status kept = reply->before_send();
    reply->before_send = nullptr;
    if (!kept.ok()) reply = kept;
  }
  if (reply.ok() && options_.reply_delay.count() > 0) {
    log->info("{}: executed; replying after the debug delay of {} ms", Describe(request),
              options_.reply_delay.count());
    std::this_thread::sleep_for(options_.reply_delay);
  }
  const std::string what = KindName(request.kind) + " job=" + request.job_id +
                           " request=" + std::to_string(request.request_id) +
                           (request.lease_id ? " lease=" + LeaseHex(request.lease_id) : "") +
                           (samples > 0 ? " samples=" + std::to_string(samples) : "");
  if (reply.ok()) {
    log->debug("{}: ok in {:.3f} s ({} bytes in, {} bytes out)", what, SecondsSince(start),
               request.payload.size(), reply->payload.size());
  } else {
    log->warn("{}: failed in {:.3f} s: {}", what, SecondsSince(start), reply.status().ToString());
  }
  CountForSummary(request.kind, reply.ok());
  return reply;
}

void DeviceService::CountForSummary(pb::MessageKind kind, bool ok) {
  ++summary_counts_[kind];
  if (!ok) ++summary_failed_;
  const auto now = Clock::now();
  if (now - summary_start_ < std::chrono::seconds(30)) return;
  std::string counts;
  for (const auto& [k, n] : summary_counts_) {
    counts += (counts.empty() ? "" : ", ") + KindName(k) + " " + std::to_string(n);
  }
  GetLogger("device")->info("served {} in the last {:.0f} s ({} failed); model version {}", counts,
                            std::chrono::duration<double>(now - summary_start_).count(),
                            summary_failed_, model_version());
  summary_counts_.clear();
  summary_failed_ = 0;
  summary_start_ = now;
}

Result<Message> DeviceService::Dispatch(const Message& request, size_t* samples) {
  switch (request.kind) {
    case pb::MSG_SET_AIOT_MODE: {
      R2F_ASSIGN_OR_RETURN(auto req,
                           ParsePayload<pb::SetAIoTModeRequest>(request, "SetAIoTModeRequest"));
      R2F_ASSIGN_OR_RETURN(pb::Ack ack, SetAIoTMode(req));
      return sendAck(ack);
    }
    case pb::MSG_DEPLOY_MODEL: {
      // Refuse oversized models before parsing them; the request's framing adds a few bytes.
      if (request.payload.size() > options_.max_model_bytes + 64) {
        return Status::InvalidArgument(
            "deployModel payload of " + std::to_string(request.payload.size()) +
            " bytes exceeds limits.max_model_bytes = " + std::to_string(options_.max_model_bytes));
      }
      R2F_ASSIGN_OR_RETURN(auto req,
                           ParsePayload<pb::DeployModelRequest>(request, "DeployModelRequest"));
      R2F_ASSIGN_OR_RETURN(pb::Ack ack, StartDeploy(req));  // its save may still run: Handle
      return sendAck(ack);
    }
    case pb::MSG_LEASE: {
      R2F_ASSIGN_OR_RETURN(auto req, ParsePayload<pb::LeaseRequest>(request, "LeaseRequest"));
      return sendAck(Lease(req));
    }
    case pb::MSG_GET_DATA: {
      R2F_ASSIGN_OR_RETURN(auto req, ParsePayload<pb::GetDataRequest>(request, "GetDataRequest"));
      *samples = static_cast<size_t>(req.sample_ids_size());
      R2F_ASSIGN_OR_RETURN(pb::DataReply data, GetData(req));
      return sendData(data);
    }
    default:
      return Status::InvalidArgument("request kind " + KindName(request.kind) +
                                     " is not served by this device");
  }
}

}  // namespace r2f
