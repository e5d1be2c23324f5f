// The server role of the transport: requests to devices and their replies.
//
// Call() publishes a request on <prefix>/<device>/cmd and waits for the reply with the same
// request id on .../ack or .../data, retrying with the same id (the device answers retries from
// its reply cache). The endpoint subscribes to a device's reply topics when it first calls it
// (Watch) and not before, so a server receives the replies of its own devices only; it follows
// every device's retained status (<prefix>/+/status, a few bytes each).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/net/mqtt_session.h"
#include "common/net/reassembler.h"
#include "common/net/transport_message.h"

namespace r2f {

class ServerEndpoint : public MqttSession::Listener {
 public:
  // `session` must outlive the endpoint.
  explicit ServerEndpoint(MqttSession* session);

  // What the session subscribes to at start.
  std::vector<std::string> InitialFilters() const;

  // Transport::Call (common/net/transport.h).
  Result<Message> Call(const std::string& device_id, Message request,
                       std::chrono::milliseconds timeout, int attempts,
                       const std::function<void()>& on_sent);
  // Subscribes to the device's reply topics (once; Call does it itself). Unwatch undoes it;
  // replies of an unwatched device no longer reach this server.
  Status Watch(const std::string& device_id, std::chrono::milliseconds timeout);
  void Unwatch(const std::string& device_id);

  Result<std::string> DeviceStatus(const std::string& device_id) const;
  // Every device whose retained status this server has seen, with that status.
  std::map<std::string, std::string> DeviceStatuses() const;
  uint64_t NewRequestId();

  // MqttSession::Listener
  void OnEnvelope(const ParsedTopic& topic, pb::Envelope envelope) override;
  void OnHousekeeping(MqttSession::Clock::time_point now) override;
  void OnSubscribed() override;
  void OnStopping() override;

 private:
  struct Pending {
    std::string device_id;
    std::string job_id;
    std::optional<Message> reply;
    Status last_problem;
  };
  enum class Verdict { kDone, kRetry, kRetryAfterBackoff };

  Result<Message> CallValidated(const std::string& device_id, Message request,
                                std::chrono::milliseconds timeout, int attempts,
                                const std::function<void()>& on_sent);
  // What to do with an MSG_ERROR reply of attempt `attempt`.
  Verdict JudgeError(const Status& error, int attempt, int attempts);
  Status ValidateCall(const std::string& device_id, const Message& request,
                      std::chrono::milliseconds timeout, int attempts) const;
  // Why a reply envelope on `topic` is not acceptable; OK if it is.
  Status CheckReplyEnvelope(const ParsedTopic& topic, const pb::Envelope& env) const;
  bool IsPendingReply(const pb::Envelope& env) const;
  void NoteProblem(uint64_t request_id, const std::string& device_id, const Status& s);
  void Deliver(Message m);

  MqttSession* session_;
  const TransportOptions& o_;
  Reassembler reassembler_;  // receiver thread only

  mutable std::mutex pending_mu_;
  std::condition_variable pending_cv_;
  std::map<uint64_t, std::shared_ptr<Pending>> pending_;
  mutable std::mutex status_mu_;
  std::condition_variable status_cv_;  // a device's status arrived
  std::map<std::string, std::string> device_status_;
  std::mutex watch_mu_;
  std::set<std::string> watched_;
  std::atomic<uint64_t> next_request_id_{1};
  // Bumped whenever the broker has (re)accepted our subscriptions. The server's session is
  // clean (nothing is queued for it while it is away), so a pending call sends its request
  // again at once instead of waiting out the attempt: the device answers from its reply cache.
  uint64_t subscribed_epoch_ = 0;  // guarded by pending_mu_
  // Per device, bumped when its status turns "online" (it was offline or unknown): a request
  // sent before the device had subscribed is lost (a device's first session, or a clean one),
  // so pending calls to it are sent again at once instead of waiting out their attempt.
  std::map<std::string, uint64_t> online_epoch_;  // guarded by pending_mu_
};

}  // namespace r2f
