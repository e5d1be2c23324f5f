// The unit the R2F transport moves: one opaque payload tagged with a kind, a job and a request id.
//
// The transport (common/net/transport.h) splits a Message into Envelopes (common/net/chunker.h),
// sends them over MQTT and reassembles them on the other side (common/net/reassembler.h). What the
// payload means (the Table-I API messages) is not the transport's business.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/base/status.h"
#include "r2f.pb.h"

namespace r2f {

// Envelope.protocol_version of this code. A peer speaking another version is rejected with an
// error naming both versions; bump it on any change that an old peer would misread.
inline constexpr uint32_t kProtocolVersion = 1;

struct Message {
  pb::MessageKind kind = pb::MSG_UNSPECIFIED;
  std::string job_id;
  uint64_t request_id = 0;  // correlation id; 0 in a request given to Call means "pick one"
  std::string payload;      // opaque bytes (usually a serialized Table-I protobuf)
  std::string device_id;    // the device this conversation is with (target or source)
  uint64_t lease_id = 0;    // requests: the device lease the server holds (0: none)
  uint64_t handler_us = 0;  // replies: the device's handler time (Envelope.handler_us)
  uint64_t queued_us = 0;  // replies: the request's wait in the device's queue (Envelope.queued_us)
  // Device replies only, never sent: when set, the transport calls it before the reply is
  // published or cached, on the handler's thread, and may run the next waiting request first;
  // a failure goes out instead, as an MSG_ERROR reply. Replies keep their order. For a promise
  // the reply makes that the next request need not wait for: a deployModel Ack says the model
  // is on disk, the getData behind it only needs the model in memory (docs/daemons.md).
  std::function<Status()> before_send;
};

// Server -> device kinds (sent on .../cmd): every valid kind except UNSPECIFIED and the reply and
// status kinds, so that a Table-I kind added later is a request without touching this code.
bool IsRequestKind(pb::MessageKind kind);
// Device -> server replies (.../ack and .../data): MSG_ACK, MSG_DATA, MSG_ERROR.
bool IsReplyKind(pb::MessageKind kind);

// "MSG_GET_DATA", or "kind 77" for a value the enum does not know.
std::string KindName(pb::MessageKind kind);

// "MSG_GET_DATA device=d1 job=j request=42 (1234 bytes)": for logs and error messages.
std::string Describe(const Message& message);

// Device ids become a topic level, so they must be non-empty and free of '/', '+', '#' and NUL,
// and of '.' and '*' (RabbitMQ's MQTT plugin gives them meaning).
Status ValidateDeviceId(std::string_view device_id);

// Whether an error reply means "not now" rather than "no": the device was busy or short of room
// (ResourceExhausted, Unavailable). The server backs off and retries these; the device does not
// keep them in its reply cache.
bool IsRetryable(Status::Code code);

// Payload of an MSG_ERROR reply carrying `status` (which must not be OK).
std::string EncodeErrorReply(const Status& status, pb::MessageKind request_kind);
// The Status carried by an MSG_ERROR payload; Corruption if the payload is not an ErrorReply.
Status DecodeErrorReply(std::string_view payload);

}  // namespace r2f
