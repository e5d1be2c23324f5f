// The device role of the transport: requests in, replies out, each request handled once.
//
// Requests arrive on <prefix>/<device>/cmd; the handler runs once per (job id, request id) on
// the endpoint's worker thread; its reply goes to .../ack or .../data and into the reply cache,
// so that a retried request is answered again without running the handler twice. A request the
// device cannot take (malformed, over its limits, its queue full) gets an MSG_ERROR reply naming
// the problem. The endpoint publishes a retained "online" on .../status at every connect and
// "offline" when it stops (the broker publishes the same as our last will if we die).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "common/base/status.h"
#include "common/net/mqtt_session.h"
#include "common/net/reassembler.h"
#include "common/net/reply_cache.h"
#include "common/net/transport.h"

namespace r2f {

class DeviceEndpoint : public MqttSession::Listener {
 public:
  // `session` must outlive the endpoint; its options hold the device id (validated).
  explicit DeviceEndpoint(MqttSession* session);
  ~DeviceEndpoint() override;  // Join()

  // The subscription of the device and its status messages (the last will is "offline").
  std::vector<std::string> InitialFilters() const;
  std::string StatusTopic() const;
  static Result<std::string> StatusEnvelope(const std::string& device_id, const char* status,
                                            size_t chunk_bytes);

  // Transport::Serve (common/net/transport.h).
  Status Serve(Transport::Handler handler);
  // Waits for the worker thread (after the session stopped).
  void Join();

  // MqttSession::Listener
  void OnEnvelope(const ParsedTopic& topic, pb::Envelope envelope) override;
  void OnHousekeeping(MqttSession::Clock::time_point now) override;
  void OnConnected() override;
  void OnStopping() override;

 private:
  using RequestKey = std::pair<std::string, uint64_t>;  // (job id, request id)
  struct Work {
    enum class Type { kHandle, kResend, kError };
    Type type = Type::kHandle;
    Message request;  // kHandle: the whole request; otherwise its header (kind, job, id)
    uint32_t request_crc32 = 0;
    std::shared_ptr<const Message> reply;     // kResend
    Status error;                             // kError
    MqttSession::Clock::time_point enqueued;  // kHandle: when the request joined the queue
  };

  void RejectRequest(const std::string& job_id, uint64_t request_id, pb::MessageKind kind,
                     const Status& s);
  void OnRequest(Message request);
  // Queues w (at the front if urgent) within its lane's bound; a request beyond it is answered
  // "busy" instead. False if w was not queued.
  bool Enqueue(Work w, bool urgent = false);
  void WorkerLoop();
  // A handled request's reply into the reply cache and out.
  void Finish(const Work& w, Message reply);
  // The held reply: its before_send called (its error sent instead if it fails), then Finish.
  void ReleaseHeld();
  // With Message::handler_us and queued_us (the wait since `enqueued`) set.
  Message RunHandler(const Message& request, MqttSession::Clock::time_point enqueued);
  Message RunHandlerUntimed(const Message& request);
  Message ErrorReply(const Message& request_header, const Status& s) const;
  void SendReply(const Message& reply, pb::MessageKind request_kind);

  MqttSession* session_;
  const TransportOptions& o_;
  std::string online_envelope_, offline_envelope_;

  // Receiver thread only.
  Reassembler reassembler_;
  std::map<RequestKey, MqttSession::Clock::time_point> recent_errors_;
  uint64_t evicted_logged_ = 0;                   // reassembler evictions already in the log
  MqttSession::Clock::time_point last_status_{};  // the last "online" published

  // Lock order: cache_mu_ before work_mu_.
  std::mutex cache_mu_;
  ReplyCache cache_;
  std::set<RequestKey> in_progress_;  // queued or running in the handler
  std::mutex work_mu_;
  std::condition_variable work_cv_;
  std::deque<Work> work_;
  // Of work_, the requests for the handler (kHandle); the rest are replies (kResend, kError)
  // with a bound of their own, so that rejected junk cannot take a real request's place.
  size_t queued_requests_ = 0;
  Transport::Handler handler_;
  std::thread worker_;
  // Worker thread only: the reply whose before_send has not run yet, with its request.
  struct Held {
    Work work;
    Message reply;
  };
  std::optional<Held> held_;
};

}  // namespace r2f
