// R2fServer: the Table-I server API over the MQTT transport (server/api/r2f_server_api.h).
#include <google/protobuf/io/coded_stream.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <future>
#include <mutex>

#include "common/base/logging.h"
#include "common/codec/weight_delta.h"
#include "server/api/r2f_server_api.h"

namespace r2f {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Bytes one attempt of `message` puts on the wire: the serialised envelopes of all its chunks
// (what ModelledSeconds expects). Computed from the chunk layout instead of building the
// envelopes: every chunk header is taken as large as the last one's with the widest checksums,
// so this is an upper bound that is exact to a few bytes per chunk.
uint64_t WireBytes(const Message& message, size_t chunk_bytes) {
  using google::protobuf::io::CodedOutputStream;
  const uint64_t n = message.payload.size();
  const uint64_t chunks = n == 0 ? 1 : (n + chunk_bytes - 1) / chunk_bytes;
  pb::Envelope header;
  header.set_protocol_version(kProtocolVersion);
  header.set_device_id(message.device_id);
  header.set_job_id(message.job_id);
  header.set_request_id(message.request_id);
  header.set_kind(message.kind);
  header.set_chunk_index(static_cast<uint32_t>(chunks - 1));
  header.set_chunk_count(static_cast<uint32_t>(chunks));
  header.set_payload_size(n);
  header.set_payload_crc32(0xFFFFFFFFu);
  header.set_chunk_crc32(0xFFFFFFFFu);
  header.set_sent_unix_ms(
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count()));
  header.set_lease_id(message.lease_id);
  header.set_handler_us(message.handler_us);
  header.set_queued_us(message.queued_us);
  if (n == 0) return header.ByteSizeLong();
  const uint64_t chunk_field =  // tag byte + length varint of a full chunk
      1 + CodedOutputStream::VarintSize64(std::min<uint64_t>(n, chunk_bytes));
  return chunks * (header.ByteSizeLong() + chunk_field) + n;
}

// Failures that say nothing about whether the device would take the delta: retrying the whole
// model would only repeat them.
bool IsTransportFailure(const Status& status) {
  return status.code() == Status::Code::kDeadlineExceeded ||
         status.code() == Status::Code::kUnavailable;
}

// "53 B", "692.3 KiB", "12.40 MiB": readable sizes for the call log.
std::string ReadableBytes(uint64_t bytes) {
  char buf[32];
  if (bytes < 10 * 1024) {
    std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(bytes));
  } else if (bytes < 10 * 1024 * 1024) {
    std::snprintf(buf, sizeof(buf), "%.1f KiB", bytes / 1024.0);
  } else {
    std::snprintf(buf, sizeof(buf), "%.2f MiB", bytes / (1024.0 * 1024.0));
  }
  return buf;
}

}  // namespace

R2fServer::R2fServer(R2fServerOptions options, std::unique_ptr<Transport> transport)
    : options_(std::move(options)), transport_(std::move(transport)) {}

R2fServer::~R2fServer() { transport_->Stop(); }

Result<std::unique_ptr<R2fServer>> R2fServer::Connect(R2fServerOptions options) {
  R2F_RETURN_IF_ERROR(ValidateLinkSpec(options.link).WithContext("R2fServer"));
  if (options.attempts < 1) return Status::InvalidArgument("R2fServer: attempts must be >= 1");
  if (options.call_timeout.count() <= 0) {
    return Status::InvalidArgument("R2fServer: call_timeout must be > 0");
  }
  if (options.throttle) {  // checks the burst against the link before anything connects
    R2F_RETURN_IF_ERROR(
        Throttle::ForLink(options.link, Direction::kDownlink, options.throttle_burst_bytes)
            .status());
  }
  options.transport.role = TransportOptions::Role::kServer;
  R2F_ASSIGN_OR_RETURN(std::unique_ptr<Transport> transport, Transport::Connect(options.transport));
  GetLogger("server")->info("connected to {} (user '{}', password '{}'); link {}{}",
                            options.transport.broker_uri, options.transport.username,
                            RedactSecret(options.transport.password), options.link.name,
                            options.throttle ? ", throttled" : "");
  return std::unique_ptr<R2fServer>(new R2fServer(std::move(options), std::move(transport)));
}

Status R2fServer::SetDeviceLink(const std::string& device, const LinkSpec& link, bool throttle) {
  R2F_RETURN_IF_ERROR(ValidateLinkSpec(link).WithContext("link of device " + device));
  std::lock_guard<std::mutex> lock(mu_);
  DeviceView& view = devices_[device];
  view.link = link;
  view.throttle = throttle;
  view.downlink_throttle.reset();
  view.uplink_throttle.reset();
  return Status::Ok();
}

LinkSpec R2fServer::DeviceLink(const std::string& device) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = devices_.find(device);
  return it != devices_.end() && it->second.link ? *it->second.link : options_.link;
}

