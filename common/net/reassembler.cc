#include "common/net/reassembler.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <utility>

#include "common/base/checksum.h"

namespace r2f {
namespace {

std::string Hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08" PRIx32, v);
  return buf;
}

// At most `max` bytes of an id for messages: an oversized id is refused, not echoed in full.
std::string Clip(const std::string& id, size_t max) {
  return id.size() <= max ? id : id.substr(0, max) + "...";
}

std::string ChunkName(const pb::Envelope& env) {
  return "chunk " + std::to_string(env.chunk_index()) + "/" + std::to_string(env.chunk_count()) +
         " of " + MessageKey::Of(env).ToString();
}

}  // namespace

std::string MessageKey::ToString() const {
  return KindName(kind) + " device=" + device_id + " job=" + job_id +
         " request=" + std::to_string(request_id);
}

Result<pb::Envelope> ParseEnvelope(std::string_view bytes) {
  pb::Envelope env;
  if (!env.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Status::Corruption("not an Envelope (protobuf parse failed, " +
                              std::to_string(bytes.size()) + " bytes)");
  }
  return env;
}

Reassembler::Reassembler(ReassemblerOptions options) : options_(std::move(options)) {}

std::chrono::steady_clock::time_point Reassembler::Now() const {
  return options_.clock ? options_.clock() : std::chrono::steady_clock::now();
}

Status Reassembler::Reject(Status status) {
  ++stats_.rejected;
  return status;
}

void Reassembler::Erase(std::map<MessageKey, Partial>::iterator it) {
  const Partial& p = it->second;
  inflight_bytes_ -= p.bytes;
  charged_bytes_ -= p.bytes + p.overhead;
  auto d = per_device_.find(it->first.device_id);
  if (d != per_device_.end()) {
    d->second.charged_bytes -= p.bytes + p.overhead;
    if (--d->second.messages == 0) per_device_.erase(d);
  }
  partial_.erase(it);
}

uint64_t Reassembler::Overhead(const MessageKey& key, uint32_t chunk_count) {
  return kMessageOverheadBytes + key.device_id.size() + key.job_id.size() +
         uint64_t{chunk_count} * kSlotBytes;
}

size_t Reassembler::inflight_messages(const std::string& device_id) const {
  auto it = per_device_.find(device_id);
  return it == per_device_.end() ? 0 : it->second.messages;
}

uint64_t Reassembler::inflight_charged_bytes(const std::string& device_id) const {
  auto it = per_device_.find(device_id);
  return it == per_device_.end() ? 0 : it->second.charged_bytes;
}

Status Reassembler::CheckBudget(const std::string& where, const std::string& device,
                                uint64_t charge, bool new_message) const {
  auto it = per_device_.find(device);
  const DeviceUsage usage = it == per_device_.end() ? DeviceUsage{} : it->second;
  if (new_message && usage.messages >= options_.max_inflight_messages_per_device) {
    return Status::ResourceExhausted(
        where + ": device '" + device + "' already has " + std::to_string(usage.messages) +
        " incomplete messages in flight, limit " +
        std::to_string(options_.max_inflight_messages_per_device) + " per device");
  }
  if (usage.charged_bytes + charge > options_.max_inflight_bytes_per_device) {
    return Status::ResourceExhausted(
        where + ": device '" + device + "' holds " + std::to_string(usage.charged_bytes) +
        " bytes of incomplete messages, this chunk needs " + std::to_string(charge) +
        " more, limit " + std::to_string(options_.max_inflight_bytes_per_device) + " per device");
  }
  if (charged_bytes_ + charge > options_.max_inflight_bytes) {
    return Status::ResourceExhausted(where + ": " + std::to_string(charged_bytes_) +
                                     " bytes of incomplete messages held, this chunk needs " +
                                     std::to_string(charge) + " more, limit " +
                                     std::to_string(options_.max_inflight_bytes));
  }
  return Status::Ok();
}

void Reassembler::Drop(const MessageKey& key) {
  auto it = partial_.find(key);
  if (it != partial_.end()) Erase(it);
}

std::vector<MessageKey> Reassembler::EvictExpired() {
  std::vector<MessageKey> dropped;
  const auto now = Now();
  for (auto it = partial_.begin(); it != partial_.end();) {
    if (now - it->second.last_progress >= options_.timeout) {
      dropped.push_back(it->first);
      ++stats_.expired;
      auto next = std::next(it);
      Erase(it);
      it = next;
    } else {
      ++it;
    }
  }
  return dropped;
}

