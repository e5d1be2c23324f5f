// Chunker, Reassembler and checksum: pure logic, no MQTT.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "common/base/checksum.h"
#include "common/net/chunker.h"
#include "common/net/reassembler.h"
#include "common/net/reply_cache.h"
#include "common/net/transport_message.h"
#include "common/net/transport_topics.h"

namespace r2f {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

Message MakeMessage(size_t size, uint64_t request_id = 7) {
  Message m;
  m.kind = pb::MSG_DEPLOY_MODEL;
  m.job_id = "job-1";
  m.request_id = request_id;
  m.device_id = "dev-1";
  m.payload = RandomBytes(size, static_cast<uint32_t>(size + request_id));
  return m;
}

std::vector<pb::Envelope> Split(const Message& m, size_t chunk_bytes) {
  auto r = SplitIntoChunks(m, chunk_bytes);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : std::vector<pb::Envelope>{};
}

// Feeds `chunks` in order; expects exactly the last one to complete the message.
Message FeedAll(Reassembler& r, const std::vector<pb::Envelope>& chunks) {
  Message out;
  for (size_t i = 0; i < chunks.size(); ++i) {
    auto res = r.Add(chunks[i]);
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    if (!res.ok()) return out;
    EXPECT_EQ(res->has_value(), i + 1 == chunks.size()) << "chunk " << i;
    if (res->has_value()) out = std::move(**res);
  }
  return out;
}

TEST(ChecksumTest, KnownVectors) {
  EXPECT_EQ(Crc32(""), 0u);
  EXPECT_EQ(Crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(Crc32Extend(Crc32("12345"), "6789"), 0xCBF43926u);
  EXPECT_EQ(Crc32Extend(0xCBF43926u, ""), 0xCBF43926u);
  EXPECT_EQ(Crc32Combine(Crc32("1234"), Crc32("56789"), 5), 0xCBF43926u);
  EXPECT_EQ(Crc32Combine(Crc32("123456789"), Crc32(""), 0), 0xCBF43926u);
  EXPECT_EQ(Crc32Combine(0, Crc32("123456789"), 9), 0xCBF43926u);  // from an empty start
}

// The bitwise definition (reflected polynomial 0xEDB88320, inverted in and out), against which
// the library's folding is checked: every length up to a few vector blocks, unaligned starts,
// and a long buffer continued from a running CRC.
uint32_t BitwiseCrc32(uint32_t crc, const std::string& s, size_t from, size_t n) {
  crc = ~crc;
  for (size_t i = from; i < from + n; ++i) {
    crc ^= static_cast<uint8_t>(s[i]);
    for (int b = 0; b < 8; ++b) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

TEST(ChecksumTest, EqualsTheBitwiseDefinitionForEveryLengthAndAlignment) {
  std::mt19937 rng(7);
  std::string s(70000, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  for (size_t n = 0; n <= 600; ++n) {
    for (size_t from : {0, 1, 3, 13}) {
      ASSERT_EQ(Crc32(std::string_view(s).substr(from, n)), BitwiseCrc32(0, s, from, n))
          << "length " << n << " from " << from;
    }
  }
  const uint32_t head = Crc32(std::string_view(s).substr(0, 1001));
  EXPECT_EQ(Crc32Extend(head, std::string_view(s).substr(1001)),
            BitwiseCrc32(head, s, 1001, s.size() - 1001));
}

// The payload CRC the chunker combines from its chunks' CRCs is the CRC of the payload, for
// chunk sizes that divide it and that do not.
TEST(ChunkerTest, PayloadCrcIsTheCrcOfThePayload) {
  for (size_t chunk : {1, 7, 300, 1000, 4096}) {
    Message m = MakeMessage(1000);
    auto c = Chunker::Create(m, chunk);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->payload_crc32(), Crc32(m.payload)) << "chunks of " << chunk;
    for (uint32_t i = 0; i < c->chunk_count(); ++i) {
      const pb::Envelope env = c->Chunk(i);
      EXPECT_EQ(env.chunk_crc32(), Crc32(env.chunk())) << "chunk " << i;
    }
  }
}

TEST(ChunkerTest, SplitsWithChecksumsAndSizes) {
  Message m = MakeMessage(1000);
  auto chunks = Split(m, 300);
  ASSERT_EQ(chunks.size(), 4u);
  size_t total = 0;
  for (uint32_t i = 0; i < chunks.size(); ++i) {
    const auto& e = chunks[i];
    EXPECT_EQ(e.protocol_version(), kProtocolVersion);
    EXPECT_EQ(e.chunk_index(), i);
    EXPECT_EQ(e.chunk_count(), 4u);
    EXPECT_EQ(e.payload_size(), 1000u);
    EXPECT_EQ(e.payload_crc32(), Crc32(m.payload));
    EXPECT_EQ(e.chunk_crc32(), Crc32(e.chunk()));
    EXPECT_EQ(e.chunk(), m.payload.substr(i * 300, 300));
    EXPECT_EQ(e.device_id(), "dev-1");
    EXPECT_EQ(e.job_id(), "job-1");
    EXPECT_EQ(e.request_id(), 7u);
    EXPECT_EQ(e.kind(), pb::MSG_DEPLOY_MODEL);
    total += e.chunk().size();
  }
  EXPECT_EQ(total, 1000u);
  EXPECT_EQ(chunks.back().chunk().size(), 100u);
}

TEST(ChunkerTest, EmptyPayloadIsOneEmptyChunk) {
  Message m = MakeMessage(0);
  auto chunks = Split(m, kDefaultChunkBytes);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].chunk_count(), 1u);
  EXPECT_TRUE(chunks[0].chunk().empty());
  Reassembler r;
  Message out = FeedAll(r, chunks);
  EXPECT_EQ(out.payload, "");
  EXPECT_EQ(out.kind, pb::MSG_DEPLOY_MODEL);
}

TEST(ChunkerTest, ExactMultipleHasNoEmptyTail) {
  Message m = MakeMessage(600);
  EXPECT_EQ(Split(m, 300).size(), 2u);
  EXPECT_EQ(Split(m, 600).size(), 1u);
  EXPECT_EQ(Split(m, 1 << 20).size(), 1u);
}

// What the transport publishes (the chunk bytes after the header fields, copied once) parses to
// the envelope Chunk() builds, for every chunk of payloads with a short last chunk, an exact
// multiple, one chunk, and none; the header fields that travel in replies are set too.
TEST(ChunkerTest, SerializedChunkParsesToTheEnvelope) {
  for (size_t size :
       {size_t{0}, size_t{1}, size_t{299}, size_t{600}, size_t{1000}, size_t{70000}}) {
    Message m = MakeMessage(size);
    m.lease_id = 9;
    m.handler_us = 1234;
    m.queued_us = 56;
    for (size_t chunk : {size_t{300}, size_t{1} << 20}) {
      auto c = Chunker::Create(m, chunk);
      ASSERT_TRUE(c.ok());
      for (uint32_t i = 0; i < c->chunk_count(); ++i) {
        pb::Envelope parsed;
        const std::string serialized = c->SerializedChunk(i, 42);
        ASSERT_TRUE(parsed.ParseFromString(serialized));
        const pb::Envelope expected = c->Chunk(i, 42);
        EXPECT_EQ(serialized.size(), expected.ByteSizeLong()) << "the same fields, reordered";
        EXPECT_EQ(parsed.SerializeAsString(), expected.SerializeAsString())
            << size << " bytes in chunks of " << chunk << ", chunk " << i;
        EXPECT_EQ(parsed.queued_us(), 56u);
      }
    }
  }
}

TEST(ChunkerTest, RejectsZeroChunkBytes) {
  Message m = MakeMessage(10);
  auto r = Chunker::Create(m, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
}

TEST(ReassemblerTest, InOrderRoundTrip) {
  Message m = MakeMessage(100000);
  Reassembler r;
  Message out = FeedAll(r, Split(m, 4096));
  EXPECT_EQ(out.payload, m.payload);
  EXPECT_EQ(out.job_id, m.job_id);
  EXPECT_EQ(out.request_id, m.request_id);
  EXPECT_EQ(out.device_id, m.device_id);
  EXPECT_EQ(out.kind, m.kind);
  EXPECT_EQ(r.inflight_messages(), 0u);
  EXPECT_EQ(r.inflight_bytes(), 0u);
  EXPECT_EQ(r.stats().completed, 1u);
}

TEST(ReassemblerTest, OutOfOrderWithDuplicates) {
  Message m = MakeMessage(50000);
  auto chunks = Split(m, 1000);
  ASSERT_EQ(chunks.size(), 50u);
  // Shuffle, then interleave duplicates of already-sent chunks (before completion).
  std::mt19937 rng(3);
  std::shuffle(chunks.begin(), chunks.end(), rng);
  std::vector<pb::Envelope> feed;
  for (size_t i = 0; i < chunks.size(); ++i) {
    feed.push_back(chunks[i]);
    if (i % 3 == 0 && i + 1 < chunks.size()) feed.push_back(chunks[i / 2]);
  }
  Reassembler r;
  std::optional<Message> out;
  for (size_t i = 0; i < feed.size(); ++i) {
    auto res = r.Add(feed[i]);
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    if (res->has_value()) {
      EXPECT_EQ(i + 1, feed.size()) << "completed early";
      out = std::move(*res);
    }
  }
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->payload, m.payload);
  EXPECT_EQ(r.stats().duplicates, feed.size() - chunks.size());
  EXPECT_EQ(r.stats().completed, 1u);
  EXPECT_EQ(r.inflight_bytes(), 0u);
}

TEST(ReassemblerTest, InterleavedMessagesAreKeptApart) {
  Message a = MakeMessage(5000, 1);
  Message b = MakeMessage(5000, 2);  // same job/device/kind, other request id
  Message c = MakeMessage(5000, 1);
  c.kind = pb::MSG_GET_DATA;  // same request id, other kind
  auto ca = Split(a, 1000), cb = Split(b, 1000), cc = Split(c, 1000);
  Reassembler r;
  std::vector<Message> done;
  for (size_t i = 0; i < 5; ++i) {
    for (auto* v : {&ca, &cb, &cc}) {
      auto res = r.Add((*v)[4 - i]);
      ASSERT_TRUE(res.ok()) << res.status().ToString();
      if (res->has_value()) done.push_back(std::move(**res));
    }
  }
  ASSERT_EQ(done.size(), 3u);
  EXPECT_EQ(done[0].payload, a.payload);
  EXPECT_EQ(done[1].payload, b.payload);
  EXPECT_EQ(done[2].payload, c.payload);
  EXPECT_EQ(done[2].kind, pb::MSG_GET_DATA);
}

// One rejection case: a mutation of a valid first chunk and the expected code and message part.
struct RejectCase {
  const char* name;
  std::function<void(pb::Envelope&)> mutate;
  Status::Code code;
  const char* message_part;
};

// Names the case in test listings (CTest shows GetParam() otherwise as raw bytes).
void PrintTo(const RejectCase& c, std::ostream* os) { *os << c.name; }

class ReassemblerRejectTest : public ::testing::TestWithParam<RejectCase> {};

TEST_P(ReassemblerRejectTest, RejectsWithNamedReason) {
  const RejectCase& c = GetParam();
  Message m = MakeMessage(4000);
  auto chunks = Split(m, 1000);
  pb::Envelope bad = chunks[1];
  c.mutate(bad);
  ReassemblerOptions opts;
  opts.max_payload_bytes = 1 << 20;
  opts.max_chunk_count = 100;
  Reassembler r(opts);
  auto res = r.Add(bad);
  ASSERT_FALSE(res.ok()) << c.name << " was accepted";
  EXPECT_EQ(res.status().code(), c.code) << res.status().ToString();
  EXPECT_NE(res.status().message().find(c.message_part), std::string::npos)
      << res.status().ToString();
  // The message names which request it was about.
  EXPECT_NE(res.status().message().find("request=7"), std::string::npos) << res.status().ToString();
  EXPECT_EQ(r.stats().rejected, 1u);
  EXPECT_EQ(r.inflight_bytes(), 0u);
  // A valid message still goes through afterwards.
  Message ok = FeedAll(r, Split(MakeMessage(3000, 8), 1000));
  EXPECT_EQ(ok.payload.size(), 3000u);
}

INSTANTIATE_TEST_SUITE_P(
    AllKinds, ReassemblerRejectTest,
    ::testing::Values(
        RejectCase{"WrongVersion", [](pb::Envelope& e) { e.set_protocol_version(2); },
                   Status::Code::kInvalidArgument, "protocol version 2"},
        RejectCase{"UnknownKind", [](pb::Envelope& e) { e.set_kind(pb::MessageKind(77)); },
                   Status::Code::kInvalidArgument, "unknown message kind"},
        RejectCase{"UnspecifiedKind", [](pb::Envelope& e) { e.set_kind(pb::MSG_UNSPECIFIED); },
                   Status::Code::kInvalidArgument, "unknown message kind"},
        RejectCase{"ZeroCount", [](pb::Envelope& e) { e.set_chunk_count(0); },
                   Status::Code::kInvalidArgument, "chunk_count is 0"},
        RejectCase{"CountOverLimit", [](pb::Envelope& e) { e.set_chunk_count(101); },
                   Status::Code::kInvalidArgument, "chunk_count 101 exceeds the limit 100"},
        RejectCase{"IndexOutOfRange", [](pb::Envelope& e) { e.set_chunk_index(4); },
                   Status::Code::kInvalidArgument, "chunk_index 4 out of range"},
        RejectCase{"PayloadOverLimit", [](pb::Envelope& e) { e.set_payload_size(2 << 20); },
                   Status::Code::kInvalidArgument, "payload_size 2097152 exceeds the limit"},
        RejectCase{"MoreChunksThanBytes",
                   [](pb::Envelope& e) {
                     e.set_payload_size(3);
                     e.set_chunk_count(5);
                   },
                   Status::Code::kInvalidArgument, "5 chunks for a payload of 3 bytes"},
        RejectCase{"ChunkLargerThanPayload", [](pb::Envelope& e) { e.set_payload_size(500); },
                   Status::Code::kInvalidArgument, "larger than payload_size"},
        RejectCase{"BadChunkCrc", [](pb::Envelope& e) { e.set_chunk_crc32(e.chunk_crc32() ^ 1); },
                   Status::Code::kCorruption, "chunk CRC-32"},
        RejectCase{"FlippedChunkByte", [](pb::Envelope& e) { (*e.mutable_chunk())[10] ^= 0x40; },
                   Status::Code::kCorruption, "chunk CRC-32"}),
    [](const ::testing::TestParamInfo<RejectCase>& info) { return info.param.name; });

TEST(ReassemblerTest, InconsistentHeadersAcrossChunksDropTheMessage) {
  Message m = MakeMessage(4000);
  auto chunks = Split(m, 1000);
  for (int field = 0; field < 3; ++field) {
    Reassembler r;
    ASSERT_TRUE(r.Add(chunks[0]).ok());
    pb::Envelope bad = chunks[1];
    if (field == 0) bad.set_payload_size(3999);
    if (field == 1) bad.set_payload_crc32(bad.payload_crc32() + 1);
    if (field == 2) {
      bad.set_chunk_count(5);
    }
    auto res = r.Add(bad);
    ASSERT_FALSE(res.ok()) << "field " << field;
    EXPECT_EQ(res.status().code(), Status::Code::kInvalidArgument);
    EXPECT_NE(res.status().message().find("disagrees with earlier chunks"), std::string::npos)
        << res.status().ToString();
    EXPECT_EQ(r.inflight_messages(), 0u) << "partial message kept after inconsistency";
    EXPECT_EQ(r.inflight_bytes(), 0u);
  }
}

TEST(ReassemblerTest, DuplicateWithDifferentContentIsCorruption) {
  Message m = MakeMessage(4000);
  auto chunks = Split(m, 1000);
  Reassembler r;
  ASSERT_TRUE(r.Add(chunks[0]).ok());
  pb::Envelope evil = chunks[0];
  (*evil.mutable_chunk())[0] ^= 1;
  evil.set_chunk_crc32(Crc32(evil.chunk()));  // self-consistent, but not what we hold
  auto res = r.Add(evil);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), Status::Code::kCorruption);
  EXPECT_NE(res.status().message().find("duplicate with different contents"), std::string::npos);
}

