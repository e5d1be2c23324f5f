#include "common/reassembler.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <utility>

#include "common/checksum.h"

namespace r2f {
namespace {

std::string Hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08" PRIx32, v);
  return buf;
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
  inflight_bytes_ -= it->second.bytes;
  partial_.erase(it);
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
    return Status::ResourceExhausted(where + ": chunk_count " + std::to_string(env.chunk_count()) +
                                     " exceeds the limit " +
                                     std::to_string(options_.max_chunk_count));
  }
  if (env.chunk_index() >= env.chunk_count()) {
    return Status::InvalidArgument(where + ": chunk_index " + std::to_string(env.chunk_index()) +
                                   " out of range (chunk_count " +
                                   std::to_string(env.chunk_count()) + ")");
  }
  if (env.payload_size() > options_.max_payload_bytes) {
    return Status::ResourceExhausted(where + ": payload_size " +
                                     std::to_string(env.payload_size()) + " exceeds the limit " +
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
  const std::string where = ChunkName(env);
  auto it = partial_.find(key);
  if (it != partial_.end()) {
    const Partial& p = it->second;
    if (p.chunk_count != env.chunk_count() || p.payload_size != env.payload_size() ||
        p.payload_crc32 != env.payload_crc32()) {
      Erase(it);
      return Reject(Status::InvalidArgument(
          where + ": header disagrees with earlier chunks (chunk_count " +
          std::to_string(p.chunk_count) + ", payload_size " + std::to_string(p.payload_size) +
          ", payload CRC-32 " + Hex32(p.payload_crc32) + "); message dropped"));
    }
    if (p.chunks[env.chunk_index()].has_value()) {
      if (p.chunk_crcs[env.chunk_index()] != env.chunk_crc32()) {
        Erase(it);
        return Reject(Status::Corruption(
            where + ": duplicate with different contents (CRC-32 " + Hex32(env.chunk_crc32()) +
            " vs " + Hex32(p.chunk_crcs[env.chunk_index()]) + "); message dropped"));
      }
      ++stats_.duplicates;
      return std::optional<Message>();
    }
    if (p.bytes + env.chunk().size() > p.payload_size) {
      Erase(it);
      return Reject(Status::Corruption(where + ": chunks add up to more than payload_size " +
                                       std::to_string(env.payload_size()) + "; message dropped"));
    }
  }
  if (inflight_bytes_ + env.chunk().size() > options_.max_inflight_bytes) {
    return Reject(Status::ResourceExhausted(where + ": " + std::to_string(inflight_bytes_) +
                                            " bytes of incomplete messages held, " + "limit " +
                                            std::to_string(options_.max_inflight_bytes)));
  }

  if (it == partial_.end()) {
    Partial p;
    p.chunk_count = env.chunk_count();
    p.payload_size = env.payload_size();
    p.payload_crc32 = env.payload_crc32();
    p.chunks.resize(env.chunk_count());
    p.chunk_crcs.resize(env.chunk_count());
    it = partial_.emplace(key, std::move(p)).first;
  }
  Partial& p = it->second;
  const uint32_t index = env.chunk_index();
  const uint64_t size = env.chunk().size();
  p.chunk_crcs[index] = env.chunk_crc32();
  p.chunks[index] = std::move(*env.mutable_chunk());
  p.bytes += size;
  inflight_bytes_ += size;
  ++p.received;
  p.last_progress = Now();
  ++stats_.chunks_accepted;
  if (p.received < p.chunk_count) return std::optional<Message>();

  // Complete: concatenate in index order and check the whole.
  Message msg;
  msg.kind = key.kind;
  msg.job_id = key.job_id;
  msg.request_id = key.request_id;
  msg.device_id = key.device_id;
  const uint64_t expected_size = p.payload_size;
  const uint32_t expected_crc = p.payload_crc32;
  if (p.bytes != expected_size) {
    const uint64_t got = p.bytes;
    Erase(it);
    return Reject(Status::Corruption(key.ToString() + ": chunks add up to " + std::to_string(got) +
                                     " bytes, payload_size says " + std::to_string(expected_size)));
  }
  msg.payload.reserve(expected_size);
  for (auto& c : p.chunks) msg.payload += *c;
  Erase(it);
  const uint32_t crc = Crc32(msg.payload);
  if (crc != expected_crc) {
    return Reject(Status::Corruption(key.ToString() + ": payload CRC-32 " + Hex32(crc) +
                                     " != header " + Hex32(expected_crc)));
  }
  ++stats_.completed;
  return std::optional<Message>(std::move(msg));
}

}  // namespace r2f
