// The role-agnostic half of the transport: one MQTT connection (behind the MqttClient seam),
// the subscriptions it restores on every connect, the inbox between the client's thread and our
// receiver thread, chunked and flow-controlled publishing, counters and rate-limited rejection
// logs. The endpoints (server_endpoint.h, device_endpoint.h) give the envelopes their meaning.
//
// Threads: the MqttClient's thread only queues received messages (waiting, up to 5 s, while the
// inbox is full, so that TCP pushes back on the broker instead of QoS-1 messages being dropped);
// the receiver thread parses them and hands them to the Listener, and calls its housekeeping at
// least every 200 ms. Publish may be called from any thread but the client's.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/base/status.h"
#include "common/net/mqtt_client.h"
#include "common/net/reassembler.h"
#include "common/net/transport.h"
#include "common/net/transport_message.h"
#include "common/net/transport_topics.h"
#include "r2f.pb.h"

namespace r2f {

// Tail of a rejection log line that follows suppressed ones: "" or " (3 earlier rejections not
// logged)".
std::string NotLogged(uint64_t suppressed);
// Wall-clock milliseconds since the epoch (Envelope.sent_unix_ms).
uint64_t UnixMillis();
// The reassembly limits of `options` (both endpoints reassemble what they receive).
ReassemblerOptions ReassemblyLimits(const TransportOptions& options);

class MqttSession {
 public:
  using Clock = std::chrono::steady_clock;

  // What the endpoint on top of the session is told. Every call but OnConnected runs on the
  // receiver thread, one at a time.
  class Listener {
   public:
    virtual ~Listener() = default;
    // A parsed envelope on a topic of our tree.
    virtual void OnEnvelope(const ParsedTopic& topic, pb::Envelope envelope) = 0;
    // At least every 200 ms: evict stalled reassemblies and the like.
    virtual void OnHousekeeping(Clock::time_point now) = 0;
    // After every (re)connect, on the client's thread: must not block.
    virtual void OnConnected() {}
    // The broker has accepted the subscriptions of a (re)connect (client's thread, must not
    // block): messages published from now on reach us.
    virtual void OnSubscribed() {}
    // Stop() has begun: wake every thread waiting on the endpoint and say goodbye (a device's
    // "offline" status) while the connection is still up.
    virtual void OnStopping() = 0;
  };

  MqttSession(TransportOptions options, std::string client_id, std::unique_ptr<MqttClient> client);
  ~MqttSession();  // Stop()
  MqttSession(const MqttSession&) = delete;
  MqttSession& operator=(const MqttSession&) = delete;

  // Starts the receiver thread, connects (options.connect_timeout) and subscribes to `filters`,
  // waiting for the broker to accept them.
  Status Start(Listener* listener, std::vector<std::string> filters);
  // Adds filters (restored on every reconnect) and waits up to `timeout` for the broker's
  // answer; Unavailable if it refused them or did not answer.
  Status Subscribe(const std::vector<std::string>& filters, std::chrono::milliseconds timeout);
  // Removes filters added by Subscribe.
  void Unsubscribe(const std::vector<std::string>& filters);

  // Chunks `message` and publishes the chunks with at most options.publish_window of them
  // unacknowledged by the broker. Unavailable once stopping; DeadlineExceeded at `deadline`.
  Status Publish(const std::string& topic, const Message& message, Clock::time_point deadline);
  // One retained publish (a status). Waits up to `wait` for the broker's acknowledgement (0:
  // not at all, safe on the client's thread).
  Status PublishRetained(const std::string& topic, const std::string& bytes,
                         std::chrono::milliseconds wait);

  // Stopping: the flag, the listener's OnStopping, a clean disconnect, the receiver joined.
  // Idempotent.
  void Stop();
  bool stopping() const { return stopping_; }
  bool connected() const;

  // Counters, shared with the endpoint (thread-safe).
  void Count(uint64_t TransportStats::*field, uint64_t n = 1);
  TransportStats stats() const;
  // Receiver thread only: whether a rejection of something from `device` may be logged now (a
  // few per device and second); the rest are counted and *suppressed says how many were left
  // out before this one.
  bool MayLogRejection(const std::string& device, uint64_t* suppressed);

  const TransportOptions& options() const { return o_; }
  const std::string& client_id() const { return client_id_; }

 private:
  struct Inbound {
    std::string topic;
    std::shared_ptr<const std::string> payload;  // the client's, not a copy
  };
  void OnConnected();
  void OnConnectionLost(const std::string& cause);
  void OnMessage(const std::string& topic, std::shared_ptr<const std::string> payload);
  void SubscribeAll();
  void ReceiverLoop();
  void Housekeeping(Clock::time_point now);
  void HandleInbound(const Inbound& message);
  Status AwaitDelivery(MqttClient::Delivery& delivery, Clock::time_point deadline,
                       const std::string& what);

  TransportOptions o_;
  std::string client_id_;
  std::unique_ptr<MqttClient> client_;
  Listener* listener_ = nullptr;

  std::atomic<bool> stopping_{false};
  std::mutex stop_mu_;
  bool stopped_ = false;

  mutable std::mutex state_mu_;
  std::condition_variable state_cv_;
  bool connected_ = false;
  std::set<std::string> filters_;  // restored on every connect
  uint64_t subscribe_round_ = 0;   // answers of older rounds are stale
  uint64_t answered_round_ = 0;
  bool round_ok_ = false;

  // Client thread -> receiver thread.
  std::mutex inbox_mu_;
  std::condition_variable inbox_cv_;
  std::condition_variable inbox_space_cv_;
  std::deque<Inbound> inbox_;
  uint64_t inbox_bytes_ = 0;
  std::thread receiver_;

  struct LogBudget {
    Clock::time_point window_start;
    int logged = 0;
    uint64_t suppressed = 0;
  };
  std::map<std::string, LogBudget> log_budget_;  // receiver thread only

  mutable std::mutex stats_mu_;
  TransportStats stats_;
};

}  // namespace r2f
