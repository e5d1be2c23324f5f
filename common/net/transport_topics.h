// The MQTT topic tree of R2F (docs/protocol.md): <prefix>/<device>/{cmd,ack,data,status}.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "r2f.pb.h"

namespace r2f {

enum class TopicLeaf { kCmd, kAck, kData, kStatus };

// "cmd", "ack", "data", "status".
const char* LeafName(TopicLeaf leaf);

// "<prefix>/<device>/<leaf>"; `device` may be "+" for a subscription filter.
std::string DeviceTopic(std::string_view prefix, std::string_view device, TopicLeaf leaf);

struct ParsedTopic {
  std::string device_id;
  TopicLeaf leaf = TopicLeaf::kCmd;
};

// Splits a topic of the tree; std::nullopt if it does not belong to it (other prefix, empty
// device level, extra levels, unknown leaf).
std::optional<ParsedTopic> ParseTopic(std::string_view prefix, std::string_view topic);

// Where a device publishes a reply: MSG_DATA, and MSG_ERROR answering MSG_GET_DATA, go to /data
// (the data path), every other reply to /ack.
TopicLeaf ReplyLeaf(pb::MessageKind reply_kind, pb::MessageKind request_kind);

// Payloads of the retained MSG_STATUS envelope on .../status.
inline constexpr char kStatusOnline[] = "online";
inline constexpr char kStatusOffline[] = "offline";

}  // namespace r2f
