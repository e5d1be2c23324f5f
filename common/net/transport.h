// The MQTT transport of R2F, used by both daemons (protocol: docs/protocol.md).
//
// One connection (common/net/mqtt_session.h) with the endpoint of its role:
// - Device role (common/net/device_endpoint.h): receives requests on <prefix>/<device>/cmd,
//   runs a handler once per (job id, request id), publishes the reply on .../ack or .../data
//   and a retained status ("online"; last will "offline") on .../status.
// - Server role (common/net/server_endpoint.h): Call() sends a request to a device and waits for
//   the reply with the same request id, retrying with the same id (the device answers retries
//   from its reply cache); it subscribes to the replies of the devices it calls only, and
//   follows every device's retained status.
//
// Payloads are opaque bytes tagged with a MessageKind; they are chunked (common/net/chunker.h),
// checksummed and reassembled (common/net/reassembler.h). The MQTT library stays behind
// common/net/mqtt_client.h: nothing here throws, every failure is a Status.
//
// Threads: the MQTT client's thread only enqueues received messages; one receiver thread of ours
// reassembles and routes them; in the device role one worker thread runs the handler and
// publishes replies. Call() may be used from several threads at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/net/chunker.h"
#include "common/net/transport_message.h"

namespace r2f {

struct TransportOptions {
  enum class Role { kServer, kDevice };
  Role role = Role::kServer;
  std::string device_id;  // device role: this device (a topic level, see ValidateDeviceId)

  // ssl://host:8883 for TLS. Several URIs separated by commas (the nodes of a broker cluster):
  // the first that answers is used, the others take over when its connection is lost.
  std::string broker_uri = "tcp://127.0.0.1:1883";
  // Unique per connection. Empty: "r2f-dev-<device_id>" for a device (stable: the broker keeps
  // its session, subscriptions and queued requests, across reconnects), and
  // "r2f-server-<host>-<pid>-<random>" for a server (its session is clean).
  std::string client_id;
  std::string username, password;
  // TLS (PEM files); used when the URI is ssl:// or any of them is set. The broker's
  // certificate chain is checked against ca_file (empty: the system's CAs).
  std::string ca_file, cert_file, key_file;
  // TLS: the broker's certificate must also name the URI's host (Paho's post-connect check).
  bool tls_verify_hostname = true;

  std::string topic_prefix = "r2f/v1";
  size_t chunk_bytes = kDefaultChunkBytes;
  uint64_t max_payload_bytes = 256ull << 20;   // larger messages are refused both ways
  uint64_t max_inflight_bytes = 512ull << 20;  // incomplete incoming messages, all together
  uint32_t max_chunk_count = 1u << 16;
  // Incoming messages larger than this are refused at their first chunk; 0 means
  // max_payload_bytes. The device daemon sets it from limits.max_model_bytes (no request is
  // larger than a model), so a device never buffers more than it would accept.
  uint64_t max_incoming_payload_bytes = 0;
  // Incomplete incoming messages per sending device (server role: each device on its own, so
  // one device cannot starve the others; device role: everything the server sends). Bytes are
  // charged as in common/net/reassembler.h (chunks plus bookkeeping).
  uint64_t max_inflight_bytes_per_device = 260ull << 20;
  uint32_t max_inflight_messages_per_device = 16;
  int qos = 1;
  std::chrono::milliseconds reassembly_timeout{30000};  // incomplete message without progress

  // Paho's automatic reconnect backoff (Paho counts whole seconds).
  std::chrono::seconds reconnect_min{1};
  std::chrono::seconds reconnect_max{16};
  std::chrono::seconds keep_alive{20};
  // Connect() keeps trying to reach the broker (and subscribe) for this long.
  std::chrono::milliseconds connect_timeout{10000};

  // Flow control of one outgoing message: at most this many chunks awaiting the broker's PUBACK.
  size_t publish_window = 16;
  // Paho's buffer of publishes made while disconnected (and its command queue when connected).
  int max_buffered_messages = 4096;
  // How long a device may take to hand one reply to the broker before giving up on it (the
  // server's retry then gets the reply from the cache).
  std::chrono::milliseconds reply_publish_timeout{60000};
  // Received MQTT messages waiting for the receiver thread; when full, Paho's thread waits (up to
  // 5 s) so that TCP pushes back on the broker instead of us dropping QoS-1 messages.
  uint64_t inbox_bytes = 64ull << 20;

  // Device role: the retained "online" status is published again this often. Brokers that do not
  // deliver retained messages to wildcard subscriptions (RabbitMQ 3.10) still let servers
  // discover the device from the repeats. 0: only at connect.
  std::chrono::milliseconds status_interval{5000};
  // Device role: whether the broker keeps the device's session (subscription and queued
  // requests) while it is away. On a broker cluster whose sessions live on one node (RabbitMQ
  // 3.10) a clean session lets the device fail over to another node at once; the server's
  // retries make up for requests sent while it was away (docs/fleet.md).
  bool persistent_session = true;

