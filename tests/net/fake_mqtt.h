// An in-process MQTT broker behind the MqttClient seam (common/net/mqtt_client.h), for unit
// tests of the transport's logic without a broker process: topic filters with + and #, retained
// messages, last wills, persistent and clean sessions, and faults on demand (drop the next
// publishes on a topic, cut a client's connection).
//
// Like a real client library, every event (connected, subscription answered, message) reaches
// a client on the broker's own delivery thread, in publish order, never on the caller's thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/net/mqtt_client.h"

namespace r2f::testing {

// MQTT topic filter matching ('+' one level, '#' the rest).
inline bool TopicMatches(const std::string& filter, const std::string& topic) {
  size_t f = 0, t = 0;
  while (f < filter.size()) {
    const size_t f_end = std::min(filter.find('/', f), filter.size());
    const std::string level = filter.substr(f, f_end - f);
    if (level == "#") return true;
    if (t > topic.size()) return false;
    const size_t t_end = std::min(topic.find('/', t), topic.size());
    if (level != "+" && level != topic.substr(t, t_end - t)) return false;
    f = f_end + 1;
    t = t_end + 1;
  }
  return t > topic.size();
}

class FakeBroker {
 public:
  FakeBroker() : thread_([this] { Run(); }) {}
  ~FakeBroker() {
    for (std::thread& t : reconnects_) t.join();
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  FakeBroker(const FakeBroker&) = delete;
  FakeBroker& operator=(const FakeBroker&) = delete;

  // A client of this broker (the broker must outlive it).
  std::unique_ptr<MqttClient> NewClient(const std::string& client_id, bool clean_session,
                                        std::optional<MqttClientOptions::Will> will = {});

  // The next `n` publishes on topics matching `filter` are lost (acknowledged, not delivered).
  void DropNext(const std::string& filter, int n) {
    std::lock_guard<std::mutex> l(mu_);
    drops_[filter] += n;
  }
  // Cuts `client_id`'s connection (its last will goes out) and reconnects it after `after`.
  void CutConnection(const std::string& client_id, std::chrono::milliseconds after);
  // Payload bytes delivered to `client_id` on topics matching `filter` so far.
  uint64_t BytesDelivered(const std::string& client_id, const std::string& filter) {
    std::lock_guard<std::mutex> l(mu_);
    uint64_t n = 0;
    for (const auto& [key, bytes] : delivered_) {
      if (key.first == client_id && TopicMatches(filter, key.second)) n += bytes;
    }
    return n;
  }
  // Publishes on the broker's behalf (a peer that is not a MqttClient: garbage, a stale status).
  void Inject(const std::string& topic, const std::string& payload, bool retained = false) {
    std::lock_guard<std::mutex> l(mu_);
    RouteLocked(topic, payload, retained);
  }

  // Topics of every publish, in the order the broker received them.
  std::vector<std::string> Published() {
    std::lock_guard<std::mutex> l(mu_);
    return published_;
  }

  // --- for FakeClient ---
  struct Session {
    MqttClient::Handlers handlers;
    bool clean = false;
    bool connected = false;
    std::optional<MqttClientOptions::Will> will;
    std::set<std::string> filters;
    std::deque<std::pair<std::string, std::string>> queued;  // while away (persistent session)
  };
  void Attach(const std::string& id, MqttClient::Handlers handlers, bool clean,
              std::optional<MqttClientOptions::Will> will) {
    std::lock_guard<std::mutex> l(mu_);
    Session& s = sessions_[id];
    s.handlers = std::move(handlers);
    s.clean = clean;
    s.will = std::move(will);
  }
  void Connect(const std::string& id) {
    std::lock_guard<std::mutex> l(mu_);
    ConnectLocked(id);
  }
  void Subscribe(const std::string& id, const std::vector<std::string>& filters,
                 std::function<void(bool)> done) {
    std::lock_guard<std::mutex> l(mu_);
    Session& s = sessions_[id];
    for (const std::string& f : filters) s.filters.insert(f);
    PostLocked(id, [done] {
      if (done) done(true);
    });
    for (const auto& [topic, payload] : retained_) {
      for (const std::string& f : filters) {
        if (TopicMatches(f, topic)) {
          DeliverLocked(id, topic, payload);
          break;
        }
      }
    }
  }
  void Unsubscribe(const std::string& id, const std::vector<std::string>& filters) {
    std::lock_guard<std::mutex> l(mu_);
    for (const std::string& f : filters) sessions_[id].filters.erase(f);
  }
  void Publish(const std::string& topic, const std::string& payload, bool retained) {
    std::lock_guard<std::mutex> l(mu_);
    published_.push_back(topic);
    for (auto& [filter, n] : drops_) {
      if (n > 0 && TopicMatches(filter, topic)) {
        --n;
        return;
      }
    }
    RouteLocked(topic, payload, retained);
  }
  void Disconnect(const std::string& id) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    it->second.connected = false;
    if (it->second.clean) it->second.filters.clear();
  }
  // The client is going away: no event for it runs after this returns.
  void Detach(const std::string& id) {
    std::unique_lock<std::mutex> l(mu_);
    sessions_.erase(id);
    for (auto it = events_.begin(); it != events_.end();) {
      it = it->first == id ? events_.erase(it) : std::next(it);
    }
    cv_.wait(l, [&] { return running_ != id; });
  }
  bool IsConnected(const std::string& id) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = sessions_.find(id);
    return it != sessions_.end() && it->second.connected;
  }

