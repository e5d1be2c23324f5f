// Transport: an MqttSession with the endpoint of its role (common/net/server_endpoint.h,
// common/net/device_endpoint.h).
#include "common/net/transport.h"

#include <unistd.h>

#include <google/protobuf/stubs/logging.h>
#include <spdlog/spdlog.h>

#include <mutex>
#include <random>

#include "common/net/device_endpoint.h"
#include "common/net/mqtt_session.h"
#include "common/net/server_endpoint.h"

namespace r2f {
namespace {

std::string Hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

// libprotobuf logs an ERROR line on stderr for every message it refuses to parse (a string field
// that is not UTF-8, ...), which would let any peer flood the log past our throttling. Our
// parsers report those failures as a Status already, so the library's lines go to debug level.
void ProtobufLog(google::protobuf::LogLevel level, const char* file, int line,
                 const std::string& message) {
  if (level == google::protobuf::LOGLEVEL_FATAL) {
    spdlog::critical("protobuf {}:{}: {}", file, line, message);
  } else {
    spdlog::debug("protobuf {}:{}: {}", file, line, message);
  }
}

void RouteProtobufLogs() {
  static std::once_flag once;
  std::call_once(once, [] { google::protobuf::SetLogHandler(&ProtobufLog); });
}

Status ValidateOptions(const TransportOptions& o) {
  if (o.role == TransportOptions::Role::kDevice) {
    R2F_RETURN_IF_ERROR(ValidateDeviceId(o.device_id).WithContext("device role"));
  }
  if (o.topic_prefix.empty() || o.topic_prefix.find_first_of("+#") != std::string::npos ||
      o.topic_prefix.back() == '/') {
    return Status::InvalidArgument("topic_prefix '" + o.topic_prefix +
                                   "' must be non-empty, without wildcards or a trailing '/'");
  }
  if (o.qos < 0 || o.qos > 2) return Status::InvalidArgument("qos must be 0, 1 or 2");
  if (o.chunk_bytes == 0) return Status::InvalidArgument("chunk_bytes must be > 0");
  if (o.publish_window == 0) return Status::InvalidArgument("publish_window must be > 0");
  if (o.max_buffered_messages < static_cast<int>(o.publish_window)) {
    return Status::InvalidArgument("max_buffered_messages must be >= publish_window");
  }
  if (o.reconnect_min.count() < 1 || o.reconnect_max < o.reconnect_min) {
    return Status::InvalidArgument("reconnect backoff needs 1 s <= min <= max");
  }
  return Status::Ok();
}

}  // namespace

std::string DefaultClientId(const TransportOptions& o) {
  if (o.role == TransportOptions::Role::kDevice) return "r2f-dev-" + o.device_id;
  // Unique per process: two servers on one host must not take each other's connection.
  std::random_device rd;
  char suffix[9];
  std::snprintf(suffix, sizeof suffix, "%08x", rd());
  return "r2f-server-" + Hostname() + "-" + std::to_string(getpid()) + "-" + suffix;
}

std::vector<std::string> SplitBrokerUris(const std::string& uris) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= uris.size()) {
    size_t end = uris.find(',', start);
    if (end == std::string::npos) end = uris.size();
    std::string uri = uris.substr(start, end - start);
    while (!uri.empty() && uri.front() == ' ') uri.erase(uri.begin());
    while (!uri.empty() && uri.back() == ' ') uri.pop_back();
    if (!uri.empty()) out.push_back(uri);
    start = end + 1;
  }
  return out;
}

struct Transport::Parts {
  // The session calls into the endpoint until it has stopped (also when Connect fails half-way).
  ~Parts() {
    if (session) session->Stop();
    if (device) device->Join();
  }
  std::unique_ptr<MqttSession> session;
  std::unique_ptr<ServerEndpoint> server;  // one of the two, by role
  std::unique_ptr<DeviceEndpoint> device;
};

