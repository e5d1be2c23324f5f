// Reassembles Envelopes (chunks) into Messages, validating everything a peer could get wrong.
//
// Contract:
// - Chunks of one message may arrive in any order and any number of times; a duplicate of a
//   chunk already held is ignored (QoS 1 is at-least-once and the transport retries).
// - A message is identified by MessageKey (device, job, request id, kind).
// - Every rejected chunk yields a Status naming the message, the chunk and what was wrong, so the
//   caller can log it or send it back as an MSG_ERROR reply. A rejection that makes the message
//   impossible to complete (checksum or consistency damage) also drops what was held of it.
// - Memory is bounded: per message by max_payload_bytes; per sending device and in total by
//   max_inflight_bytes_per_device / max_inflight_bytes, which are charged with the chunk bytes
//   held plus the bookkeeping a message's header makes us allocate (kSlotBytes per announced
//   chunk, kMessageOverheadBytes and the ids per message), so a header announcing 65536 chunks
//   costs what it allocates even before any payload arrives; per device also by
//   max_inflight_messages_per_device. A message that makes no progress for `timeout` is
//   dropped (EvictExpired, also run by Add). One device hitting its limits does not stop
//   another device's messages.
// - Not thread-safe: one owner thread (the transport's receiver thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "common/base/status.h"
#include "common/net/transport_message.h"
#include "r2f.pb.h"

namespace r2f {

struct ReassemblerOptions {
  uint64_t max_payload_bytes = 256ull << 20;   // one reassembled payload
  uint32_t max_chunk_count = 1u << 16;         // chunks of one message
  uint64_t max_inflight_bytes = 512ull << 20;  // all incomplete messages (charged, see above)
  // Per sending device (MessageKey::device_id): on the server one device cannot take the whole
  // budget and starve the others. The default holds one max_payload_bytes message with its
  // bookkeeping.
  uint64_t max_inflight_bytes_per_device = 260ull << 20;
  uint32_t max_inflight_messages_per_device = 16;
  // Longest device_id and job_id accepted (they key messages and appear in every log line).
  size_t max_id_bytes = 256;
  // An incomplete message is dropped when no new chunk of it arrived for this long (progress, not
  // age, so that a slow 64 MB transfer survives as long as it moves).
  std::chrono::milliseconds timeout{30000};
  // When a new message does not fit a limit, drop the sender's incomplete messages with the
  // oldest progress (at most max_inflight_messages_per_device of them) to make room, instead of
  // refusing it. The device sets this: a burst of stale or hostile partial messages must not
  // lock out the next real request, and a transfer that is moving is never the oldest.
  bool evict_stale_to_admit = false;
  // Injectable for tests; empty means std::chrono::steady_clock::now.
  std::function<std::chrono::steady_clock::time_point()> clock;
};

struct MessageKey {
  std::string device_id;
  std::string job_id;
  uint64_t request_id = 0;
  pb::MessageKind kind = pb::MSG_UNSPECIFIED;

  static MessageKey Of(const pb::Envelope& env) {
    return {env.device_id(), env.job_id(), env.request_id(), env.kind()};
  }
  bool operator<(const MessageKey& o) const {
    return std::tie(device_id, job_id, request_id, kind) <
           std::tie(o.device_id, o.job_id, o.request_id, o.kind);
  }
  bool operator==(const MessageKey& o) const {
    return std::tie(device_id, job_id, request_id, kind) ==
           std::tie(o.device_id, o.job_id, o.request_id, o.kind);
  }
  std::string ToString() const;
};

struct ReassemblerStats {
  uint64_t chunks_accepted = 0;
  uint64_t duplicates = 0;
  uint64_t rejected = 0;
  uint64_t completed = 0;
  uint64_t expired = 0;
  uint64_t evicted = 0;  // dropped to admit a new message (evict_stale_to_admit)
};

// Parses one MQTT payload into an Envelope; Corruption if it is not one.
Result<pb::Envelope> ParseEnvelope(std::string_view bytes);

class Reassembler {
 public:
  explicit Reassembler(ReassemblerOptions options = {});

