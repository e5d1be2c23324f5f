// The device's reassembler makes room for new requests by dropping the stalest incomplete ones
// (ReassemblerOptions::evict_stale_to_admit).
#include <gtest/gtest.h>

#include <chrono>

#include "common/base/checksum.h"
#include "common/net/reassembler.h"

namespace r2f {
namespace {

using Clock = std::chrono::steady_clock;

pb::Envelope Chunk(uint64_t request_id, uint32_t index, uint32_t chunks, size_t chunk_bytes) {
  pb::Envelope e;
  e.set_protocol_version(kProtocolVersion);
  e.set_device_id("dev");
  e.set_job_id("job");
  e.set_request_id(request_id);
  e.set_kind(pb::MSG_DEPLOY_MODEL);
  e.set_chunk_index(index);
  e.set_chunk_count(chunks);
  e.set_payload_size(uint64_t{chunks} * chunk_bytes);
  e.set_chunk(std::string(chunk_bytes, static_cast<char>('a' + index % 26)));
  e.set_chunk_crc32(Crc32(e.chunk()));
  std::string whole;
  for (uint32_t i = 0; i < chunks; ++i) whole += std::string(chunk_bytes, 'a' + i % 26);
  e.set_payload_crc32(Crc32(whole));
  return e;
}

struct FakeClock {
  Clock::time_point now = Clock::now();
  std::function<Clock::time_point()> fn() {
    return [this] { return now; };
  }
};

TEST(ReassemblerEvictionTest, ANewMessageTakesTheStalestSlotAndAMovingOneSurvives) {
  FakeClock clock;
  ReassemblerOptions o;
  o.max_inflight_messages_per_device = 3;
  o.evict_stale_to_admit = true;
  o.clock = clock.fn();
  Reassembler r(o);
  // Request 1 is a real transfer of 200 chunks that keeps moving; the rest is stalled junk.
  constexpr uint32_t kChunks = 200;
  uint32_t next = 0;
  ASSERT_TRUE(r.Add(Chunk(1, next++, kChunks, 100)).ok());
  for (uint64_t junk = 10; junk < 300; ++junk) {
    clock.now += std::chrono::milliseconds(1);
    auto added = r.Add(Chunk(junk, 0, 4, 100));
    ASSERT_TRUE(added.ok()) << added.status().ToString();
    if (junk % 2 == 0) {
      clock.now += std::chrono::milliseconds(1);
      ASSERT_TRUE(r.Add(Chunk(1, next++, kChunks, 100)).ok()) << "request 1 was evicted";
    }
  }
  EXPECT_LE(r.inflight_messages("dev"), 3u);
  EXPECT_GE(r.stats().evicted, 280u);
  // The moving transfer was never the stalest: it completes.
  Result<std::optional<Message>> done = std::optional<Message>();
  while (next < kChunks) done = r.Add(Chunk(1, next++, kChunks, 100));
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  ASSERT_TRUE(done->has_value());
  EXPECT_EQ((*done)->request_id, 1u);
}

TEST(ReassemblerEvictionTest, WithoutTheOptionTheLimitRefuses) {
  ReassemblerOptions o;
  o.max_inflight_messages_per_device = 2;
  Reassembler r(o);
  ASSERT_TRUE(r.Add(Chunk(1, 0, 2, 10)).ok());
  ASSERT_TRUE(r.Add(Chunk(2, 0, 2, 10)).ok());
  auto refused = r.Add(Chunk(3, 0, 2, 10));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::Code::kResourceExhausted);
  EXPECT_EQ(r.stats().evicted, 0u);
}

TEST(ReassemblerEvictionTest, AMessageLargerThanTheWholeBudgetIsStillRefused) {
  ReassemblerOptions o;
  o.max_inflight_bytes_per_device = 10000;
  o.evict_stale_to_admit = true;
  Reassembler r(o);
  ASSERT_TRUE(r.Add(Chunk(1, 0, 2, 1000)).ok());
  auto refused = r.Add(Chunk(2, 0, 2, 20000));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::Code::kResourceExhausted);
}

}  // namespace
}  // namespace r2f