TEST(ReassemblerTest, WholePayloadCrcMismatchIsCorruption) {
  Message m = MakeMessage(4000);
  auto chunks = Split(m, 1000);
  for (auto& c : chunks) c.set_payload_crc32(c.payload_crc32() ^ 0x80000000u);
  Reassembler r;
  for (size_t i = 0; i + 1 < chunks.size(); ++i) ASSERT_TRUE(r.Add(chunks[i]).ok());
  auto res = r.Add(chunks.back());
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), Status::Code::kCorruption);
  EXPECT_NE(res.status().message().find("payload CRC-32"), std::string::npos);
  EXPECT_EQ(r.inflight_bytes(), 0u);
}

TEST(ReassemblerTest, ChunksShorterThanPayloadSizeAreCorruption) {
  // Four chunks that together hold fewer bytes than payload_size claims.
  Message m = MakeMessage(4000);
  auto chunks = Split(m, 1000);
  for (auto& c : chunks) c.set_payload_size(4001);
  Reassembler r;
  for (size_t i = 0; i + 1 < chunks.size(); ++i) ASSERT_TRUE(r.Add(chunks[i]).ok());
  auto res = r.Add(chunks.back());
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), Status::Code::kCorruption);
  EXPECT_NE(res.status().message().find("add up to 4000 bytes"), std::string::npos)
      << res.status().ToString();
}

