// MqttClient on Eclipse Paho's asynchronous C++ client: the only file of the project that
// includes Paho. Paho reports failures as exceptions; they stay in here and become Statuses.
#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "common/base/logging.h"
#include "common/net/mqtt_client.h"
#include "common/net/reconnect_loop.h"
#include "common/net/tcp_nodelay.h"
#include "mqtt/async_client.h"

namespace r2f {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A reconnect loop (reconnect_loop.h): this many connections in a row, each lost this soon.
constexpr int kShortConnectionsInARow = 3;
constexpr milliseconds kShortConnection{500};
// One connect attempt of a replacement client; also how long stopping may wait for it.
constexpr milliseconds kRebuildConnectTimeout{5000};

// MQTT 3.1.1 CONNACK refusals that retrying cannot fix (3, "server unavailable", can pass).
const char* LoginRefusal(int connack_code) {
  switch (connack_code) {
    case 1:
      return "unacceptable protocol version";
    case 2:
      return "client id rejected";
    case 4:
      return "bad user name or password";
    case 5:
      return "not authorised (wrong user name or password, or a user the broker does not know)";
    default:
      return nullptr;
  }
}

bool IsTlsUri(const std::string& uri) {
  return uri.rfind("ssl://", 0) == 0 || uri.rfind("mqtts://", 0) == 0 ||
         uri.rfind("wss://", 0) == 0;
}

std::string Milliseconds(milliseconds ms) { return std::to_string(ms.count()) + " ms"; }

class PahoDelivery : public MqttClient::Delivery {
 public:
  explicit PahoDelivery(mqtt::delivery_token_ptr token) : token_(std::move(token)) {}
  Result<bool> Wait(milliseconds timeout) override {
    try {
      return token_->wait_for(timeout);
    } catch (const mqtt::exception& e) {
      return Status::Unavailable(e.what());
    }
  }

 private:
  mqtt::delivery_token_ptr token_;
};

// Paho calls this when a subscribe completes, on its own thread. Only the answers for the
// current client are passed on: a replaced client fails its pending subscriptions when it is
// destroyed, and that is not the broker's answer.
class SubscribeListener : public mqtt::iaction_listener {
 public:
  SubscribeListener(std::function<void(bool)> done, std::function<bool()> current)
      : done_(std::move(done)), current_(std::move(current)) {}
  void on_success(const mqtt::token&) override { Finish(true); }
  void on_failure(const mqtt::token&) override { Finish(false); }

 private:
  void Finish(bool ok) {
    if (done_ && current_()) done_(ok);
  }
  std::function<void(bool)> done_;
  std::function<bool()> current_;
};

class PahoMqttClient : public MqttClient {
 public:
  explicit PahoMqttClient(MqttClientOptions o) : o_(std::move(o)) {}

  ~PahoMqttClient() override {
    StopRebuilding();
    // Silenced and destroyed before the listeners their callbacks may still reference; not
    // disconnected: a daemon that did not Stop() its transport leaves its last will.
    Silence(Swap(nullptr));
  }

  Status Init();
  void SetHandlers(Handlers handlers) override { handlers_ = std::move(handlers); }
  Status Connect(milliseconds timeout) override;
  Result<std::unique_ptr<Delivery>> Publish(const std::string& topic,
                                            std::shared_ptr<const std::string> payload, int qos,
                                            bool retained) override;
  void Subscribe(const std::vector<std::string>& filters, int qos,
                 std::function<void(bool)> done) override;
  void Unsubscribe(const std::vector<std::string>& filters) override;
  void Disconnect(milliseconds timeout) override;
  bool IsConnected() const override {
    std::shared_ptr<mqtt::async_client> cli = Client();
    return cli && cli->is_connected();
  }

