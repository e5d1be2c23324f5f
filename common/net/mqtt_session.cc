#include "common/net/mqtt_session.h"

#include <spdlog/spdlog.h>

#include <deque>

#include "common/net/chunker.h"
#include "common/net/reassembler.h"

namespace r2f {
namespace {

using std::chrono::milliseconds;

// How long the client's thread may wait for room in a full inbox before dropping a message.
constexpr milliseconds kInboxWait{5000};
// The receiver thread wakes at least this often for housekeeping.
constexpr milliseconds kHousekeepingPeriod{200};
// Rejections logged per device and second; the rest are counted and summarised.
constexpr int kRejectionLogsPerSecond = 5;

}  // namespace

// Longest device and job id accepted: they key messages and appear in every log line.
constexpr size_t kMaxIdBytes = 256;

uint64_t UnixMillis() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

ReassemblerOptions ReassemblyLimits(const TransportOptions& o) {
  ReassemblerOptions r;
  r.max_payload_bytes = o.max_incoming_payload_bytes > 0
                            ? std::min(o.max_payload_bytes, o.max_incoming_payload_bytes)
                            : o.max_payload_bytes;
  r.max_chunk_count = o.max_chunk_count;
  r.max_inflight_bytes = o.max_inflight_bytes;
  r.max_inflight_bytes_per_device = o.max_inflight_bytes_per_device;
  r.max_inflight_messages_per_device = o.max_inflight_messages_per_device;
  r.max_id_bytes = kMaxIdBytes;
  r.timeout = o.reassembly_timeout;
  return r;
}

std::string NotLogged(uint64_t suppressed) {
  return suppressed == 0 ? ""
                         : " (" + std::to_string(suppressed) + " earlier rejections not logged)";
}

MqttSession::MqttSession(TransportOptions options, std::string client_id,
                         std::unique_ptr<MqttClient> client)
    : o_(std::move(options)), client_id_(std::move(client_id)), client_(std::move(client)) {}

MqttSession::~MqttSession() {
  Stop();
  client_.reset();  // no handler runs after this: they reference our members
}

Status MqttSession::Start(Listener* listener, std::vector<std::string> filters) {
  listener_ = listener;
  filters_.insert(filters.begin(), filters.end());
  MqttClient::Handlers handlers;
  handlers.connected = [this] { OnConnected(); };
  handlers.connection_lost = [this](const std::string& cause) { OnConnectionLost(cause); };
  handlers.message = [this](const std::string& topic, std::shared_ptr<const std::string> payload) {
    OnMessage(topic, std::move(payload));
  };
  client_->SetHandlers(std::move(handlers));
  receiver_ = std::thread([this] { ReceiverLoop(); });
  R2F_RETURN_IF_ERROR(client_->Connect(o_.connect_timeout));
  // OnConnected has sent the subscriptions; wait for the broker's answer.
  std::unique_lock<std::mutex> l(state_mu_);
  const bool answered = state_cv_.wait_for(l, std::max(o_.connect_timeout, milliseconds(2000)),
                                           [this] { return answered_round_ >= 1; });
  if (!answered || !round_ok_) {
    return Status::Unavailable("broker " + o_.broker_uri + " did not accept the subscription to " +
                               (filters_.empty() ? std::string("nothing") : *filters_.begin()));
  }
  l.unlock();
  // The chunk size is named: a broker whose message size limit is below it drops the chunks
  // (acknowledging them at QoS 1), and the calls only time out (configs/mosquitto/r2f.conf).
  spdlog::info("transport {}: connected to {} ({} role, chunks of {} KiB)", client_id_,
               o_.broker_uri, o_.role == TransportOptions::Role::kDevice ? "device" : "server",
               o_.chunk_bytes >> 10);
  return Status::Ok();
}

void MqttSession::OnConnected() {
  {
    std::lock_guard<std::mutex> l(state_mu_);
    connected_ = true;
  }
  state_cv_.notify_all();
  Count(&TransportStats::connects);
  spdlog::debug("transport {}: connected", client_id_);
  // Paho's automatic reconnect does not restore subscriptions, and a broker that lost its state
  // (restart without persistence) forgot our session: subscribe on every connect.
  SubscribeAll();
  if (listener_) listener_->OnConnected();
}

void MqttSession::SubscribeAll() {
  std::vector<std::string> filters;
  uint64_t round;
  {
    std::lock_guard<std::mutex> l(state_mu_);
    filters.assign(filters_.begin(), filters_.end());
    round = ++subscribe_round_;
  }
  auto done = [this, round](bool ok) {
    // The listener hears of the subscription before a Connect waiting for it returns: a call
    // made right after Connect must not see the subscription as a later reconnect (the server
    // endpoint would send its request twice).
    if (ok && listener_) listener_->OnSubscribed();
    bool connected;
    {
      std::lock_guard<std::mutex> l(state_mu_);
      if (round > answered_round_) {
        answered_round_ = round;
        round_ok_ = ok;
      }
      connected = connected_;
    }
    if (!ok && connected) {
      // Refused (an ACL), or the connection broke before Paho told us so.
      spdlog::error(
          "transport {}: the broker did not accept the subscription (refused by its ACL, or "
          "the connection dropped first; every connect subscribes again)",
          client_id_);
    } else if (!ok) {
      spdlog::debug("transport {}: the subscription was lost with the connection", client_id_);
    }
    state_cv_.notify_all();
  };
  if (filters.empty()) {
    done(true);
    return;
  }
  client_->Subscribe(filters, o_.qos, done);
}

Status MqttSession::Subscribe(const std::vector<std::string>& filters,
                              std::chrono::milliseconds timeout) {
  std::vector<std::string> added;
  {
    std::lock_guard<std::mutex> l(state_mu_);
    for (const std::string& f : filters) {
      if (filters_.insert(f).second) added.push_back(f);
    }
  }
  if (added.empty()) return Status::Ok();
  auto answer = std::make_shared<std::pair<bool, bool>>(false, false);  // (answered, ok)
  client_->Subscribe(added, o_.qos, [answer, this](bool ok) {
    {
      std::lock_guard<std::mutex> l(state_mu_);
      *answer = {true, ok};
    }
    state_cv_.notify_all();
  });
  std::unique_lock<std::mutex> l(state_mu_);
  // While disconnected the filters are sent with the next connect's subscriptions.
  state_cv_.wait_for(l, timeout, [&] { return answer->first || stopping_; });
  if (answer->first && answer->second) return Status::Ok();
  if (!connected_ && !stopping_) return Status::Ok();  // restored by SubscribeAll on reconnect
  return Status::Unavailable("broker " + o_.broker_uri + " did not accept the subscription to " +
                             added.front());
}

void MqttSession::Unsubscribe(const std::vector<std::string>& filters) {
  {
    std::lock_guard<std::mutex> l(state_mu_);
    for (const std::string& f : filters) filters_.erase(f);
  }
  client_->Unsubscribe(filters);
}

void MqttSession::OnConnectionLost(const std::string& cause) {
  {
    std::lock_guard<std::mutex> l(state_mu_);
    connected_ = false;
  }
  if (!stopping_) {
    spdlog::warn("transport {}: connection lost ({}); reconnecting automatically", client_id_,
                 cause.empty() ? "no cause given" : cause);
  }
}

bool MqttSession::connected() const {
  std::lock_guard<std::mutex> l(state_mu_);
  return connected_;
}

void MqttSession::OnMessage(const std::string& topic, std::shared_ptr<const std::string> payload) {
  if (stopping_) return;
  const uint64_t size = payload->size();
  std::unique_lock<std::mutex> l(inbox_mu_);
  // Back-pressure: while the receiver is behind, the client's thread waits here and stops
  // reading the socket. The receiver never waits on the client, so this cannot deadlock; the
  // timeout only bounds the damage if the receiver is stuck.
  const bool room = inbox_space_cv_.wait_for(l, kInboxWait, [&] {
    return stopping_ || inbox_.empty() || inbox_bytes_ + size <= o_.inbox_bytes;
  });
  if (stopping_) return;
  if (!room) {
    l.unlock();
    Count(&TransportStats::dropped);
    spdlog::error("transport {}: inbox full for {} ms, dropped a message on {}", client_id_,
                  kInboxWait.count(), topic);
    return;
  }
  inbox_bytes_ += size;
  inbox_.push_back({topic, std::move(payload)});
  l.unlock();
  Count(&TransportStats::bytes_received, size);
  inbox_cv_.notify_one();
}

void MqttSession::ReceiverLoop() {
  auto next_housekeeping = Clock::now() + kHousekeepingPeriod;
  for (;;) {
    std::optional<Inbound> message;
    {
      std::unique_lock<std::mutex> l(inbox_mu_);
      inbox_cv_.wait_until(l, next_housekeeping, [this] { return stopping_ || !inbox_.empty(); });
      if (stopping_) return;
      if (!inbox_.empty()) {
        message = std::move(inbox_.front());
        inbox_.pop_front();
        inbox_bytes_ -= message->payload->size();
      }
    }
    inbox_space_cv_.notify_all();
    if (message) HandleInbound(*message);
    const auto now = Clock::now();
    if (now >= next_housekeeping) {
      Housekeeping(now);
      next_housekeeping = now + kHousekeepingPeriod;
    }
  }
}

void MqttSession::Housekeeping(Clock::time_point now) {
  listener_->OnHousekeeping(now);
  for (auto it = log_budget_.begin(); it != log_budget_.end();) {
    const bool idle = now - it->second.window_start >= std::chrono::seconds(10);
    if (idle && it->second.suppressed > 0) {
      spdlog::warn("transport {}: {} more rejections (device '{}') not logged", client_id_,
                   it->second.suppressed, it->first);
    }
    it = idle ? log_budget_.erase(it) : std::next(it);
  }
}

void MqttSession::HandleInbound(const Inbound& message) {
  std::optional<ParsedTopic> topic = ParseTopic(o_.topic_prefix, message.topic);
  uint64_t suppressed = 0;
  if (!topic) {
    Count(&TransportStats::rejected);
    if (MayLogRejection("", &suppressed)) {
      spdlog::warn("transport {}: dropped message on unexpected topic '{}'{}", client_id_,
                   message.topic, NotLogged(suppressed));
    }
    return;
  }
  Result<pb::Envelope> env = ParseEnvelope(*message.payload);
  if (!env.ok()) {
    // Nothing in it says which request it was, so there is nobody to reply to: log and drop.
    Count(&TransportStats::rejected);
    if (MayLogRejection(topic->device_id, &suppressed)) {
      spdlog::warn("transport {}: dropped message on {}: {}{}", client_id_, message.topic,
                   env.status().ToString(), NotLogged(suppressed));
    }
    return;
  }
  listener_->OnEnvelope(*topic, std::move(env).value());
}

bool MqttSession::MayLogRejection(const std::string& device, uint64_t* suppressed) {
  const auto now = Clock::now();
  LogBudget& b = log_budget_[device];
  if (now - b.window_start >= std::chrono::seconds(1)) {
    b.window_start = now;
    b.logged = 0;
  }
  if (b.logged >= kRejectionLogsPerSecond) {
    ++b.suppressed;
    Count(&TransportStats::log_suppressed);
    return false;
  }
  ++b.logged;
  *suppressed = b.suppressed;
  b.suppressed = 0;
  return true;
}

Status MqttSession::AwaitDelivery(MqttClient::Delivery& delivery, Clock::time_point deadline,
                                  const std::string& what) {
  // In slices, so that Stop() is not held up by a broker that is away.
  for (;;) {
    Result<bool> done = delivery.Wait(milliseconds(100));
    if (!done.ok()) return Status::Unavailable(what + ": " + done.status().message());
    if (*done) return Status::Ok();
    if (stopping_) return Status::Unavailable(what + ": transport stopped");
    if (Clock::now() >= deadline) {
      return Status::DeadlineExceeded(what + ": not acknowledged by the broker in time (" +
                                      (connected() ? "connected" : "disconnected") + ")");
    }
  }
}

Status MqttSession::Publish(const std::string& topic, const Message& m,
                            Clock::time_point deadline) {
  R2F_ASSIGN_OR_RETURN(Chunker chunker, Chunker::Create(m, o_.chunk_bytes));
  const uint32_t n = chunker.chunk_count();
  const uint64_t sent_ms = UnixMillis();
  // Flow control: at most publish_window chunks not yet acknowledged by the broker, so that a
  // 64 MB message neither floods the client's queue nor sits in memory three times over.
  std::deque<std::unique_ptr<MqttClient::Delivery>> window;
  auto what = [&](uint32_t i) {
    return "chunk " + std::to_string(i) + "/" + std::to_string(n) + " of " + Describe(m);
  };
  for (uint32_t i = 0; i < n; ++i) {
    while (window.size() >= o_.publish_window) {
      R2F_RETURN_IF_ERROR(AwaitDelivery(*window.front(), deadline, what(i)));
      window.pop_front();
    }
    const auto bytes = std::make_shared<const std::string>(chunker.SerializedChunk(i, sent_ms));
    for (;;) {
      if (stopping_) return Status::Unavailable(what(i) + ": transport stopped");
      Result<std::unique_ptr<MqttClient::Delivery>> d =
          client_->Publish(topic, bytes, o_.qos, /*retained=*/false);
      if (d.ok()) {
        window.push_back(std::move(d).value());
        break;
      }
      // The client's buffer is shared by all senders; when it is full, wait for it to drain.
      if (d.status().code() == Status::Code::kResourceExhausted && Clock::now() < deadline) {
        std::this_thread::sleep_for(milliseconds(10));
        continue;
      }
      return Status::Unavailable(what(i) + " on " + topic + ": " + d.status().message());
    }
    Count(&TransportStats::chunks_sent);
  }
  Count(&TransportStats::messages_sent);
  return Status::Ok();
}

Status MqttSession::PublishRetained(const std::string& topic, const std::string& bytes,
                                    milliseconds wait) {
  R2F_ASSIGN_OR_RETURN(std::unique_ptr<MqttClient::Delivery> d,
                       client_->Publish(topic, std::make_shared<const std::string>(bytes), o_.qos,
                                        /*retained=*/true));
  if (wait.count() == 0) return Status::Ok();
  Result<bool> done = d->Wait(wait);
  if (!done.ok()) return done.status();
  return *done ? Status::Ok() : Status::DeadlineExceeded("retained publish on " + topic);
}

void MqttSession::Stop() {
  {
    std::lock_guard<std::mutex> l(stop_mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  stopping_ = true;
  // Each waiter tests stopping_ under its mutex. Taking that mutex once before notifying means a
  // waiter has either seen the flag or is already blocked and gets the notification. Without it
  // a wake-up could fall between test and block and a waiter without timeout would wait forever.
  const auto wake = [](std::mutex& mu, std::condition_variable& cv) {
    { std::lock_guard<std::mutex> l(mu); }
    cv.notify_all();
  };
  wake(inbox_mu_, inbox_cv_);
  wake(inbox_mu_, inbox_space_cv_);
  wake(state_mu_, state_cv_);
  if (listener_) listener_->OnStopping();
  if (client_) client_->Disconnect(milliseconds(2000));
  if (receiver_.joinable()) receiver_.join();
  std::lock_guard<std::mutex> l(state_mu_);
  connected_ = false;
}

void MqttSession::Count(uint64_t TransportStats::*field, uint64_t n) {
  std::lock_guard<std::mutex> l(stats_mu_);
  stats_.*field += n;
}

TransportStats MqttSession::stats() const {
  std::lock_guard<std::mutex> l(stats_mu_);
  return stats_;
}

}  // namespace r2f