 private:
  void ConnectLocked(const std::string& id) {
    Session& s = sessions_[id];
    s.connected = true;
    PostLocked(id, [this, id] {
      MqttClient::Handlers h;
      {
        std::lock_guard<std::mutex> l(mu_);
        h = sessions_[id].handlers;
      }
      if (h.connected) h.connected();
    });
    while (!s.queued.empty()) {
      DeliverLocked(id, s.queued.front().first, s.queued.front().second);
      s.queued.pop_front();
    }
  }
  void RouteLocked(const std::string& topic, const std::string& payload, bool retained) {
    if (retained) retained_[topic] = payload;
    for (auto& [id, s] : sessions_) {
      bool match = false;
      for (const std::string& f : s.filters) match = match || TopicMatches(f, topic);
      if (!match) continue;
      if (s.connected) {
        DeliverLocked(id, topic, payload);
      } else if (!s.clean) {
        s.queued.emplace_back(topic, payload);
      }
    }
  }
  void DeliverLocked(const std::string& id, const std::string& topic, const std::string& payload) {
    delivered_[{id, topic}] += payload.size();
    PostLocked(id, [this, id, topic, payload] {
      MqttClient::Handlers h;
      {
        std::lock_guard<std::mutex> l(mu_);
        h = sessions_[id].handlers;
      }
      if (h.message) h.message(topic, std::make_shared<const std::string>(payload));
    });
  }
  void PostLocked(const std::string& id, std::function<void()> event) {
    events_.emplace_back(id, std::move(event));
    cv_.notify_all();
  }
  void Run() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      cv_.wait(l, [&] { return stop_ || !events_.empty(); });
      if (stop_) return;
      auto [id, event] = std::move(events_.front());
      events_.pop_front();
      running_ = id;
      l.unlock();
      event();
      l.lock();
      running_.clear();
      cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<std::string, Session> sessions_;
  std::map<std::string, std::string> retained_;
  std::map<std::string, int> drops_;
  std::vector<std::string> published_;
  std::map<std::pair<std::string, std::string>, uint64_t> delivered_;
  std::deque<std::pair<std::string, std::function<void()>>> events_;
  std::string running_;
  std::vector<std::thread> reconnects_;  // CutConnection's, joined by the destructor
  std::thread thread_;
};

class FakeMqttClient : public MqttClient {
 public:
  FakeMqttClient(FakeBroker* broker, std::string id, bool clean,
                 std::optional<MqttClientOptions::Will> will)
      : broker_(broker), id_(std::move(id)), clean_(clean), will_(std::move(will)) {}
  ~FakeMqttClient() override { broker_->Detach(id_); }

  void SetHandlers(Handlers handlers) override {
    broker_->Attach(id_, std::move(handlers), clean_, will_);
  }
  Status Connect(std::chrono::milliseconds) override {
    broker_->Connect(id_);
    return Status::Ok();
  }
  Result<std::unique_ptr<Delivery>> Publish(const std::string& topic,
                                            std::shared_ptr<const std::string> payload, int,
                                            bool retained) override {
    broker_->Publish(topic, *payload, retained);
    return std::unique_ptr<Delivery>(new Done);
  }
  void Subscribe(const std::vector<std::string>& filters, int,
                 std::function<void(bool)> done) override {
    broker_->Subscribe(id_, filters, std::move(done));
  }
  void Unsubscribe(const std::vector<std::string>& filters) override {
    broker_->Unsubscribe(id_, filters);
  }
  void Disconnect(std::chrono::milliseconds) override { broker_->Disconnect(id_); }
  bool IsConnected() const override { return broker_->IsConnected(id_); }

 private:
  struct Done : Delivery {
    Result<bool> Wait(std::chrono::milliseconds) override { return true; }
  };
  FakeBroker* broker_;
  std::string id_;
  bool clean_;
  std::optional<MqttClientOptions::Will> will_;
};

inline std::unique_ptr<MqttClient> FakeBroker::NewClient(
    const std::string& client_id, bool clean_session, std::optional<MqttClientOptions::Will> will) {
  return std::make_unique<FakeMqttClient>(this, client_id, clean_session, std::move(will));
}

inline void FakeBroker::CutConnection(const std::string& client_id,
                                      std::chrono::milliseconds after) {
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = sessions_.find(client_id);
    if (it == sessions_.end() || !it->second.connected) return;
    Session& s = it->second;
    s.connected = false;
    if (s.clean) s.filters.clear();
    if (s.will) RouteLocked(s.will->topic, s.will->payload, s.will->retained);
    PostLocked(client_id, [this, client_id] {
      MqttClient::Handlers h;
      {
        std::lock_guard<std::mutex> l(mu_);
        h = sessions_[client_id].handlers;
      }
      if (h.connection_lost) h.connection_lost("cut by the test");
    });
  }
  // The client library's automatic reconnect.
  reconnects_.emplace_back([this, client_id, after] {
    std::this_thread::sleep_for(after);
    std::lock_guard<std::mutex> l(mu_);
    if (sessions_.count(client_id)) ConnectLocked(client_id);
  });
}

}  // namespace r2f::testing