TEST(ReassemblerTest, ChunksLongerThanPayloadSizeAreRejectedEarly) {
  // Chunks that add up to more than payload_size: caught when the excess arrives.
  Message m = MakeMessage(4000);
  auto chunks = Split(m, 1000);
  for (auto& c : chunks) c.set_payload_size(2500);
  Reassembler r;
  ASSERT_TRUE(r.Add(chunks[0]).ok());
  ASSERT_TRUE(r.Add(chunks[1]).ok());
  auto res = r.Add(chunks[2]);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), Status::Code::kCorruption);
  EXPECT_NE(res.status().message().find("more than payload_size"), std::string::npos);
  EXPECT_EQ(r.inflight_bytes(), 0u);
}

TEST(ReassemblerTest, InflightBytesLimit) {
  ReassemblerOptions opts;
  opts.max_inflight_bytes = 2500;
  Reassembler r(opts);
  auto a = Split(MakeMessage(4000, 1), 1000);
  auto b = Split(MakeMessage(4000, 2), 1000);
  ASSERT_TRUE(r.Add(a[0]).ok());
  ASSERT_TRUE(r.Add(a[1]).ok());
  auto res = r.Add(b[0]);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), Status::Code::kResourceExhausted);
  EXPECT_NE(res.status().message().find("limit 2500"), std::string::npos);
  // The message already in flight is not harmed by someone else hitting the limit.
  EXPECT_EQ(r.inflight_bytes(), 2000u);
  EXPECT_EQ(r.inflight_messages(), 1u);
}