  // Device role: reply cache bounds and how many complete requests may wait for the handler.
  size_t reply_cache_entries = 64;
  uint64_t reply_cache_bytes = 256ull << 20;
  size_t max_queued_requests = 16;
};

// Counters for tests and logs (monotonic since Connect).
struct TransportStats {
  uint64_t messages_sent = 0;  // whole messages handed to the broker (all chunks)
  uint64_t chunks_sent = 0;
  uint64_t messages_received = 0;  // complete, valid messages
  uint64_t chunks_received = 0;
  uint64_t rejected = 0;  // envelopes or chunks rejected (malformed, stale, misrouted, limits)
  uint64_t error_replies_sent = 0;
  uint64_t handler_calls = 0;          // device role
  uint64_t cache_hits = 0;             // device: retried requests answered from the reply cache
  uint64_t duplicates_suppressed = 0;  // device: copies of a request already queued or running
  uint64_t retries = 0;                // server: attempts after the first
  uint64_t dropped = 0;                // queue overflows, unmatched replies
  uint64_t unsolicited = 0;            // server: reply chunks for no pending call, dropped before
                                       // reassembly (counted in `dropped` too)
  uint64_t log_suppressed = 0;         // rejection log lines left out (at most a few per device/s)
  uint64_t connects = 0;               // successful (re)connects
  uint64_t bytes_received = 0;         // MQTT payload bytes that arrived (every topic)
};

class MqttClient;

// The client id used when TransportOptions::client_id is empty.
std::string DefaultClientId(const TransportOptions& options);
// "tcp://a:1883, tcp://b:1883" -> the URIs, blanks trimmed, empty items dropped.
std::vector<std::string> SplitBrokerUris(const std::string& uris);

class Transport {
 public:
  // Device side: turns a request into its reply. A non-OK result is sent as an MSG_ERROR reply
  // carrying the Status. The reply's kind must be MSG_ACK, MSG_DATA or MSG_ERROR; job, request
  // and device ids are filled in by the transport. Runs on the worker thread, one at a time; it
  // may block (an FP pass) without stalling reception.
  using Handler = std::function<Result<Message>(const Message& request)>;

  // Connects (automatic reconnect), subscribes for the role and, in the
  // device role, publishes the retained "online" status. Unavailable if the broker could not be
  // reached within options.connect_timeout (naming the TLS error, if any); InvalidArgument at
  // once, without retrying, when the broker refuses the login (wrong user name or password, a
  // user it does not know, a client id it rejects).
  static Result<std::unique_ptr<Transport>> Connect(TransportOptions options);
  // The same over a given client (tests put an in-process broker behind it; the connection
  // fields of `options` are then the client's business).
  static Result<std::unique_ptr<Transport>> Connect(TransportOptions options,
                                                    std::unique_ptr<MqttClient> client);

  ~Transport();  // Stop()
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // --- server role ---
  // Sends `request` (kind must be a request kind) to `device_id` and waits for its reply. The
  // request id is request.request_id if non-zero, else a fresh one. Each attempt resends the same
  // request (same id) and waits up to `timeout` (covering sending, the device's work and the
  // reply); a reconnect within an attempt sends the request again at once. Returns the reply
  // (MSG_ACK or MSG_DATA); an MSG_ERROR reply becomes its Status, except that Corruption
  // (damage in transit) is retried at once and ResourceExhausted / Unavailable (the device is
  // busy or full for now) after a back-off, while attempts remain; DeadlineExceeded after the
  // last attempt, naming the last problem seen.
  //
  // `on_sent`, if given, runs once, on the calling thread, as soon as the first attempt's
  // request has been handed to the broker (or failed to be): a request another thread sends
  // after it reaches the device behind this one (one connection, QoS 1, one topic), unless
  // this one has to be resent. It does not run when the call fails before sending anything
  // (an invalid request, no subscription, the id already in flight).
  Result<Message> Call(const std::string& device_id, Message request,
                       std::chrono::milliseconds timeout, int attempts = 3,
                       const std::function<void()>& on_sent = {});
  // Subscribes to a device's replies now (Call does it on first use) / stops receiving them.
  Status Watch(const std::string& device_id);
  void Unwatch(const std::string& device_id);
  // Last status a device published on its retained status topic ("online" / "offline");
  // NotFound if none seen yet.
  Result<std::string> DeviceStatus(const std::string& device_id) const;
  // Every device whose status this server has seen, with the status.
  std::map<std::string, std::string> DeviceStatuses() const;
  // A fresh request id (random 64-bit start, then counting: ids stay unique across restarts).
  uint64_t NewRequestId();

  // --- device role ---
  // Starts handling requests on the worker thread and returns (requests that arrived since
  // Connect are handled first). Call once.
  Status Serve(Handler handler);

  // Both roles: publishes the retained "offline" status (device), disconnects cleanly (no last
  // will), stops the threads (waiting for a running handler) and fails pending Calls with
  // Unavailable. Idempotent.
  void Stop();

  bool connected() const;
  TransportStats stats() const;
  const TransportOptions& options() const;
  const std::string& client_id() const;

 private:
  struct Parts;
  explicit Transport(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace r2f