 private:
  // A new Paho client with our callbacks; the current one is not touched.
  Result<std::shared_ptr<mqtt::async_client>> NewClient();
  std::shared_ptr<mqtt::async_client> Client() const {
    std::lock_guard<std::mutex> l(cli_mu_);
    return cli_;
  }
  std::shared_ptr<mqtt::async_client> Swap(std::shared_ptr<mqtt::async_client> next) {
    std::lock_guard<std::mutex> l(cli_mu_);
    std::swap(cli_, next);
    return next;
  }
  // Whether `cli` is the current client: callbacks of a replaced one are ignored (Paho may
  // still deliver one while it is being replaced).
  // No copy of the pointer is made: a copy could be the last reference, and a Paho client
  // must not be destroyed on Paho's own thread.
  bool IsCurrent(const mqtt::async_client* cli) const {
    std::lock_guard<std::mutex> l(cli_mu_);
    return cli_.get() == cli;
  }
  // Asks `cli` for no more callbacks. Destroying it (its last reference) is what ends its
  // automatic reconnect and drops what it had buffered; Paho serialises that with its
  // callbacks, so it is safe from any thread but Paho's own.
  static void Silence(const std::shared_ptr<mqtt::async_client>& cli);
  // Paho's thread: a lost connection; asks for a new client when it ends a reconnect loop.
  void OnConnectionLost(const std::string& cause);
  void RebuildLoop();
  void Rebuild();
  // Ends the rebuilder thread, waiting for a rebuild under way (at most one connect attempt).
  void StopRebuilding();
  void SetTls();
  std::string TakeTlsError();
  // The error of a failed connect attempt; `final` when retrying cannot help.
  Status ConnectError(const mqtt::exception& e, bool* final);