TEST(ReassemblerTest, TimeoutEvictsStalledMessagesOnly) {
  steady_clock::time_point now{};
  ReassemblerOptions opts;
  opts.timeout = milliseconds(1000);
  opts.clock = [&now] { return now; };
  Reassembler r(opts);
  auto a = Split(MakeMessage(3000, 1), 1000);
  auto b = Split(MakeMessage(3000, 2), 1000);
  ASSERT_TRUE(r.Add(a[0]).ok());
  now += milliseconds(600);
  ASSERT_TRUE(r.Add(b[0]).ok());
  now += milliseconds(600);
  ASSERT_TRUE(r.Add(b[1]).ok());  // progress keeps b alive; a stalled for 1200 ms
  EXPECT_EQ(r.stats().expired, 1u);
  EXPECT_EQ(r.inflight_messages(), 1u);
  EXPECT_EQ(r.inflight_bytes(), 2000u);
  // b's last progress was 0 ms ago, so 999 ms later it is still held ...
  now += milliseconds(999);
  EXPECT_TRUE(r.EvictExpired().empty());
  // ... and at 1000 ms it goes.
  now += milliseconds(1);
  auto dropped = r.EvictExpired();
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].request_id, 2u);
  EXPECT_EQ(r.inflight_bytes(), 0u);
  // A's late chunks start a new message, which cannot complete without a[0]: no bogus result.
  auto res = r.Add(a[1]);
  ASSERT_TRUE(res.ok());
  EXPECT_FALSE(res->has_value());
  ASSERT_TRUE(r.Add(a[2]).ok());
  res = r.Add(a[0]);
  ASSERT_TRUE(res.ok());
  ASSERT_TRUE(res->has_value());
  EXPECT_EQ((*res)->payload.size(), 3000u);
}

