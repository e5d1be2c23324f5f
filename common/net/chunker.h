// Splits a Message into Envelopes of at most chunk_bytes payload bytes each.
//
// Why chunk at all: brokers cap message sizes, a publish holds the connection until it is
// written whole, and a damaged chunk is resent alone. 512 KiB (broker.chunk_kib) was measured
// against 128 KiB-2 MiB for a 2 MiB getData reply on loopback: faster than 128 KiB, within the
// noise of the larger sizes (docs/protocol.md, "Chunking"). Every chunk
// carries the whole message's size and CRC-32 besides its own CRC-32, so the receiver
// (common/net/reassembler.h) can check each chunk on arrival and the whole payload at the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/base/status.h"
#include "common/net/transport_message.h"
#include "r2f.pb.h"

namespace r2f {

inline constexpr size_t kDefaultChunkBytes = 512 * 1024;  // broker.chunk_kib's default

class Chunker {
 public:
  // Fails (InvalidArgument) when chunk_bytes is 0 or the payload would need more than 2^32-1
  // chunks. `message` is referenced, not copied: it must outlive the Chunker.
  static Result<Chunker> Create(const Message& message, size_t chunk_bytes);

  // >= 1: an empty payload travels as one empty chunk.
  uint32_t chunk_count() const { return chunk_count_; }
  uint32_t payload_crc32() const { return payload_crc32_; }

  // Envelope `index` (< chunk_count()), complete with header, checksums and chunk bytes.
  pb::Envelope Chunk(uint32_t index, uint64_t sent_unix_ms = 0) const;
  // The same envelope serialised, with its chunk bytes copied once (straight from the message,
  // after the header fields): what the transport publishes. Parses to Chunk(index).
  std::string SerializedChunk(uint32_t index, uint64_t sent_unix_ms = 0) const;

 private:
  pb::Envelope Header(uint32_t index, uint64_t sent_unix_ms) const;  // Chunk() without the bytes

  Chunker(const Message& message, size_t chunk_bytes, std::vector<uint32_t> chunk_crcs,
          uint32_t crc)
      : message_(&message),
        chunk_bytes_(chunk_bytes),
        chunk_count_(static_cast<uint32_t>(chunk_crcs.size())),
        chunk_crcs_(std::move(chunk_crcs)),
        payload_crc32_(crc) {}

  const Message* message_;
  size_t chunk_bytes_;
  uint32_t chunk_count_;
  // Each chunk's CRC, read once; the payload's is combined from them (Crc32Combine).
  std::vector<uint32_t> chunk_crcs_;
  uint32_t payload_crc32_;
};

// All envelopes of `message` at once (convenient for tests and small messages; the transport
// builds them one at a time so that a 64 MB payload is not held twice).
Result<std::vector<pb::Envelope>> SplitIntoChunks(const Message& message, size_t chunk_bytes);

}  // namespace r2f
