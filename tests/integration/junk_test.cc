// Junk on a device's command topic never crowds out a real request: after hundreds of partial
// 60 MB messages (announced, never finished) and a flood of garbage, the next evaluation is
// served at once and gives the same accuracy as before (docs/fleet.md, "Junk").
#include <gtest/gtest.h>

#include <chrono>

#include "common/base/checksum.h"
#include "common/net/chunker.h"
#include "common/net/transport_topics.h"
#include "mqtt/async_client.h"
#include "server/api/remote_eval.h"
#include "tests/support/daemon_fixture.h"

namespace r2f::testing {
namespace {

using Clock = std::chrono::steady_clock;

class JunkTest : public DaemonTest {};

TEST_F(JunkTest, PartialMessagesAndGarbageDoNotDelayTheNextEvaluation) {
  ASSERT_NO_FATAL_FAILURE(StartClient({}));
  ASSERT_NO_FATAL_FAILURE(ConnectServer());
  EvalSettings e;
  e.images = 256;
  e.batch_size = 64;
  e.execution_tag = 9;
  const pb::QuantizedModel model = TestModel();
  auto before = RunRemoteEval(*server_, kDevice, model, e);
  ASSERT_TRUE(before.ok()) << before.status().ToString();

  // 300 first chunks of 60 MB messages and 300 garbage payloads, QoS 1, from a raw client.
  mqtt::async_client junk(broker_.uri(), "junk-publisher");
  junk.connect()->wait();
  const std::string cmd = DeviceTopic("r2f/v1", kDevice, TopicLeaf::kCmd);
  constexpr uint64_t kPayload = 60ull << 20;
  constexpr size_t kJunkChunkBytes = 128 * 1024;  // any chunk size is accepted; these stay small
  std::vector<mqtt::delivery_token_ptr> sent;
  for (uint64_t i = 0; i < 300; ++i) {
    pb::Envelope env;
    env.set_protocol_version(kProtocolVersion);
    env.set_device_id(kDevice);
    env.set_job_id("junk");
    env.set_request_id(1000 + i);
    env.set_kind(pb::MSG_DEPLOY_MODEL);
    env.set_chunk_count(static_cast<uint32_t>(kPayload / kJunkChunkBytes));
    env.set_payload_size(kPayload);
    env.set_payload_crc32(7);
    env.set_chunk(std::string(kJunkChunkBytes, 'j'));
    env.set_chunk_crc32(Crc32(env.chunk()));
    const std::string bytes = env.SerializeAsString();
    sent.push_back(junk.publish(cmd, bytes.data(), bytes.size(), 1, false));
    const std::string garbage = "garbage " + std::to_string(i);
    sent.push_back(junk.publish(cmd, garbage.data(), garbage.size(), 1, false));
    // Paho refuses to hold more than a bounded number of unacknowledged QoS-1 messages
    // ("No more messages can be buffered", seen once in CI): flood in windows of 64.
    if (sent.size() >= 64) {
      for (auto& t : sent) t->wait();
      sent.clear();
    }
  }
  for (auto& t : sent) t->wait();
  junk.disconnect()->wait();

  const auto start = Clock::now();
  const uint64_t retries = server_->transport().stats().retries;
  auto after = RunRemoteEval(*server_, kDevice, model, e);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  ASSERT_TRUE(after.ok()) << after.status().ToString() << "\n" << client_->Log();
  EXPECT_EQ(after->accuracy.Top1(), before->accuracy.Top1());
  EXPECT_EQ(after->accuracy.count(), before->accuracy.count());
  EXPECT_EQ(server_->transport().stats().retries, retries) << "served at once, not after a retry";
  EXPECT_LT(seconds, 5.0) << "the evaluation waited behind the junk";
  // The eviction is logged by the device's housekeeping tick (every 200 ms), which may come
  // after the evaluation has finished.
  EXPECT_TRUE(WaitUntil(
      [&] { return client_->CountInLog("stale incomplete requests to admit new ones") > 0; },
      std::chrono::seconds(5)))
      << "the partial messages should have been evicted\n"
      << client_->Log();
}

}  // namespace
}  // namespace r2f::testing