TEST(ReassemblerTest, ParseEnvelopeRejectsGarbage) {
  auto bad = ParseEnvelope(std::string("\xff\xff\xff\xff garbage", 13));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Status::Code::kCorruption);
  auto chunks = Split(MakeMessage(10), 100);
  auto good = ParseEnvelope(chunks[0].SerializeAsString());
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->chunk(), chunks[0].chunk());
}

TEST(TransportMessageTest, ErrorReplyRoundTrip) {
  Status s = Status::Corruption("chunk 3/5 bad");
  Status back = DecodeErrorReply(EncodeErrorReply(s, pb::MSG_GET_DATA));
  EXPECT_EQ(back.code(), Status::Code::kCorruption);
  EXPECT_EQ(back.message(), "chunk 3/5 bad");
  EXPECT_EQ(DecodeErrorReply("\xff\xff").code(), Status::Code::kCorruption);
  EXPECT_FALSE(DecodeErrorReply(EncodeErrorReply(Status::Ok(), pb::MSG_GET_DATA)).ok());
}

TEST(TransportMessageTest, KindsAndDeviceIds) {
  EXPECT_TRUE(IsRequestKind(pb::MSG_GET_DATA));
  EXPECT_TRUE(IsRequestKind(pb::MSG_DEPLOY_MODEL));
  EXPECT_FALSE(IsRequestKind(pb::MSG_ACK));
  EXPECT_FALSE(IsRequestKind(pb::MSG_STATUS));
  EXPECT_FALSE(IsRequestKind(pb::MSG_UNSPECIFIED));
  EXPECT_FALSE(IsRequestKind(pb::MessageKind(77)));
  EXPECT_TRUE(IsReplyKind(pb::MSG_ERROR));
  EXPECT_FALSE(IsReplyKind(pb::MSG_GET_DATA));
  EXPECT_TRUE(ValidateDeviceId("dev-1").ok());
  EXPECT_FALSE(ValidateDeviceId("").ok());
  EXPECT_FALSE(ValidateDeviceId("a/b").ok());
  EXPECT_FALSE(ValidateDeviceId("a+").ok());
  EXPECT_FALSE(ValidateDeviceId("#").ok());
  EXPECT_FALSE(ValidateDeviceId("dev.1").ok()) << "RabbitMQ would split the topic level";
  EXPECT_FALSE(ValidateDeviceId("dev*").ok());
}

