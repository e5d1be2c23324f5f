#include "common/net/transport_topics.h"

namespace r2f {

const char* LeafName(TopicLeaf leaf) {
  switch (leaf) {
    case TopicLeaf::kCmd:
      return "cmd";
    case TopicLeaf::kAck:
      return "ack";
    case TopicLeaf::kData:
      return "data";
    case TopicLeaf::kStatus:
      return "status";
  }
  return "?";
}

std::string DeviceTopic(std::string_view prefix, std::string_view device, TopicLeaf leaf) {
  std::string t(prefix);
  t += '/';
  t += device;
  t += '/';
  t += LeafName(leaf);
  return t;
}

std::optional<ParsedTopic> ParseTopic(std::string_view prefix, std::string_view topic) {
  if (topic.size() <= prefix.size() + 1 || topic.substr(0, prefix.size()) != prefix ||
      topic[prefix.size()] != '/') {
    return std::nullopt;
  }
  std::string_view rest = topic.substr(prefix.size() + 1);
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  std::string_view leaf = rest.substr(slash + 1);
  ParsedTopic out;
  out.device_id = std::string(rest.substr(0, slash));
  for (TopicLeaf l : {TopicLeaf::kCmd, TopicLeaf::kAck, TopicLeaf::kData, TopicLeaf::kStatus}) {
    if (leaf == LeafName(l)) {
      out.leaf = l;
      return out;
    }
  }
  return std::nullopt;
}

TopicLeaf ReplyLeaf(pb::MessageKind reply_kind, pb::MessageKind request_kind) {
  if (reply_kind == pb::MSG_DATA) return TopicLeaf::kData;
  if (reply_kind == pb::MSG_ERROR && request_kind == pb::MSG_GET_DATA) return TopicLeaf::kData;
  return TopicLeaf::kAck;
}

}  // namespace r2f
