// The seam between the R2F transport and an MQTT client library: the few operations the
// transport needs (connect, publish, subscribe, disconnect) and the three events it reacts to
// (connected, connection lost, message). Eclipse Paho implements it (common/net/paho_client.cc);
// the unit tests put an in-process broker behind it (tests/net/fake_mqtt.h), so that routing,
// retries, the reply cache and error replies are tested without a broker process.
//
// Threads: the event handlers run on the client library's own thread. They must not call back
// into the client and must not block for long (MqttSession only queues and notifies).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/status.h"

namespace r2f {

class MqttClient {
 public:
  struct Handlers {
    std::function<void()> connected;  // after every successful (re)connect
    std::function<void(const std::string& cause)> connection_lost;
    // The payload is shared with the client, not copied (a chunk is up to 16 MiB).
    std::function<void(const std::string& topic, std::shared_ptr<const std::string> payload)>
        message;
  };

  // One publish on its way to the broker.
  class Delivery {
   public:
    virtual ~Delivery() = default;
    // True once the broker has acknowledged the publish (QoS >= 1) or it was written (QoS 0);
    // false when `timeout` passed first; Unavailable when the publish failed for good.
    virtual Result<bool> Wait(std::chrono::milliseconds timeout) = 0;
  };

  virtual ~MqttClient() = default;

  // Must be called before Connect; the handlers stay in place until the client is destroyed.
  virtual void SetHandlers(Handlers handlers) = 0;
  // Connects, retrying until `timeout`, and reconnects by itself after a lost connection.
  // InvalidArgument when retrying cannot help (the broker refused the login, its TLS
  // certificate is not trusted); Unavailable when the broker could not be reached in time.
  virtual Status Connect(std::chrono::milliseconds timeout) = 0;
  // Hands one message to the client. ResourceExhausted when its outgoing buffer is full (the
  // caller waits and tries again with the same payload); Unavailable for other failures. The
  // payload is shared, not copied: the client may hold it until the message is sent.
  virtual Result<std::unique_ptr<Delivery>> Publish(const std::string& topic,
                                                    std::shared_ptr<const std::string> payload,
                                                    int qos, bool retained) = 0;
  // Subscribes without waiting; `done(ok)` runs on the client's thread when the broker answers.
  virtual void Subscribe(const std::vector<std::string>& filters, int qos,
                         std::function<void(bool ok)> done) = 0;
  // Unsubscribes without waiting for the broker's answer.
  virtual void Unsubscribe(const std::vector<std::string>& filters) = 0;
  // Disconnects cleanly (the broker does not publish the last will) and stops reconnecting.
  virtual void Disconnect(std::chrono::milliseconds timeout) = 0;
  virtual bool IsConnected() const = 0;
};

// How to reach and log in to the broker (the connection fields of TransportOptions).
struct MqttClientOptions {
  // One URI, or several: the client connects to the first that answers and fails over to the
  // others when a connection is lost (the nodes of a broker cluster).
  std::vector<std::string> uris;
  std::string client_id;
  std::string username, password;
  std::string ca_file, cert_file, key_file;  // TLS (PEM)
  bool tls_verify_hostname = true;
  // false: the broker keeps our subscriptions and queued QoS-1 messages while we are away.
  bool clean_session = false;
  std::chrono::seconds keep_alive{20};
  std::chrono::seconds reconnect_min{1}, reconnect_max{16};
  int max_buffered_messages = 4096;  // publishes buffered while disconnected
  struct Will {
    std::string topic, payload;
    int qos = 1;
    bool retained = true;
  };
  std::optional<Will> will;
  // Appended to the error when the broker refuses the login (what to check).
  std::string login_hint;
};

// The Paho-backed client. InvalidArgument when a URI is unusable.
Result<std::unique_ptr<MqttClient>> NewPahoMqttClient(MqttClientOptions options);

}  // namespace r2f