Result<R2fServer::LinkOfCall> R2fServer::LinkFor(const std::string& device) {
  std::lock_guard<std::mutex> lock(mu_);
  DeviceView& view = devices_[device];
  if (!view.link) {
    view.link = options_.link;
    view.throttle = options_.throttle;
  }
  if (view.throttle && !view.downlink_throttle) {
    R2F_ASSIGN_OR_RETURN(
        std::unique_ptr<Throttle> down,
        Throttle::ForLink(*view.link, Direction::kDownlink, options_.throttle_burst_bytes));
    R2F_ASSIGN_OR_RETURN(
        std::unique_ptr<Throttle> up,
        Throttle::ForLink(*view.link, Direction::kUplink, options_.throttle_burst_bytes));
    view.downlink_throttle = std::move(down);
    view.uplink_throttle = std::move(up);
  }
  return LinkOfCall{*view.link, view.downlink_throttle, view.uplink_throttle};
}

Result<Message> R2fServer::Exchange(const std::string& device, pb::MessageKind kind,
                                    std::string payload,
                                    std::optional<std::chrono::milliseconds> timeout, int attempts,
                                    const std::function<void()>& on_sent) {
  Message request;
  request.kind = kind;
  request.job_id = options_.job_id;
  request.request_id = transport_->NewRequestId();
  request.device_id = device;
  request.payload = std::move(payload);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = devices_.find(device);
    if (it != devices_.end()) request.lease_id = it->second.lease_id;
  }
  R2F_ASSIGN_OR_RETURN(LinkOfCall link, LinkFor(device));

  CallRecord rec;
  rec.device_id = device;
  rec.kind = kind;
  rec.request_id = request.request_id;
  rec.downlink_bytes = WireBytes(request, options_.transport.chunk_bytes);
  rec.modelled_downlink_s = ModelledSeconds(link.spec, Direction::kDownlink, rec.downlink_bytes);
  if (link.downlink) {
    const auto t0 = Clock::now();
    link.downlink->Acquire(rec.downlink_bytes);
    rec.throttle_s += SecondsSince(t0);
  }
  const uint64_t retries_before = transport_->stats().retries;
  const auto t0 = Clock::now();
  Result<Message> reply =
      transport_->Call(device, std::move(request), timeout.value_or(options_.call_timeout),
                       attempts > 0 ? attempts : options_.attempts, on_sent);
  rec.measured_s = SecondsSince(t0);
  rec.retries = transport_->stats().retries - retries_before;
  if (reply.ok()) {
    rec.device_s = static_cast<double>(reply->handler_us) * 1e-6;
    rec.device_queue_s = static_cast<double>(reply->queued_us) * 1e-6;
    rec.uplink_bytes = WireBytes(*reply, options_.transport.chunk_bytes);
    rec.modelled_uplink_s = ModelledSeconds(link.spec, Direction::kUplink, rec.uplink_bytes);
    if (link.uplink) {
      const auto t1 = Clock::now();
      link.uplink->Acquire(rec.uplink_bytes);
      rec.throttle_s += SecondsSince(t1);
    }
  } else {
    rec.status = reply.status();
  }

  // Per call: debug. A failed call is a warning (the caller decides whether the run goes on).
  auto log = GetLogger("server");
  log->log(rec.status.ok() ? spdlog::level::debug : spdlog::level::warn,
           "{} {} request={}: down {} (modelled {:.3f} s), up {} (modelled {:.3f} s) on {}; "
           "measured {:.4f} s (device {:.4f} s, queued {:.4f} s, transport {:.4f} s){}{}{}",
           KindName(kind), device, rec.request_id, ReadableBytes(rec.downlink_bytes),
           rec.modelled_downlink_s, ReadableBytes(rec.uplink_bytes), rec.modelled_uplink_s,
           link.spec.name, rec.measured_s, rec.device_s, rec.device_queue_s,
           rec.measured_s - rec.device_s - rec.device_queue_s,
           rec.throttle_s > 0 ? fmt::format(", throttled {:.3f} s", rec.throttle_s) : "",
           rec.retries > 0 ? fmt::format(", {} retries", rec.retries) : "",
           rec.status.ok() ? "" : "; failed: " + rec.status.ToString());
  std::lock_guard<std::mutex> lock(mu_);
  records_.push_back(std::move(rec));
  return reply;
}

void R2fServer::NoteVersion(const std::string& device, uint64_t version, const pb::Ack* ack) {
  std::lock_guard<std::mutex> lock(mu_);
  DeviceView& view = devices_[device];
  view.version_on_device = version;
  if (ack) view.last_ack = *ack;
}

