#include "common/net/device_endpoint.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/base/checksum.h"
#include "common/net/chunker.h"

namespace r2f {
namespace {

using Clock = std::chrono::steady_clock;

// Calls and clears reply.before_send; an exception becomes the error (it must not leave the
// worker thread).
Status KeepPromise(Message& reply) {
  Status kept = Status::Internal("before_send did not run");
  try {
    kept = reply.before_send();
  } catch (const std::exception& e) {
    kept = Status::Internal(std::string("before_send threw: ") + e.what());
  } catch (...) {
    kept = Status::Internal("before_send threw");
  }
  reply.before_send = nullptr;
  return kept;
}
using std::chrono::milliseconds;

// At most one MSG_ERROR reply per (job, request) in this period: a bad 512-chunk message gets one
// error reply, not 512.
constexpr milliseconds kErrorReplyPeriod{1000};
// The reply lane (error replies, cache resends) holds this many more than the request lane:
// every queued request may have one resend of it waiting, and some room is left for errors.
constexpr size_t kExtraReplySlots = 16;

// A device makes room for a fresh request by dropping the stalest incomplete ones.
ReassemblerOptions DeviceReassembly(const TransportOptions& o) {
  ReassemblerOptions r = ReassemblyLimits(o);
  r.evict_stale_to_admit = true;
  return r;
}

}  // namespace

DeviceEndpoint::DeviceEndpoint(MqttSession* session)
    : session_(session),
      o_(session->options()),
      reassembler_(DeviceReassembly(o_)),
      cache_(o_.reply_cache_entries, o_.reply_cache_bytes) {
  online_envelope_ = StatusEnvelope(o_.device_id, kStatusOnline, o_.chunk_bytes).value();
  offline_envelope_ = StatusEnvelope(o_.device_id, kStatusOffline, o_.chunk_bytes).value();
  // OnConnected publishes "online" at once: the first repeat is due an interval from now, not
  // at the first housekeeping tick (which published it a second time right after connecting).
  last_status_ = MqttSession::Clock::now();
}

DeviceEndpoint::~DeviceEndpoint() { Join(); }

std::vector<std::string> DeviceEndpoint::InitialFilters() const {
  return {DeviceTopic(o_.topic_prefix, o_.device_id, TopicLeaf::kCmd)};
}

std::string DeviceEndpoint::StatusTopic() const {
  return DeviceTopic(o_.topic_prefix, o_.device_id, TopicLeaf::kStatus);
}

Result<std::string> DeviceEndpoint::StatusEnvelope(const std::string& device_id, const char* status,
                                                   size_t chunk_bytes) {
  Message m;
  m.kind = pb::MSG_STATUS;
  m.device_id = device_id;
  m.payload = status;
  R2F_ASSIGN_OR_RETURN(Chunker c, Chunker::Create(m, chunk_bytes));
  return c.Chunk(0, UnixMillis()).SerializeAsString();
}

void DeviceEndpoint::OnConnected() {
  // Overwrites a last will "offline" that the broker may have published for the lost
  // connection. Without waiting: this runs on the client's thread.
  Status s = session_->PublishRetained(StatusTopic(), online_envelope_, milliseconds(0));
  if (!s.ok()) {
    spdlog::warn("transport {}: publishing online status: {}", session_->client_id(), s.ToString());
  }
}

void DeviceEndpoint::OnStopping() {
  { std::lock_guard<std::mutex> l(work_mu_); }
  work_cv_.notify_all();
  if (!session_->connected()) return;
  // Retained, so that a server connecting later still learns the device is gone; a clean
  // disconnect suppresses the last will, so this is the only "offline" it gets.
  Status s = session_->PublishRetained(StatusTopic(), offline_envelope_, milliseconds(2000));
  if (!s.ok()) {
    spdlog::warn("transport {}: publishing offline status: {}", session_->client_id(),
                 s.ToString());
  }
}

void DeviceEndpoint::Join() {
  if (worker_.joinable()) worker_.join();
}

// ------------------------------------------------------------------------------------------------
// Receiver thread

void DeviceEndpoint::OnEnvelope(const ParsedTopic& topic, pb::Envelope env) {
  if (topic.leaf != TopicLeaf::kCmd || topic.device_id != o_.device_id) {
    session_->Count(&TransportStats::rejected);
    uint64_t suppressed = 0;
    if (session_->MayLogRejection(topic.device_id, &suppressed)) {
      spdlog::warn("transport {}: dropped message on the {} topic of device {}{}",
                   session_->client_id(), LeafName(topic.leaf), topic.device_id,
                   NotLogged(suppressed));
    }
    return;
  }
  const std::string job_id = env.job_id();
  const uint64_t request_id = env.request_id();
  const pb::MessageKind kind = env.kind();
  if (env.device_id() != o_.device_id) {
    RejectRequest(job_id, request_id, kind,
                  Status::InvalidArgument("request addressed to device '" + env.device_id() +
                                          "' arrived at device '" + o_.device_id + "'"));
    return;
  }
  if (!IsRequestKind(kind) && env.protocol_version() == kProtocolVersion) {
    RejectRequest(job_id, request_id, kind,
                  Status::InvalidArgument(KindName(kind) + " is not a request kind"));
    return;
  }
  Result<std::optional<Message>> r = reassembler_.Add(std::move(env));
  if (!r.ok()) {
    RejectRequest(job_id, request_id, kind, r.status());
    return;
  }
  session_->Count(&TransportStats::chunks_received);
  if (!r->has_value()) return;
  session_->Count(&TransportStats::messages_received);
  OnRequest(std::move(**r));
}

void DeviceEndpoint::OnHousekeeping(MqttSession::Clock::time_point now) {
  if (o_.status_interval.count() > 0 && now - last_status_ >= o_.status_interval &&
      session_->connected()) {
    last_status_ = now;
    Status s = session_->PublishRetained(StatusTopic(), online_envelope_, milliseconds(0));
    if (!s.ok()) spdlog::debug("transport {}: status: {}", session_->client_id(), s.ToString());
  }
  if (reassembler_.stats().evicted > evicted_logged_) {
    spdlog::warn("transport {}: dropped {} stale incomplete requests to admit new ones",
                 session_->client_id(), reassembler_.stats().evicted - evicted_logged_);
    evicted_logged_ = reassembler_.stats().evicted;
  }
  for (const MessageKey& k : reassembler_.EvictExpired()) {
    spdlog::warn("transport {}: dropped incomplete {} after {} ms without progress",
                 session_->client_id(), k.ToString(), o_.reassembly_timeout.count());
  }
  for (auto it = recent_errors_.begin(); it != recent_errors_.end();) {
    it = now - it->second >= kErrorReplyPeriod ? recent_errors_.erase(it) : std::next(it);
  }
}

void DeviceEndpoint::RejectRequest(const std::string& job_id, uint64_t request_id,
                                   pb::MessageKind kind, const Status& s) {
  session_->Count(&TransportStats::rejected);
  uint64_t suppressed = 0;
  if (session_->MayLogRejection(o_.device_id, &suppressed)) {
    spdlog::warn("transport {}: rejected request: {}{}", session_->client_id(), s.ToString(),
                 NotLogged(suppressed));
  }
  RequestKey key(job_id, request_id);
  const auto now = Clock::now();
  auto it = recent_errors_.find(key);
  if (it != recent_errors_.end() && now - it->second < kErrorReplyPeriod) return;
  recent_errors_[key] = now;
  Work w;
  w.type = Work::Type::kError;
  w.request.kind = kind;
  w.request.job_id = job_id;
  w.request.request_id = request_id;
  w.request.device_id = o_.device_id;
  w.error = s;
  Enqueue(std::move(w));
}

void DeviceEndpoint::OnRequest(Message request) {
  const uint32_t crc = Crc32(request.payload);
  RequestKey key(request.job_id, request.request_id);
  std::lock_guard<std::mutex> l(cache_mu_);
  if (std::optional<ReplyCache::Entry> e = cache_.Find(key.first, key.second)) {
    Work w;
    w.request = std::move(request);
    if (e->request_kind != w.request.kind || e->request_crc32 != crc ||
        e->request_size != w.request.payload.size()) {
      w.type = Work::Type::kError;
      w.error = Status::InvalidArgument("request id " + std::to_string(key.second) + " of job '" +
                                        key.first + "' was already used for a different request (" +
                                        KindName(e->request_kind) + ", " +
                                        std::to_string(e->request_size) + " bytes)");
      session_->Count(&TransportStats::rejected);
      spdlog::warn("transport {}: {}", session_->client_id(), w.error.ToString());
    } else {
      w.type = Work::Type::kResend;
      w.reply = e->reply;
      session_->Count(&TransportStats::cache_hits);
      spdlog::debug("transport {}: answering retried {} from the reply cache",
                    session_->client_id(), Describe(w.request));
    }
    w.request.payload.clear();
    Enqueue(std::move(w));
    return;
  }
  if (in_progress_.count(key) != 0) {
    session_->Count(&TransportStats::duplicates_suppressed);
    spdlog::debug("transport {}: {} is already being handled; copy ignored", session_->client_id(),
                  Describe(request));
    return;
  }
  Work w;
  w.type = Work::Type::kHandle;
  w.request = std::move(request);
  w.request_crc32 = crc;
  if (Enqueue(std::move(w))) in_progress_.insert(std::move(key));
}

bool DeviceEndpoint::Enqueue(Work w, bool urgent) {
  const bool request = w.type == Work::Type::kHandle;
  // Requests and replies have a bound each: replies to junk (rejections) must not take the
  // room of real requests, and a flood of junk must not grow the queue without limit.
  const size_t limit = request ? o_.max_queued_requests : o_.max_queued_requests + kExtraReplySlots;
  {
    std::lock_guard<std::mutex> l(work_mu_);
    const size_t queued = request ? queued_requests_ : work_.size() - queued_requests_;
    if (queued < limit) {
      w.enqueued = Clock::now();
      if (urgent) {
        work_.push_front(std::move(w));
      } else {
        work_.push_back(std::move(w));
      }
      queued_requests_ += request ? 1 : 0;
      work_cv_.notify_one();
      return true;
    }
  }
  session_->Count(&TransportStats::dropped);
  uint64_t suppressed = 0;
  if (session_->MayLogRejection(o_.device_id, &suppressed)) {
    spdlog::warn("transport {}: {} queue full ({}), dropped {}{}", session_->client_id(),
                 request ? "request" : "reply", limit, Describe(w.request), NotLogged(suppressed));
  }
  if (request) {
    // "Busy" as soon as the running request is done, ahead of the queued ones, so that the
    // server backs off and retries within a second or so rather than after its call timeout.
    // Not cached and not deduplicated: each retry is judged afresh.
    Work busy;
    busy.type = Work::Type::kError;
    busy.request = std::move(w.request);
    busy.request.payload.clear();
    busy.error = Status::ResourceExhausted("device busy: " + std::to_string(limit) +
                                           " requests already queued");
    (void)Enqueue(std::move(busy), /*urgent=*/true);
  }
  return false;
}

// ------------------------------------------------------------------------------------------------
// Worker thread

Status DeviceEndpoint::Serve(Transport::Handler handler) {
  if (!handler) return Status::InvalidArgument("Serve needs a handler");
  std::lock_guard<std::mutex> l(work_mu_);
  if (handler_) return Status::InvalidArgument("Serve was already called");
  if (session_->stopping()) return Status::Unavailable("transport stopped");
  handler_ = std::move(handler);
  worker_ = std::thread([this] { WorkerLoop(); });
  return Status::Ok();
}

void DeviceEndpoint::WorkerLoop() {
  for (;;) {
    Work w;
    {
      std::unique_lock<std::mutex> l(work_mu_);
      if (held_ && work_.empty() && !session_->stopping()) {
        // Nothing to run meanwhile: the held reply goes as soon as its promise is kept.
        l.unlock();
        ReleaseHeld();
        continue;
      }
      work_cv_.wait(l, [this] { return session_->stopping() || !work_.empty(); });
      if (session_->stopping()) {
        l.unlock();
        // Its promise is kept (the device's state is settled), its reply not sent: the
        // server's retry is answered after the restart or reconnect.
        if (held_) (void)KeepPromise(held_->reply);
        held_.reset();
        return;
      }
      w = std::move(work_.front());
      work_.pop_front();
      queued_requests_ -= w.type == Work::Type::kHandle;
    }
    switch (w.type) {
      case Work::Type::kHandle: {
        Message reply = RunHandler(w.request, w.enqueued);
        if (held_) ReleaseHeld();  // the earlier reply goes first
        if (reply.before_send) {
          held_ = Held{std::move(w), std::move(reply)};
        } else {
          Finish(w, std::move(reply));
        }
        break;
      }
      case Work::Type::kResend:
        if (held_) ReleaseHeld();
        SendReply(*w.reply, w.request.kind);
        break;
      case Work::Type::kError:
        if (held_) ReleaseHeld();
        SendReply(ErrorReply(w.request, w.error), w.request.kind);
        break;
    }
  }
}

void DeviceEndpoint::ReleaseHeld() {
  Held held = std::move(*held_);
  held_.reset();
  const auto start = Clock::now();
  const Status kept = KeepPromise(held.reply);
  // The device's part of the reply includes waiting for its promise (not the requests run
  // meanwhile).
  held.reply.handler_us += static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
  if (!kept.ok()) {
    held.reply = ErrorReply(held.work.request, kept.WithContext(Describe(held.work.request)));
  }
  Finish(held.work, std::move(held.reply));
}

void DeviceEndpoint::Finish(const Work& w, Message reply) {
  auto shared = std::make_shared<const Message>(std::move(reply));
  // "Busy, try later" is not an answer to keep: the retry runs the handler again.
  const bool cacheable =
      shared->kind != pb::MSG_ERROR || !IsRetryable(DecodeErrorReply(shared->payload).code());
  {
    std::lock_guard<std::mutex> l(cache_mu_);
    if (cacheable) {
      cache_.Insert(w.request.job_id, w.request.request_id,
                    {w.request.kind, w.request_crc32, w.request.payload.size(), shared});
    }
    in_progress_.erase(RequestKey(w.request.job_id, w.request.request_id));
  }
  SendReply(*shared, w.request.kind);
}

Message DeviceEndpoint::ErrorReply(const Message& request_header, const Status& s) const {
  Message reply;
  reply.kind = pb::MSG_ERROR;
  reply.job_id = request_header.job_id;
  reply.request_id = request_header.request_id;
  reply.device_id = o_.device_id;
  reply.payload = EncodeErrorReply(s, request_header.kind);
  return reply;
}

Message DeviceEndpoint::RunHandler(const Message& request, Clock::time_point enqueued) {
  const auto start = Clock::now();
  Message reply = RunHandlerUntimed(request);
  reply.queued_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(start - enqueued).count());
  reply.handler_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
  return reply;
}