TEST(ReplyCacheTest, LruByEntriesAndBytes) {
  auto entry = [](size_t bytes) {
    Message reply;
    reply.kind = pb::MSG_ACK;
    reply.payload.assign(bytes, 'x');
    return ReplyCache::Entry{pb::MSG_GET_DATA, 0, 0, std::make_shared<const Message>(reply)};
  };
  ReplyCache cache(3, 1000);
  cache.Insert("j", 1, entry(100));
  cache.Insert("j", 2, entry(100));
  cache.Insert("j", 3, entry(100));
  ASSERT_TRUE(cache.Find("j", 1).has_value());  // 1 is now the most recent
  cache.Insert("j", 4, entry(100));             // evicts 2, the least recent
  EXPECT_FALSE(cache.Find("j", 2).has_value());
  EXPECT_TRUE(cache.Find("j", 1).has_value());
  EXPECT_TRUE(cache.Find("j", 3).has_value());
  EXPECT_FALSE(cache.Find("other-job", 3).has_value());  // keyed by job and request id
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.bytes(), 300u);
  cache.Insert("j", 5, entry(850));  // over the byte bound: the oldest go until it fits
  EXPECT_TRUE(cache.Find("j", 5).has_value());
  EXPECT_EQ(cache.bytes(), 950u);
  EXPECT_EQ(cache.size(), 2u);
  cache.Insert("j", 6, entry(5000));  // alone over the bound: still kept (retries must work)
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_TRUE(cache.Find("j", 6).has_value());
  cache.Insert("j", 6, entry(10));  // replacing keeps the byte count right
  EXPECT_EQ(cache.bytes(), 10u);
}