Status Reassembler::CheckHeader(const pb::Envelope& env) const {
  for (const std::string* id : {&env.device_id(), &env.job_id()}) {
    if (id->size() > options_.max_id_bytes) {
      return Status::InvalidArgument(std::string(id == &env.device_id() ? "device_id" : "job_id") +
                                     " '" + Clip(*id, 32) + "' of " + std::to_string(id->size()) +
                                     " bytes exceeds the limit " +
                                     std::to_string(options_.max_id_bytes));
    }
  }
  const std::string where = ChunkName(env);
  if (env.protocol_version() != kProtocolVersion) {
    return Status::InvalidArgument(where + ": protocol version " +
                                   std::to_string(env.protocol_version()) + ", this peer speaks " +
                                   std::to_string(kProtocolVersion));
  }
  if (!pb::MessageKind_IsValid(env.kind()) || env.kind() == pb::MSG_UNSPECIFIED) {
    return Status::InvalidArgument(where + ": unknown message kind");
  }
  if (env.chunk_count() == 0) return Status::InvalidArgument(where + ": chunk_count is 0");
  if (env.chunk_count() > options_.max_chunk_count) {
    return Status::InvalidArgument(where + ": chunk_count " + std::to_string(env.chunk_count()) +
                                   " exceeds the limit " +
                                   std::to_string(options_.max_chunk_count));
  }
  if (env.chunk_index() >= env.chunk_count()) {
    return Status::InvalidArgument(where + ": chunk_index " + std::to_string(env.chunk_index()) +
                                   " out of range (chunk_count " +
                                   std::to_string(env.chunk_count()) + ")");
  }
  if (env.payload_size() > options_.max_payload_bytes) {
    return Status::InvalidArgument(where + ": payload_size " + std::to_string(env.payload_size()) +
                                   " exceeds the limit " +
                                   std::to_string(options_.max_payload_bytes));
  }
  // Every chunk but an empty payload's single one carries at least one byte.
  if (env.chunk_count() > std::max<uint64_t>(1, env.payload_size())) {
    return Status::InvalidArgument(where + ": " + std::to_string(env.chunk_count()) +
                                   " chunks for a payload of " +
                                   std::to_string(env.payload_size()) + " bytes");
  }
  if (env.chunk().size() > env.payload_size()) {
    return Status::InvalidArgument(where + ": chunk of " + std::to_string(env.chunk().size()) +
                                   " bytes is larger than payload_size " +
                                   std::to_string(env.payload_size()));
  }
  const uint32_t crc = Crc32(env.chunk());
  if (crc != env.chunk_crc32()) {
    return Status::Corruption(where + ": chunk CRC-32 " + Hex32(crc) + " != header " +
                              Hex32(env.chunk_crc32()));
  }
  return Status::Ok();
}

Status Reassembler::CheckAgainstHeld(std::map<MessageKey, Partial>::iterator it,
                                     const pb::Envelope& env, bool* duplicate) {
  const Partial& p = it->second;
  const std::string where = ChunkName(env);
  // The messages are built before Erase(it): `p` dies with it.
  if (p.chunk_count != env.chunk_count() || p.payload_size != env.payload_size() ||
      p.payload_crc32 != env.payload_crc32() || p.lease_id != env.lease_id()) {
    Status s = Status::InvalidArgument(
        where + ": header disagrees with earlier chunks (chunk_count " +
        std::to_string(p.chunk_count) + ", payload_size " + std::to_string(p.payload_size) +
        ", payload CRC-32 " + Hex32(p.payload_crc32) + "); message dropped");
    Erase(it);
    return s;
  }
  if (p.chunks[env.chunk_index()].has_value()) {
    if (p.chunk_crcs[env.chunk_index()] != env.chunk_crc32()) {
      Status s = Status::Corruption(where + ": duplicate with different contents (CRC-32 " +
                                    Hex32(env.chunk_crc32()) + " vs " +
                                    Hex32(p.chunk_crcs[env.chunk_index()]) + "); message dropped");
      Erase(it);
      return s;
    }
    *duplicate = true;
    return Status::Ok();
  }
  if (p.bytes + env.chunk().size() > p.payload_size) {
    Erase(it);
    return Status::Corruption(where + ": chunks add up to more than payload_size " +
                              std::to_string(env.payload_size()) + "; message dropped");
  }
  return Status::Ok();
}

Status Reassembler::Admit(const MessageKey& key, const pb::Envelope& env, uint64_t charge,
                          bool new_message) {
  const std::string where = ChunkName(env);
  Status s = CheckBudget(where, key.device_id, charge, new_message);
  // A new message may take the place of the sender's stalest incomplete ones, a bounded number
  // of them: junk that will never complete must not lock out the next real request.
  for (uint32_t evicted = 0; !s.ok() && new_message && options_.evict_stale_to_admit &&
                             evicted < options_.max_inflight_messages_per_device;
       ++evicted) {
    auto stalest = partial_.end();
    for (auto it = partial_.begin(); it != partial_.end(); ++it) {
      if (it->first.device_id != key.device_id) continue;
      if (stalest == partial_.end() || it->second.last_progress < stalest->second.last_progress) {
        stalest = it;
      }
    }
    if (stalest == partial_.end()) break;
    Erase(stalest);
    ++stats_.evicted;
    s = CheckBudget(where, key.device_id, charge, new_message);
  }
  return s;
}