Result<std::unique_ptr<Transport>> Transport::Connect(TransportOptions options) {
  R2F_RETURN_IF_ERROR(ValidateOptions(options));
  const bool device = options.role == TransportOptions::Role::kDevice;
  MqttClientOptions c;
  c.uris = SplitBrokerUris(options.broker_uri);
  c.client_id = options.client_id.empty() ? DefaultClientId(options) : options.client_id;
  c.username = options.username;
  c.password = options.password;
  c.ca_file = options.ca_file;
  c.cert_file = options.cert_file;
  c.key_file = options.key_file;
  c.tls_verify_hostname = options.tls_verify_hostname;
  // A device keeps its session: requests sent while it is away wait at the broker. A server's
  // session is clean: nothing piles up at the broker for a server that died, and a reconnected
  // server asks its devices again (their reply caches answer).
  c.clean_session = !device || !options.persistent_session;
  c.keep_alive = options.keep_alive;
  c.reconnect_min = options.reconnect_min;
  c.reconnect_max = options.reconnect_max;
  c.max_buffered_messages = options.max_buffered_messages;
  if (device) {
    R2F_ASSIGN_OR_RETURN(
        std::string offline,
        DeviceEndpoint::StatusEnvelope(options.device_id, kStatusOffline, options.chunk_bytes));
    c.will = MqttClientOptions::Will{
        DeviceTopic(options.topic_prefix, options.device_id, TopicLeaf::kStatus), offline,
        options.qos, /*retained=*/true};
    if (options.username != options.device_id) {
      c.login_hint = "; with configs/mosquitto/acl a device logs in with its device id '" +
                     options.device_id + "' as user name";
    }
  }
  R2F_ASSIGN_OR_RETURN(std::unique_ptr<MqttClient> client, NewPahoMqttClient(std::move(c)));
  return Connect(std::move(options), std::move(client));
}

Result<std::unique_ptr<Transport>> Transport::Connect(TransportOptions options,
                                                      std::unique_ptr<MqttClient> client) {
  R2F_RETURN_IF_ERROR(ValidateOptions(options));
  RouteProtobufLogs();
  if (options.client_id.empty()) options.client_id = DefaultClientId(options);
  auto parts = std::make_unique<Parts>();
  const std::string client_id = options.client_id;
  parts->session = std::make_unique<MqttSession>(std::move(options), client_id, std::move(client));
  MqttSession* session = parts->session.get();
  if (session->options().role == TransportOptions::Role::kDevice) {
    parts->device = std::make_unique<DeviceEndpoint>(session);
    R2F_RETURN_IF_ERROR(session->Start(parts->device.get(), parts->device->InitialFilters()));
  } else {
    parts->server = std::make_unique<ServerEndpoint>(session);
    R2F_RETURN_IF_ERROR(session->Start(parts->server.get(), parts->server->InitialFilters()));
  }
  return std::unique_ptr<Transport>(new Transport(std::move(parts)));
}

Transport::Transport(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

Transport::~Transport() { Stop(); }

void Transport::Stop() {
  parts_->session->Stop();
  if (parts_->device) parts_->device->Join();
}

Result<Message> Transport::Call(const std::string& device_id, Message request,
                                std::chrono::milliseconds timeout, int attempts,
                                const std::function<void()>& on_sent) {
  if (!parts_->server) return Status::InvalidArgument("Call needs the server role");
  return parts_->server->Call(device_id, std::move(request), timeout, attempts, on_sent);
}

Status Transport::Watch(const std::string& device_id) {
  if (!parts_->server) return Status::InvalidArgument("Watch needs the server role");
  return parts_->server->Watch(device_id, options().connect_timeout);
}

void Transport::Unwatch(const std::string& device_id) {
  if (parts_->server) parts_->server->Unwatch(device_id);
}

Result<std::string> Transport::DeviceStatus(const std::string& device_id) const {
  if (!parts_->server) return Status::InvalidArgument("DeviceStatus needs the server role");
  return parts_->server->DeviceStatus(device_id);
}

std::map<std::string, std::string> Transport::DeviceStatuses() const {
  return parts_->server ? parts_->server->DeviceStatuses() : std::map<std::string, std::string>{};
}

uint64_t Transport::NewRequestId() { return parts_->server ? parts_->server->NewRequestId() : 0; }

Status Transport::Serve(Handler handler) {
  if (!parts_->device) return Status::InvalidArgument("Serve needs the device role");
  return parts_->device->Serve(std::move(handler));
}

bool Transport::connected() const { return parts_->session->connected(); }
TransportStats Transport::stats() const { return parts_->session->stats(); }
const TransportOptions& Transport::options() const { return parts_->session->options(); }
const std::string& Transport::client_id() const { return parts_->session->client_id(); }

}  // namespace r2f
