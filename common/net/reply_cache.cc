#include "common/net/reply_cache.h"

namespace r2f {

std::optional<ReplyCache::Entry> ReplyCache::Find(const std::string& job_id, uint64_t request_id) {
  auto it = map_.find(Key(job_id, request_id));
  if (it == map_.end()) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it->second.lru_pos);
  return it->second.entry;
}

void ReplyCache::Insert(const std::string& job_id, uint64_t request_id, Entry entry) {
  Key key(job_id, request_id);
  auto it = map_.find(key);
  if (it != map_.end()) {
    bytes_ -= SizeOf(it->second.entry);
    lru_.erase(it->second.lru_pos);
    map_.erase(it);
  }
  bytes_ += SizeOf(entry);
  lru_.push_front(key);
  map_.emplace(std::move(key), Slot{std::move(entry), lru_.begin()});
  while (map_.size() > 1 && (map_.size() > max_entries_ || bytes_ > max_bytes_)) {
    auto victim = map_.find(lru_.back());
    bytes_ -= SizeOf(victim->second.entry);
    map_.erase(victim);
    lru_.pop_back();
  }
}

}  // namespace r2f