Result<std::optional<Message>> Reassembler::Complete(std::map<MessageKey, Partial>::iterator it) {
  const MessageKey key = it->first;
  Partial& p = it->second;
  // Concatenate in index order and check the whole.
  Message msg;
  msg.kind = key.kind;
  msg.job_id = key.job_id;
  msg.request_id = key.request_id;
  msg.device_id = key.device_id;
  msg.lease_id = p.lease_id;
  msg.handler_us = p.handler_us;
  msg.queued_us = p.queued_us;
  const uint64_t expected_size = p.payload_size;
  const uint32_t expected_crc = p.payload_crc32;
  if (p.bytes != expected_size) {
    const uint64_t got = p.bytes;
    Erase(it);
    return Reject(Status::Corruption(key.ToString() + ": chunks add up to " + std::to_string(got) +
                                     " bytes, payload_size says " + std::to_string(expected_size)));
  }
  // Each chunk matched its own CRC on arrival, so the payload's follows from those without
  // another pass over the bytes.
  uint32_t crc = 0;
  msg.payload.reserve(expected_size);
  for (size_t i = 0; i < p.chunks.size(); ++i) {
    msg.payload += *p.chunks[i];
    crc = Crc32Combine(crc, p.chunk_crcs[i], p.chunks[i]->size());
  }
  Erase(it);
  if (crc != expected_crc) {
    return Reject(Status::Corruption(key.ToString() + ": payload CRC-32 " + Hex32(crc) +
                                     " != header " + Hex32(expected_crc)));
  }
  ++stats_.completed;
  return std::optional<Message>(std::move(msg));
}

Result<std::optional<Message>> Reassembler::Add(pb::Envelope env) {
  EvictExpired();
  if (Status s = CheckHeader(env); !s.ok()) {
    // A damaged chunk can never be completed from what we hold; free it now rather than at
    // timeout. Header-level nonsense (version, range) says nothing about the held chunks'
    // validity, but a message with one invalid chunk is not worth finishing either.
    Drop(MessageKey::Of(env));
    return Reject(std::move(s));
  }
  const MessageKey key = MessageKey::Of(env);
  auto it = partial_.find(key);
  if (it != partial_.end()) {
    bool duplicate = false;
    if (Status s = CheckAgainstHeld(it, env, &duplicate); !s.ok()) return Reject(std::move(s));
    if (duplicate) {
      ++stats_.duplicates;
      return std::optional<Message>();
    }
  }
  const bool new_message = it == partial_.end();
  const uint64_t overhead = new_message ? Overhead(key, env.chunk_count()) : 0;
  const uint64_t size = env.chunk().size();
  // A single-chunk message completes right here and is never held.
  if (!(new_message && env.chunk_count() == 1)) {
    if (Status s = Admit(key, env, size + overhead, new_message); !s.ok()) {
      // A message that lost a chunk can only be completed by a full resend: free it now.
      if (!new_message) {
        Erase(partial_.find(key));
        s = Status::ResourceExhausted(s.message() + "; message dropped");
      }
      return Reject(std::move(s));
    }
  }
  if (new_message) {
    Partial p;
    p.chunk_count = env.chunk_count();
    p.payload_size = env.payload_size();
    p.payload_crc32 = env.payload_crc32();
    p.lease_id = env.lease_id();
    p.handler_us = env.handler_us();
    p.queued_us = env.queued_us();
    p.overhead = overhead;
    p.chunks.resize(env.chunk_count());
    p.chunk_crcs.resize(env.chunk_count());
    it = partial_.emplace(key, std::move(p)).first;
    ++per_device_[key.device_id].messages;
    charged_bytes_ += overhead;
    per_device_[key.device_id].charged_bytes += overhead;
  }
  Partial& p = it->second;
  const uint32_t index = env.chunk_index();
  p.chunk_crcs[index] = env.chunk_crc32();
  p.chunks[index] = std::move(*env.mutable_chunk());
  p.bytes += size;
  inflight_bytes_ += size;
  charged_bytes_ += size;
  per_device_[key.device_id].charged_bytes += size;
  ++p.received;
  p.last_progress = Now();
  ++stats_.chunks_accepted;
  if (p.received < p.chunk_count) return std::optional<Message>();
  return Complete(it);
}

}  // namespace r2f