Status R2fServer::setAIoTMode(const std::string& device, pb::AIoTMode mode,
                              const accel::TmrConfig& tmr) {
  pb::SetAIoTModeRequest request;
  request.set_mode(mode);
  request.set_tmr(accel::TmrModeToProto(tmr.mode));
  for (uint32_t id : tmr.protected_layers) request.add_protected_layers(id);
  R2F_ASSIGN_OR_RETURN(Message reply,
                       Exchange(device, pb::MSG_SET_AIOT_MODE, request.SerializeAsString()));
  pb::Ack ack;
  if (!ack.ParseFromString(reply.payload)) {
    return Status::Corruption("setAIoTMode: device '" + device + "' sent an unreadable Ack");
  }
  NoteVersion(device, ack.model_version(), &ack);
  return Status::Ok();
}

Result<pb::Ack> R2fServer::SendDeploy(const std::string& device,
                                      const pb::DeployModelRequest& request,
                                      const std::function<void()>& on_sent) {
  R2F_ASSIGN_OR_RETURN(Message reply,
                       Exchange(device, pb::MSG_DEPLOY_MODEL, request.SerializeAsString(),
                                std::nullopt, 0, on_sent));
  pb::Ack ack;
  if (!ack.ParseFromString(reply.payload)) {
    return Status::Corruption("deployModel: device '" + device + "' sent an unreadable Ack");
  }
  NoteVersion(device, ack.model_version(), &ack);
  return ack;
}

Result<pb::Ack> R2fServer::deployModel(const std::string& device, const pb::QuantizedModel& model,
                                       bool as_delta_if_possible) {
  return Deploy(device, model, as_delta_if_possible, {});
}

Result<R2fServer::DeployedData> R2fServer::deployModelThenGetData(
    const std::string& device, const pb::QuantizedModel& model, bool as_delta_if_possible,
    const pb::GetDataRequest& request) {
  std::promise<void> sent;
  std::future<void> deploy_sent = sent.get_future();
  std::once_flag once;
  const std::function<void()> signal_sent = [&] {
    std::call_once(once, [&] { sent.set_value(); });
  };
  std::future<Result<pb::Ack>> deploy = std::async(std::launch::async, [&] {
    // Also when it failed, or threw, before sending anything: nobody waits for ever.
    struct SignalOnExit {
      const std::function<void()>& signal;
      ~SignalOnExit() { signal(); }
    } on_exit{signal_sent};
    return Deploy(device, model, as_delta_if_possible, signal_sent);
  });
  deploy_sent.wait();
  Result<pb::DataReply> data = getData(device, request);
  Result<pb::Ack> ack = deploy.get();
  if (!ack.ok()) return ack.status();
  DeployedData out;
  out.ack = std::move(ack).value();
  if (data.ok() && data->model_version() == model.model_version()) {
    out.data = std::move(data).value();
  } else {
    GetLogger("server")->debug(
        "getData {} behind the deploy of version {}: {}", device, model.model_version(),
        data.ok() ? "answered by version " + std::to_string(data->model_version())
                  : data.status().ToString());
  }
  return out;
}

Result<pb::Ack> R2fServer::Deploy(const std::string& device, const pb::QuantizedModel& model,
                                  bool as_delta_if_possible, const std::function<void()>& on_sent) {
  if (model.model_version() == 0) {
    return Status::InvalidArgument("deployModel: model_version must be >= 1 (0 means no model)");
  }
  auto log = GetLogger("server");
  std::optional<pb::WeightDelta> delta;
  if (as_delta_if_possible) {
    std::lock_guard<std::mutex> lock(mu_);
    const DeviceView& view = devices_[device];
    if (view.deployed && view.version_on_device == view.deployed->model_version() &&
        view.deployed->model_version() != model.model_version()) {
      auto made = MakeWeightDelta(*view.deployed, model);
      if (made.ok()) {
        delta = std::move(made).value();
      } else {
        log->info("deployModel {}: sending the whole model: {}", device, made.status().message());
      }
    }
  }
  Result<pb::Ack> ack = Status::NotFound("no weight delta sent");
  if (delta) {
    pb::DeployModelRequest request;
    *request.mutable_delta() = std::move(*delta);
    if (request.ByteSizeLong() < model.ByteSizeLong()) {
      ack = SendDeploy(device, request, on_sent);
      if (!ack.ok() && !IsTransportFailure(ack.status())) {
        log->warn(
            "deployModel {}: the device refused the weight delta ({}); sending the whole "
            "model",
            device, ack.status().message());
      }
    }
  }
  if (!ack.ok()) {
    if (IsTransportFailure(ack.status())) return ack.status();
    pb::DeployModelRequest request;
    *request.mutable_model() = model;
    ack = SendDeploy(device, request, on_sent);
  }
  if (!ack.ok()) return ack.status();
  if (ack->model_version() != model.model_version()) {
    return Status::Internal("deployModel: device '" + device + "' acknowledged version " +
                            std::to_string(ack->model_version()) + ", expected " +
                            std::to_string(model.model_version()));
  }
  std::lock_guard<std::mutex> lock(mu_);
  devices_[device].deployed = model;
  return ack;
}

