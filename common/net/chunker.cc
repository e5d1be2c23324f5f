#include "common/net/chunker.h"

#include <google/protobuf/io/coded_stream.h>

#include <algorithm>
#include <limits>
#include <string>
#include <string_view>

#include "common/base/checksum.h"

namespace r2f {
namespace {

std::string_view ChunkBytes(const Message& m, size_t chunk_bytes, size_t index) {
  const size_t begin = std::min(index * chunk_bytes, m.payload.size());
  return std::string_view(m.payload).substr(begin, chunk_bytes);
}

}  // namespace

Result<Chunker> Chunker::Create(const Message& message, size_t chunk_bytes) {
  if (chunk_bytes == 0) return Status::InvalidArgument("chunk_bytes must be > 0");
  const uint64_t size = message.payload.size();
  const uint64_t count = size == 0 ? 1 : (size + chunk_bytes - 1) / chunk_bytes;
  if (count > std::numeric_limits<uint32_t>::max()) {
    return Status::InvalidArgument(Describe(message) + ": needs " + std::to_string(count) +
                                   " chunks of " + std::to_string(chunk_bytes) +
                                   " bytes, more than 2^32-1");
  }
  std::vector<uint32_t> crcs(static_cast<size_t>(count));
  uint32_t whole = 0;
  for (size_t i = 0; i < crcs.size(); ++i) {
    const std::string_view chunk = ChunkBytes(message, chunk_bytes, i);
    crcs[i] = Crc32(chunk);
    whole = Crc32Combine(whole, crcs[i], chunk.size());
  }
  return Chunker(message, chunk_bytes, std::move(crcs), whole);
}

pb::Envelope Chunker::Header(uint32_t index, uint64_t sent_unix_ms) const {
  const Message& m = *message_;
  pb::Envelope env;
  env.set_protocol_version(kProtocolVersion);
  env.set_device_id(m.device_id);
  env.set_job_id(m.job_id);
  env.set_request_id(m.request_id);
  env.set_kind(m.kind);
  env.set_chunk_index(index);
  env.set_chunk_count(chunk_count_);
  env.set_payload_size(m.payload.size());
  env.set_payload_crc32(payload_crc32_);
  env.set_chunk_crc32(chunk_crcs_[index]);
  env.set_sent_unix_ms(sent_unix_ms);
  env.set_lease_id(m.lease_id);
  env.set_handler_us(m.handler_us);
  env.set_queued_us(m.queued_us);
  return env;
}

pb::Envelope Chunker::Chunk(uint32_t index, uint64_t sent_unix_ms) const {
  pb::Envelope env = Header(index, sent_unix_ms);
  const std::string_view bytes = ChunkBytes(*message_, chunk_bytes_, index);
  env.set_chunk(bytes.data(), bytes.size());
  return env;
}

std::string Chunker::SerializedChunk(uint32_t index, uint64_t sent_unix_ms) const {
  using google::protobuf::io::CodedOutputStream;
  const pb::Envelope header = Header(index, sent_unix_ms);
  const std::string_view bytes = ChunkBytes(*message_, chunk_bytes_, index);
  std::string out;
  // Protobuf parsers take fields in any order, so the chunk can follow the header's fields:
  // serialising a message with a 512 KiB bytes field would copy it twice (into the message,
  // then into the string) and zero the string first.
  out.reserve(header.ByteSizeLong() + 16 + bytes.size());
  header.AppendToString(&out);
  if (bytes.empty()) return out;            // proto3 leaves an empty field out
  constexpr uint32_t kLengthDelimited = 2;  // the wire type of bytes fields
  constexpr uint32_t tag = (pb::Envelope::kChunkFieldNumber << 3) | kLengthDelimited;
  uint8_t prefix[16];
  uint8_t* end = CodedOutputStream::WriteVarint32ToArray(tag, prefix);
  end = CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(bytes.size()), end);
  out.append(reinterpret_cast<const char*>(prefix), static_cast<size_t>(end - prefix));
  out.append(bytes.data(), bytes.size());
  return out;
}

Result<std::vector<pb::Envelope>> SplitIntoChunks(const Message& message, size_t chunk_bytes) {
  R2F_ASSIGN_OR_RETURN(Chunker chunker, Chunker::Create(message, chunk_bytes));
  std::vector<pb::Envelope> out;
  out.reserve(chunker.chunk_count());
  for (uint32_t i = 0; i < chunker.chunk_count(); ++i) out.push_back(chunker.Chunk(i));
  return out;
}

}  // namespace r2f