Message DeviceEndpoint::RunHandlerUntimed(const Message& request) {
  session_->Count(&TransportStats::handler_calls);
  Result<Message> r = Status::Internal("handler did not run");
  try {
    r = handler_(request);
  } catch (const std::exception& e) {
    // Exceptions stay inside the module: the server gets an error reply, the daemon keeps going.
    r = Status::Internal(std::string("handler threw: ") + e.what());
  }
  if (!r.ok()) return ErrorReply(request, r.status().WithContext(Describe(request)));
  Message reply = std::move(r).value();
  if (!IsReplyKind(reply.kind)) {
    return ErrorReply(request, Status::Internal("handler answered " + Describe(request) + " with " +
                                                KindName(reply.kind) + ", not a reply kind"));
  }
  if (reply.payload.size() > o_.max_payload_bytes) {
    return ErrorReply(
        request, Status::InvalidArgument("reply to " + Describe(request) + " has " +
                                         std::to_string(reply.payload.size()) + " bytes, limit " +
                                         std::to_string(o_.max_payload_bytes)));
  }
  reply.job_id = request.job_id;
  reply.request_id = request.request_id;
  reply.device_id = o_.device_id;
  return reply;
}

void DeviceEndpoint::SendReply(const Message& reply, pb::MessageKind request_kind) {
  const std::string topic =
      DeviceTopic(o_.topic_prefix, o_.device_id, ReplyLeaf(reply.kind, request_kind));
  Status s = session_->Publish(topic, reply, Clock::now() + o_.reply_publish_timeout);
  if (!s.ok()) {
    spdlog::warn("transport {}: sending reply {}: {}", session_->client_id(), Describe(reply),
                 s.ToString());
    return;
  }
  if (reply.kind == pb::MSG_ERROR) session_->Count(&TransportStats::error_replies_sent);
}

}  // namespace r2f
