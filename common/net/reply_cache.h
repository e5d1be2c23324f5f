// The device's cache of replies, keyed by (job id, request id): what makes requests idempotent.
//
// A server that retries a request (same request id) after a lost or slow reply gets the cached
// reply again instead of a second run of the handler. Bounded by entry count and bytes, least
// recently used evicted first; the newest entry is always kept even if it alone exceeds the byte
// bound (a 64 MB reply must still be retryable). Not thread-safe: the owner locks.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "common/net/transport_message.h"
#include "r2f.pb.h"

namespace r2f {

class ReplyCache {
 public:
  struct Entry {
    // What the request looked like, to tell a true retry from a reused request id.
    pb::MessageKind request_kind = pb::MSG_UNSPECIFIED;
    uint32_t request_crc32 = 0;
    uint64_t request_size = 0;
    std::shared_ptr<const Message> reply;
  };

  ReplyCache(size_t max_entries, uint64_t max_bytes)
      : max_entries_(max_entries), max_bytes_(max_bytes) {}

  // The entry for (job, request), refreshed as most recently used; std::nullopt if absent.
  std::optional<Entry> Find(const std::string& job_id, uint64_t request_id);

  // Adds or replaces an entry, then evicts least recently used ones beyond the bounds.
  void Insert(const std::string& job_id, uint64_t request_id, Entry entry);

  size_t size() const { return map_.size(); }
  uint64_t bytes() const { return bytes_; }

 private:
  using Key = std::pair<std::string, uint64_t>;
  struct Slot {
    Entry entry;
    std::list<Key>::iterator lru_pos;
  };
  static uint64_t SizeOf(const Entry& e) { return e.reply ? e.reply->payload.size() : 0; }

  size_t max_entries_;
  uint64_t max_bytes_;
  uint64_t bytes_ = 0;
  std::list<Key> lru_;  // front = most recent
  std::map<Key, Slot> map_;
};

}  // namespace r2f