Result<pb::DataReply> R2fServer::getData(const std::string& device,
                                         const pb::GetDataRequest& request) {
  R2F_ASSIGN_OR_RETURN(Message reply,
                       Exchange(device, pb::MSG_GET_DATA, request.SerializeAsString()));
  pb::DataReply data;
  if (!data.ParseFromString(reply.payload)) {
    return Status::Corruption("getData: device '" + device + "' sent an unreadable DataReply (" +
                              std::to_string(reply.payload.size()) + " bytes)");
  }
  if (data.sample_ids_size() != request.sample_ids_size() ||
      !std::equal(data.sample_ids().begin(), data.sample_ids().end(),
                  request.sample_ids().begin())) {
    return Status::Corruption("getData: device '" + device +
                              "' answered for other samples than requested");
  }
  const size_t classes = data.num_classes();
  if (data.logits().size() != classes * static_cast<size_t>(data.sample_ids_size()) ||
      data.labels().size() != static_cast<size_t>(data.sample_ids_size())) {
    return Status::Corruption("getData: device '" + device + "' sent " +
                              std::to_string(data.logits().size()) + " logits and " +
                              std::to_string(data.labels().size()) + " labels for " +
                              std::to_string(data.sample_ids_size()) + " samples of " +
                              std::to_string(classes) + " classes");
  }
  // Accuracy reads logit[label] of each row: a label outside the classes would read past it.
  for (int i = 0; i < data.sample_ids_size(); ++i) {
    const auto label = static_cast<uint8_t>(data.labels()[static_cast<size_t>(i)]);
    if (label >= classes) {
      return Status::Corruption("getData: device '" + device + "' sent label " +
                                std::to_string(label) + " for sample " +
                                std::to_string(data.sample_ids(i)) + ", outside its " +
                                std::to_string(classes) + " classes");
    }
  }
  NoteVersion(device, data.model_version(), nullptr);
  return data;
}

Result<pb::LeaseState> R2fServer::AcquireLease(const std::string& device,
                                               std::chrono::milliseconds duration) {
  pb::LeaseRequest request;
  request.set_holder(transport_->client_id());
  request.set_duration_ms(static_cast<uint32_t>(duration.count()));
  // Short: a device that does not answer is passed over for now, not waited for.
  const auto timeout = std::min(options_.call_timeout, std::chrono::milliseconds(10000));
  R2F_ASSIGN_OR_RETURN(Message reply, Exchange(device, pb::MSG_LEASE, request.SerializeAsString(),
                                               timeout, /*attempts=*/2));
  pb::Ack ack;
  if (!ack.ParseFromString(reply.payload)) {
    return Status::Corruption("lease: device '" + device + "' sent an unreadable Ack");
  }
  NoteVersion(device, ack.model_version(), &ack);
  std::lock_guard<std::mutex> lock(mu_);
  devices_[device].lease_id = ack.lease().granted() ? ack.lease().lease_id() : 0;
  return ack.lease();
}

void R2fServer::ReleaseDevice(const std::string& device) {
  uint64_t lease_id = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = devices_.find(device);
    if (it != devices_.end()) lease_id = it->second.lease_id;
  }
  if (lease_id != 0) {
    pb::LeaseRequest request;
    request.set_holder(transport_->client_id());
    request.set_release(true);
    request.set_lease_id(lease_id);
    Result<Message> r = Exchange(device, pb::MSG_LEASE, request.SerializeAsString());
    if (!r.ok())
      GetLogger("server")->warn("releasing the lease of {}: {}", device, r.status().ToString());
  }
  TakeRecords(device);
  transport_->Unwatch(device);
  std::lock_guard<std::mutex> lock(mu_);
  devices_.erase(device);
}

Result<pb::Ack> R2fServer::LastAck(const std::string& device) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = devices_.find(device);
  if (it == devices_.end() || !it->second.last_ack) {
    return Status::NotFound("no Ack from device '" + device + "' yet");
  }
  return *it->second.last_ack;
}

Result<std::string> R2fServer::DeviceStatus(const std::string& device) const {
  return transport_->DeviceStatus(device);
}

std::vector<CallRecord> R2fServer::TakeRecords() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<CallRecord> out;
  out.swap(records_);
  return out;
}

std::vector<CallRecord> R2fServer::TakeRecords(const std::string& device) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<CallRecord> out, others;
  for (CallRecord& r : records_) (r.device_id == device ? out : others).push_back(std::move(r));
  records_.swap(others);
  return out;
}

}  // namespace r2f
