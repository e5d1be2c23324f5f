#include "common/net/transport_message.h"

namespace r2f {

bool IsRequestKind(pb::MessageKind kind) {
  if (!pb::MessageKind_IsValid(kind)) return false;
  return kind != pb::MSG_UNSPECIFIED && !IsReplyKind(kind) && kind != pb::MSG_STATUS;
}

bool IsReplyKind(pb::MessageKind kind) {
  return kind == pb::MSG_ACK || kind == pb::MSG_DATA || kind == pb::MSG_ERROR;
}

std::string KindName(pb::MessageKind kind) {
  if (!pb::MessageKind_IsValid(kind)) return "kind " + std::to_string(static_cast<int>(kind));
  return pb::MessageKind_Name(kind);
}

std::string Describe(const Message& message) {
  return KindName(message.kind) + " device=" + message.device_id + " job=" + message.job_id +
         " request=" + std::to_string(message.request_id) + " (" +
         std::to_string(message.payload.size()) + " bytes)";
}

Status ValidateDeviceId(std::string_view device_id) {
  if (device_id.empty()) return Status::InvalidArgument("device id is empty");
  if (device_id.find_first_of(std::string_view("/+#\0", 4)) != std::string_view::npos) {
    return Status::InvalidArgument("device id '" + std::string(device_id) +
                                   "' contains one of '/', '+', '#', NUL (it is a topic level)");
  }
  // RabbitMQ's MQTT plugin maps topic levels to AMQP routing-key words: '.' would split the
  // level in two and '*' is its wildcard (docs/fleet.md). Refused everywhere, so that a fleet
  // can move from Mosquitto to a RabbitMQ cluster.
  if (device_id.find_first_of(".*") != std::string_view::npos) {
    return Status::InvalidArgument("device id '" + std::string(device_id) +
                                   "' contains '.' or '*' (not portable to RabbitMQ's MQTT)");
  }
  return Status::Ok();
}

std::string EncodeErrorReply(const Status& status, pb::MessageKind request_kind) {
  pb::ErrorReply reply;
  // An OK status has no business in an error reply; report it as an internal error rather than
  // sending code 0, which the receiver could mistake for success.
  reply.set_code(status.ok() ? static_cast<uint32_t>(Status::Code::kInternal)
                             : static_cast<uint32_t>(status.code()));
  reply.set_message(status.ok() ? "error reply built from an OK status" : status.message());
  reply.set_request_kind(request_kind);
  return reply.SerializeAsString();
}

Status DecodeErrorReply(std::string_view payload) {
  pb::ErrorReply reply;
  if (!reply.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return Status::Corruption("MSG_ERROR payload is not an ErrorReply");
  }
  const std::string& msg = reply.message();
  switch (static_cast<Status::Code>(reply.code())) {
    case Status::Code::kInvalidArgument:
      return Status::InvalidArgument(msg);
    case Status::Code::kNotFound:
      return Status::NotFound(msg);
    case Status::Code::kIoError:
      return Status::IoError(msg);
    case Status::Code::kCorruption:
      return Status::Corruption(msg);
    case Status::Code::kUnavailable:
      return Status::Unavailable(msg);
    case Status::Code::kDeadlineExceeded:
      return Status::DeadlineExceeded(msg);
    case Status::Code::kResourceExhausted:
      return Status::ResourceExhausted(msg);
    case Status::Code::kInternal:
      return Status::Internal(msg);
    case Status::Code::kFailedPrecondition:
      return Status::FailedPrecondition(msg);
    case Status::Code::kOk:
      break;
  }
  return Status::Internal("error reply with unknown code " + std::to_string(reply.code()) + ": " +
                          msg);
}

bool IsRetryable(Status::Code code) {
  return code == Status::Code::kResourceExhausted || code == Status::Code::kUnavailable;
}

}  // namespace r2f