  MqttClientOptions o_;
  bool tls_ = false;
  Handlers handlers_;
  mutable std::mutex cli_mu_;
  std::shared_ptr<mqtt::async_client> cli_;  // replaced by Rebuild, Disconnect and the end
  mqtt::connect_options conn_opts_;  // Connect sets its timeout: the first connect, then rebuilds
  std::vector<uint16_t> ports_;
  ReconnectLoopDetector loop_{kShortConnection, kShortConnectionsInARow};
  std::mutex rebuild_mu_;
  std::condition_variable rebuild_cv_;
  bool rebuild_wanted_ = false, stop_rebuilding_ = false;
  std::thread rebuilder_;
  std::mutex listeners_mu_;
  std::vector<std::unique_ptr<SubscribeListener>> listeners_;  // live as long as the client
  std::mutex tls_error_mu_;
  std::string last_tls_error_;  // Paho's thread writes, Connect reads
};

Status PahoMqttClient::Init() {
  if (o_.uris.empty()) return Status::InvalidArgument("no broker URI given");
  conn_opts_.set_clean_session(o_.clean_session);
  conn_opts_.set_keep_alive_interval(o_.keep_alive);
  conn_opts_.set_automatic_reconnect(o_.reconnect_min, o_.reconnect_max);
  if (o_.uris.size() > 1) {
    // Paho tries the servers in order, on the first connect and on every reconnect.
    conn_opts_.set_servers(std::make_shared<mqtt::string_collection>(o_.uris));
  }
  if (!o_.username.empty()) conn_opts_.set_user_name(o_.username);
  if (!o_.password.empty()) conn_opts_.set_password(o_.password);
  tls_ = std::any_of(o_.uris.begin(), o_.uris.end(), IsTlsUri);
  if (tls_ || !o_.ca_file.empty() || !o_.cert_file.empty() || !o_.key_file.empty()) SetTls();
  if (o_.will) {
    conn_opts_.set_will(mqtt::will_options(o_.will->topic, o_.will->payload.data(),
                                           o_.will->payload.size(), o_.will->qos,
                                           o_.will->retained));
  }
  for (const std::string& uri : o_.uris) ports_.push_back(BrokerPort(uri));
  R2F_ASSIGN_OR_RETURN(std::shared_ptr<mqtt::async_client> cli, NewClient());
  Swap(std::move(cli));
  rebuilder_ = std::thread([this] { RebuildLoop(); });
  return Status::Ok();
}

Result<std::shared_ptr<mqtt::async_client>> PahoMqttClient::NewClient() {
  // Publishes made while the connection is down are buffered by Paho (in memory) and sent on
  // reconnect; QoS-1 messages in flight are resent because the session is persistent.
  mqtt::create_options copts;
  copts.set_send_while_disconnected(true, /*anyTime=*/false);
  copts.set_max_buffered_messages(o_.max_buffered_messages);
  copts.set_delete_oldest_messages(false);
  std::shared_ptr<mqtt::async_client> cli;
  try {
    cli = std::make_shared<mqtt::async_client>(o_.uris.front(), o_.client_id, copts, nullptr);
  } catch (const mqtt::exception& e) {
    return Status::InvalidArgument("cannot create MQTT client for '" + o_.uris.front() +
                                   "': " + e.what());
  }
  const mqtt::async_client* raw = cli.get();
  cli->set_connected_handler([this, raw](const std::string&) {
    if (!IsCurrent(raw)) return;
    DisableNagleTowards(ports_);  // before anything is sent on the new connection
    loop_.OnConnected(Clock::now());
    if (handlers_.connected) handlers_.connected();
  });
  cli->set_connection_lost_handler([this, raw](const std::string& cause) {
    if (IsCurrent(raw)) OnConnectionLost(cause);
  });
  cli->set_message_callback([this, raw](mqtt::const_message_ptr m) {
    if (m && handlers_.message && IsCurrent(raw)) {
      const mqtt::binary_ref& payload = m->get_payload_ref();
      handlers_.message(m->get_topic(),
                        payload ? payload.ptr() : std::make_shared<const std::string>());
    }
  });
  return cli;
}

void PahoMqttClient::Silence(const std::shared_ptr<mqtt::async_client>& cli) {
  if (!cli) return;
  try {
    cli->disable_callbacks();
  } catch (const mqtt::exception&) {
    // Only fails if the C client is already gone; nothing left to disable.
  }
}

void PahoMqttClient::OnConnectionLost(const std::string& cause) {
  if (handlers_.connection_lost) handlers_.connection_lost(cause);
  if (!loop_.OnLost(Clock::now())) return;
  {
    std::lock_guard<std::mutex> l(rebuild_mu_);
    rebuild_wanted_ = true;
  }
  rebuild_cv_.notify_all();
}

void PahoMqttClient::RebuildLoop() {
  std::unique_lock<std::mutex> l(rebuild_mu_);
  for (;;) {
    rebuild_cv_.wait(l, [this] { return rebuild_wanted_ || stop_rebuilding_; });
    if (stop_rebuilding_) return;
    rebuild_wanted_ = false;
    l.unlock();
    Rebuild();
    l.lock();
  }
}

// Paho keeps an unacknowledged QoS-1 packet and resends it after every reconnect; when the
// broker closes the connection on that packet, nothing but a client without it ends the loop.
// What the old client had not delivered is dropped with it: a server resends its requests
// until answered, and a device answers a resent request from its reply cache.
void PahoMqttClient::Rebuild() {
  auto log = GetLogger("mqtt");
  log->warn(
      "MQTT client '{}': {} connections in a row were closed within {} ms of being made (the "
      "broker refuses what the client resends, which Mosquitto logs as 'malformed packet', or "
      "another client uses this id): replacing the client, and dropping the messages it had "
      "not delivered",
      o_.client_id, kShortConnectionsInARow, kShortConnection.count());
  Result<std::shared_ptr<mqtt::async_client>> fresh = NewClient();
  if (!fresh.ok()) {
    log->error("MQTT client '{}': cannot replace the client: {}", o_.client_id,
               fresh.status().ToString());
    return;
  }
  // The old client goes before the new one connects: two clients with one id would take the
  // connection from each other. It is destroyed here, never on Paho's thread: a subscribe
  // running there may still hold it for a moment.
  std::shared_ptr<mqtt::async_client> old = Swap(*fresh);
  Silence(old);
  for (int waited_ms = 0; old.use_count() > 1 && waited_ms < 2000; ++waited_ms) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  old.reset();
  std::unique_lock<std::mutex> l(rebuild_mu_);
  milliseconds backoff{100};
  while (!stop_rebuilding_) {
    l.unlock();
    // Paho's automatic reconnect may have connected it after a failed attempt.
    if ((*fresh)->is_connected()) return;
    const Status connected = Connect(kRebuildConnectTimeout);
    if (connected.ok()) {
      log->info("MQTT client '{}': replaced and connected", o_.client_id);
      return;
    }
    log->debug("MQTT client '{}': the new client's connect failed: {}", o_.client_id,
               connected.ToString());
    l.lock();
    rebuild_cv_.wait_for(l, backoff, [this] { return stop_rebuilding_; });
    backoff = std::min<milliseconds>(backoff * 2, o_.reconnect_max);
  }
}

void PahoMqttClient::StopRebuilding() {
  {
    std::lock_guard<std::mutex> l(rebuild_mu_);
    stop_rebuilding_ = true;
  }
  rebuild_cv_.notify_all();
  if (rebuilder_.joinable()) rebuilder_.join();
}

void PahoMqttClient::SetTls() {
  mqtt::ssl_options ssl;
  if (!o_.ca_file.empty()) ssl.set_trust_store(o_.ca_file);
  if (!o_.cert_file.empty()) ssl.set_key_store(o_.cert_file);
  if (!o_.key_file.empty()) ssl.set_private_key(o_.key_file);
  ssl.set_enable_server_cert_auth(true);
  ssl.set_verify(o_.tls_verify_hostname);
  // Paho's thread: only remember the text, so that a failed connect can say why.
  ssl.set_error_handler([this](const std::string& error) {
    std::lock_guard<std::mutex> l(tls_error_mu_);
    last_tls_error_ = error;
    while (!last_tls_error_.empty() &&
           std::isspace(static_cast<unsigned char>(last_tls_error_.back()))) {
      last_tls_error_.pop_back();
    }
  });
  conn_opts_.set_ssl(std::move(ssl));
}

std::string PahoMqttClient::TakeTlsError() {
  std::lock_guard<std::mutex> l(tls_error_mu_);
  std::string error;
  error.swap(last_tls_error_);
  return error;
}

Status PahoMqttClient::ConnectError(const mqtt::exception& e, bool* final) {
  const std::string who =
      "'" + o_.client_id + "'" + (o_.username.empty() ? "" : " (user '" + o_.username + "')");
  if (const char* refusal = LoginRefusal(e.get_return_code())) {
    // The broker answered and said no: retrying with the same credentials cannot help.
    *final = true;
    return Status::InvalidArgument("broker " + o_.uris.front() + " refused the login of " + who +
                                   ": " + refusal + " (CONNACK " +
                                   std::to_string(e.get_return_code()) + ")" + o_.login_hint);
  }
  const std::string tls_error = TakeTlsError();
  if (tls_error.find("certificate verify failed") != std::string::npos) {
    // The broker's certificate is not signed by a CA we trust: not a passing condition.
    *final = true;
    return Status::InvalidArgument("cannot connect to " + o_.uris.front() + " as " + who +
                                   ": the broker's TLS certificate is not trusted (" +
                                   (o_.ca_file.empty()
                                        ? "no broker.ca_file given, the system's CAs were used"
                                        : "ca_file '" + o_.ca_file + "'") +
                                   "): " + tls_error);
  }
  return Status::Unavailable(std::string(e.what()) +
                             (tls_error.empty() ? "" : ": TLS: " + tls_error));
}

Status PahoMqttClient::Connect(milliseconds timeout) {
  // Paho's own connect timeout, per attempt; our loop below bounds the whole.
  conn_opts_.set_connect_timeout(std::max<int>(
      1, static_cast<int>(std::chrono::duration_cast<std::chrono::seconds>(timeout).count())));
  // The first connect is ours to retry: Paho's automatic reconnect only covers lost connections.
  const auto deadline = Clock::now() + timeout;
  milliseconds backoff{100};
  const std::string who =
      "'" + o_.client_id + "'" + (o_.username.empty() ? "" : " (user '" + o_.username + "')");
  for (;;) {
    Status attempt;
    TakeTlsError();
    try {
      mqtt::token_ptr tok = Client()->connect(conn_opts_);
      // Paho fails the token itself after its connect timeout; the slack only guards against a
      // token that never completes.
      if (tok->wait_until(deadline + std::chrono::seconds(2))) return Status::Ok();
      attempt = Status::DeadlineExceeded("connect not answered");
    } catch (const mqtt::exception& e) {
      bool final = false;
      attempt = ConnectError(e, &final);
      if (final) return attempt;
    }
    if (Clock::now() + backoff >= deadline || attempt.code() == Status::Code::kDeadlineExceeded) {
      std::string hint;
      if (tls_ && o_.tls_verify_hostname) {
        hint =
            " (with TLS also check that the broker's certificate names the host of the URI, "
            "or set broker.verify_hostname: false)";
      }
      std::string where = o_.uris.front();
      for (size_t i = 1; i < o_.uris.size(); ++i) where += ", " + o_.uris[i];
      return Status::Unavailable("cannot connect to " + where + " as " + who + " within " +
                                 Milliseconds(timeout) + ": " + attempt.message() + hint);
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, milliseconds(1000));
  }
}

Result<std::unique_ptr<MqttClient::Delivery>> PahoMqttClient::Publish(
    const std::string& topic, std::shared_ptr<const std::string> payload, int qos, bool retained) {
  try {
    // A binary_ref shares the payload: Paho C copies it once into its own buffer, and the C++
    // layer makes no copy of its own (as it does for a pointer and a length).
    return std::unique_ptr<Delivery>(new PahoDelivery(
        Client()->publish(topic, mqtt::binary_ref(std::move(payload)), qos, retained)));
  } catch (const mqtt::exception& e) {
    if (e.get_return_code() == MQTTASYNC_MAX_BUFFERED_MESSAGES) {
      return Status::ResourceExhausted("Paho's outgoing buffer is full");
    }
    return Status::Unavailable(e.what());
  }
}

void PahoMqttClient::Subscribe(const std::vector<std::string>& filters, int qos,
                               std::function<void(bool ok)> done) {
  std::shared_ptr<mqtt::async_client> cli = Client();
  SubscribeListener* listener;
  {
    std::lock_guard<std::mutex> l(listeners_mu_);
    listeners_.push_back(std::make_unique<SubscribeListener>(
        done, [this, raw = cli.get()] { return IsCurrent(raw); }));
    listener = listeners_.back().get();  // Paho keeps a reference: never freed before the client
  }
  try {
    auto topics = std::make_shared<mqtt::string_collection>(filters);
    cli->subscribe(topics, mqtt::iasync_client::qos_collection(filters.size(), qos), nullptr,
                   *listener);
  } catch (const mqtt::exception&) {
    if (done) done(false);
  }
}

void PahoMqttClient::Unsubscribe(const std::vector<std::string>& filters) {
  try {
    Client()->unsubscribe(std::make_shared<mqtt::string_collection>(filters));
  } catch (const mqtt::exception&) {
    // Not connected: the broker forgets non-persistent state itself, and the filters are no
    // longer restored on reconnect.
  }
}

void PahoMqttClient::Disconnect(milliseconds timeout) {
  StopRebuilding();  // a disconnected client is not replaced any more
  std::shared_ptr<mqtt::async_client> cli = Client();
  if (!cli->is_connected()) {
    // A reconnect (Paho's, or the rebuild's) may be under way and would connect after the
    // stop: a client that never connects takes this one's place, and this one is destroyed.
    Result<std::shared_ptr<mqtt::async_client>> idle = NewClient();
    if (idle.ok()) {
      Silence(Swap(*idle));
      return;
    }
  }
  try {
    cli->disconnect(mqtt::disconnect_options(static_cast<int>(timeout.count())))
        ->wait_for(timeout + milliseconds(3000));
  } catch (const mqtt::exception&) {
    // Already disconnected (broker gone): Paho has stopped reconnecting all the same.
  }
}

}  // namespace

Result<std::unique_ptr<MqttClient>> NewPahoMqttClient(MqttClientOptions options) {
  auto client = std::make_unique<PahoMqttClient>(std::move(options));
  R2F_RETURN_IF_ERROR(client->Init());
  return std::unique_ptr<MqttClient>(std::move(client));
}

}  // namespace r2f