TEST(TransportTopicsTest, BuildAndParse) {
  EXPECT_EQ(DeviceTopic("r2f/v1", "dev-1", TopicLeaf::kCmd), "r2f/v1/dev-1/cmd");
  EXPECT_EQ(DeviceTopic("r2f/v1", "+", TopicLeaf::kStatus), "r2f/v1/+/status");
  auto t = ParseTopic("r2f/v1", "r2f/v1/dev-1/data");
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->device_id, "dev-1");
  EXPECT_EQ(t->leaf, TopicLeaf::kData);
  EXPECT_FALSE(ParseTopic("r2f/v1", "r2f/v2/dev-1/data").has_value());
  EXPECT_FALSE(ParseTopic("r2f/v1", "r2f/v1//data").has_value());
  EXPECT_FALSE(ParseTopic("r2f/v1", "r2f/v1/dev-1/data/x").has_value());
  EXPECT_FALSE(ParseTopic("r2f/v1", "r2f/v1/dev-1").has_value());
  EXPECT_FALSE(ParseTopic("r2f/v1", "r2f/v1x/dev-1/cmd").has_value());
  EXPECT_EQ(ReplyLeaf(pb::MSG_DATA, pb::MSG_GET_DATA), TopicLeaf::kData);
  EXPECT_EQ(ReplyLeaf(pb::MSG_ERROR, pb::MSG_GET_DATA), TopicLeaf::kData);
  EXPECT_EQ(ReplyLeaf(pb::MSG_ERROR, pb::MSG_DEPLOY_MODEL), TopicLeaf::kAck);
  EXPECT_EQ(ReplyLeaf(pb::MSG_ACK, pb::MSG_SET_AIOT_MODE), TopicLeaf::kAck);
}

}  // namespace
}  // namespace r2f