  // Takes one chunk (moved from). Returns the whole Message when this chunk completes it,
  // std::nullopt when more chunks are needed or it was a duplicate, or the rejection:
  // InvalidArgument (bad version, kind, index, count, inconsistent header), Corruption (chunk or
  // payload CRC, size mismatch), ResourceExhausted (a limit).
  Result<std::optional<Message>> Add(pb::Envelope envelope);

  // Drops incomplete messages without progress for `timeout`; returns their keys.
  std::vector<MessageKey> EvictExpired();

  // Drops whatever is held of `key` (e.g. after its request was answered another way).
  void Drop(const MessageKey& key);

  // Bookkeeping charged per message and per announced chunk (see the contract above).
  static constexpr uint64_t kMessageOverheadBytes = 256;
  static constexpr uint64_t kSlotBytes = 48;

  size_t inflight_messages() const { return partial_.size(); }
  // Chunk bytes held (payload only).
  uint64_t inflight_bytes() const { return inflight_bytes_; }
  // What the limits are checked against: chunk bytes plus bookkeeping.
  uint64_t inflight_charged_bytes() const { return charged_bytes_; }
  // Incomplete messages and charged bytes of one sending device.
  size_t inflight_messages(const std::string& device_id) const;
  uint64_t inflight_charged_bytes(const std::string& device_id) const;
  const ReassemblerStats& stats() const { return stats_; }
  const ReassemblerOptions& options() const { return options_; }

 private:
  struct Partial {
    uint32_t chunk_count = 0;
    uint64_t payload_size = 0;
    uint32_t payload_crc32 = 0;
    uint64_t lease_id = 0;
    uint64_t handler_us = 0;  // from the first chunk seen: tracing only, not checked
    uint64_t queued_us = 0;   // the same
    std::vector<std::optional<std::string>> chunks;
    std::vector<uint32_t> chunk_crcs;
    uint32_t received = 0;
    uint64_t bytes = 0;     // chunk bytes held
    uint64_t overhead = 0;  // bookkeeping charged on top of `bytes`
    std::chrono::steady_clock::time_point last_progress;
  };
  struct DeviceUsage {
    size_t messages = 0;
    uint64_t charged_bytes = 0;
  };

  std::chrono::steady_clock::time_point Now() const;
  Status Reject(Status status);
  // Checks of one envelope on its own (no state).
  Status CheckHeader(const pb::Envelope& env) const;
  void Erase(std::map<MessageKey, Partial>::iterator it);
  // Bookkeeping charged for a message with this key and chunk count.
  static uint64_t Overhead(const MessageKey& key, uint32_t chunk_count);
  // Whether `env` fits the partial message `it` already holds (else the message is dropped and
  // the error returned); *duplicate when it is a copy of a chunk held.
  Status CheckAgainstHeld(std::map<MessageKey, Partial>::iterator it, const pb::Envelope& env,
                          bool* duplicate);
  // CheckBudget, evicting stale messages for a new one when the options allow.
  Status Admit(const MessageKey& key, const pb::Envelope& env, uint64_t charge, bool new_message);
  // The whole message of a partial that has all its chunks (checked), which is erased.
  Result<std::optional<Message>> Complete(std::map<MessageKey, Partial>::iterator it);
  // ResourceExhausted if taking `charge` more bytes (and one more message when `new_message`)
  // for `device` would pass a limit.
  Status CheckBudget(const std::string& where, const std::string& device, uint64_t charge,
                     bool new_message) const;

  ReassemblerOptions options_;
  std::map<MessageKey, Partial> partial_;
  std::map<std::string, DeviceUsage> per_device_;
  uint64_t inflight_bytes_ = 0;
  uint64_t charged_bytes_ = 0;
  ReassemblerStats stats_;
};

}  // namespace r2f
