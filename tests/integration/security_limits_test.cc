// Resource limits against a misbehaving or malicious peer (docs/security.md): each limit
// triggers a clear rejection and the daemon keeps serving everyone else.
// - Reassembler (pure): per-device message and byte budgets, bookkeeping of announced chunks
//   charged before any payload arrives, oversized ids.
// - Transport through the project's broker config and ACL: a device flooding the server with
//   replies nobody asked for costs no memory; a device whose reply passes its budget fails its
//   own call with the limit named while another device is served; a device refuses an
//   oversized request at the first chunk; a full request queue answers busy and the retry
//   recovers.
// - Device config: the request limit follows limits.max_model_bytes.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "client/device_config.h"
#include "common/base/checksum.h"
#include "common/net/chunker.h"
#include "common/net/reassembler.h"
#include "common/net/transport.h"
#include "common/net/transport_topics.h"
#include "tests/support/daemon_test_util.h"
#include "tests/support/security_test_util.h"

namespace r2f {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::CredentialClient;
using testing::kServerUser;
using Role = TransportOptions::Role;

constexpr char kPassA[] = "limits-pass-a";
constexpr char kPassB[] = "limits-pass-b";
constexpr char kPassServer[] = "limits-pass-server";

// Chunk `index` of a `chunks`-chunk message of `payload_size` bytes, equal chunks (real
// content and CRCs, so a complete set reassembles).
pb::Envelope Chunk(const std::string& device, uint64_t request_id, uint32_t index, uint32_t chunks,
                   uint64_t payload_size, pb::MessageKind kind = pb::MSG_DATA) {
  Message m;
  m.kind = kind;
  m.job_id = "job-1";
  m.request_id = request_id;
  m.device_id = device;
  m.payload.assign(payload_size, 'x');
  return Chunker::Create(m, (payload_size + chunks - 1) / chunks).value().Chunk(index);
}

// A chunk of `chunk_bytes` claiming to belong to a message of `payload_size` bytes in `chunks`
// chunks, without building that message: what a peer announcing a huge message sends.
pb::Envelope Announce(const std::string& device, uint64_t request_id, uint32_t index,
                      uint32_t chunks, uint64_t payload_size, size_t chunk_bytes) {
  pb::Envelope e;
  e.set_protocol_version(kProtocolVersion);
  e.set_device_id(device);
  e.set_job_id("job-1");
  e.set_request_id(request_id);
  e.set_kind(pb::MSG_DATA);
  e.set_chunk_index(index);
  e.set_chunk_count(chunks);
  e.set_payload_size(payload_size);
  e.set_payload_crc32(0x12345678);
  e.set_chunk(std::string(chunk_bytes, static_cast<char>('a' + index % 26)));
  e.set_chunk_crc32(Crc32(e.chunk()));
  return e;
}

void ExpectExhausted(const Result<std::optional<Message>>& r, const std::string& text) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kResourceExhausted) << r.status().ToString();
  EXPECT_NE(r.status().message().find(text), std::string::npos) << r.status().ToString();
}

TEST(ReassemblerLimitsTest, OneDeviceCannotTakeAnothersMessageSlots) {
  ReassemblerOptions o;
  o.max_inflight_messages_per_device = 4;
  Reassembler r(o);
  for (uint64_t id = 1; id <= 4; ++id) ASSERT_TRUE(r.Add(Chunk("dev-a", id, 0, 2, 100)).ok());
  ExpectExhausted(r.Add(Chunk("dev-a", 5, 0, 2, 100)),
                  "device 'dev-a' already has 4 incomplete messages in flight, limit 4 per device");
  // Chunks of messages it already has still count, and other devices are not affected.
  auto done = r.Add(Chunk("dev-a", 1, 1, 2, 100));
  ASSERT_TRUE(done.ok() && done->has_value()) << done.status().ToString();
  ASSERT_TRUE(r.Add(Chunk("dev-b", 9, 0, 2, 100)).ok());
  auto b = r.Add(Chunk("dev-b", 9, 1, 2, 100));
  ASSERT_TRUE(b.ok() && b->has_value());
  // With one slot freed, dev-a may start another message.
  EXPECT_TRUE(r.Add(Chunk("dev-a", 5, 0, 2, 100)).ok());
  EXPECT_EQ(r.inflight_messages("dev-a"), 4u);
  EXPECT_EQ(r.inflight_messages("dev-b"), 0u);
}

TEST(ReassemblerLimitsTest, AnnouncedChunksAreChargedBeforeTheyArrive) {
  ReassemblerOptions o;
  o.max_inflight_bytes_per_device = 4u << 20;
  o.max_inflight_bytes = 16u << 20;
  Reassembler r(o);
  // 65536 one-byte chunks: one byte received, but 65536 slots allocated (3 MiB of bookkeeping).
  ASSERT_TRUE(r.Add(Chunk("dev-a", 1, 0, 65536, 65536)).ok());
  EXPECT_EQ(r.inflight_bytes(), 1u);
  EXPECT_GE(r.inflight_charged_bytes("dev-a"), 65536u * Reassembler::kSlotBytes);
  ExpectExhausted(r.Add(Chunk("dev-a", 2, 0, 65536, 65536)),
                  "device 'dev-a' holds " + std::to_string(r.inflight_charged_bytes("dev-a")) +
                      " bytes of incomplete messages");
  // The total budget stops many devices doing the same: 16 MiB hold five such headers.
  int accepted = 1;
  for (int d = 0; d < 10; ++d) {
    if (r.Add(Chunk("dev-" + std::to_string(d), 1, 0, 65536, 65536)).ok()) ++accepted;
  }
  EXPECT_EQ(accepted, 5);
  EXPECT_LE(r.inflight_charged_bytes(), o.max_inflight_bytes);
  ExpectExhausted(r.Add(Chunk("dev-x", 1, 0, 65536, 65536)), "limit 16777216");
  // A small message still completes in one chunk: it is never held.
  auto small = r.Add(Chunk("dev-y", 1, 0, 1, 10));
  ASSERT_TRUE(small.ok() && small->has_value()) << small.status().ToString();
}

TEST(ReassemblerLimitsTest, AMessagePassingItsBudgetIsDroppedWhole) {
  ReassemblerOptions o;
  o.max_inflight_bytes_per_device = 4000;  // 3 chunks of 1000 plus bookkeeping fit
  Reassembler r(o);
  ASSERT_TRUE(r.Add(Chunk("dev-a", 1, 0, 8, 8000)).ok());
  ASSERT_TRUE(r.Add(Chunk("dev-a", 1, 1, 8, 8000)).ok());
  ASSERT_TRUE(r.Add(Chunk("dev-a", 1, 2, 8, 8000)).ok());
  ExpectExhausted(r.Add(Chunk("dev-a", 1, 3, 8, 8000)), "limit 4000 per device; message dropped");
  // Having lost a chunk it could never complete: nothing of it is held any more.
  EXPECT_EQ(r.inflight_messages("dev-a"), 0u);
  EXPECT_EQ(r.inflight_charged_bytes("dev-a"), 0u);
  EXPECT_EQ(r.inflight_charged_bytes(), 0u);
}

TEST(ReassemblerLimitsTest, OversizedIdsAreRefusedWithoutEchoingThem) {
  Reassembler r;
  pb::Envelope env = Chunk("dev-a", 1, 0, 1, 10);
  env.set_job_id(std::string(100000, 'j'));
  auto res = r.Add(env);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(res.status().message().find("job_id"), std::string::npos) << res.status().ToString();
  EXPECT_LT(res.status().message().size(), 200u);
}

TEST(DeviceLimitsConfigTest, RequestLimitFollowsTheModelLimit) {
  auto map = ConfigMap::LoadString(
      "device_id: dev-1\n"
      "data: {train: {dir: /data}, test: {dir: /data}}\n"
      "limits: {max_model_bytes: 2000000, max_samples_per_request: 100, max_queued_requests: 3}\n",
      "client.yaml");
  ASSERT_TRUE(map.ok());
  auto cfg = ParseDeviceConfig(*map);
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->transport.max_incoming_payload_bytes, 2000000u + 16 * 100 + (64u << 10));
  EXPECT_EQ(cfg->transport.max_incoming_payload_bytes, MaxRequestBytes(cfg->service));
  EXPECT_EQ(cfg->transport.max_queued_requests, 3u);
}

// --- through the broker -------------------------------------------------------------------------

Result<Message> Echo(const Message& request) {
  Message reply;
  reply.kind = pb::MSG_DATA;
  reply.payload = request.payload;
  return reply;
}

Message Request(const std::string& payload, uint64_t id = 0) {
  Message m;
  m.kind = pb::MSG_GET_DATA;
  m.job_id = "job-1";
  m.request_id = id;
  m.payload = payload;
  return m;
}

class TransportLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::MakePasswordFile(
        dir_.File("passwd"), {{"dev-a", kPassA}, {"dev-b", kPassB}, {kServerUser, kPassServer}}));
    std::string error;
    int unused = 0;
    testing::MosquittoBroker::Options o;
    o.config = testing::ProjectBrokerConfig({dir_.File("passwd"), "", ""}, &unused, &error);
    ASSERT_TRUE(error.empty()) << error;
    broker_ = std::make_unique<testing::MosquittoBroker>(o);
    ASSERT_TRUE(broker_->Start()) << broker_->Log();
  }
  TransportOptions Device(const std::string& id, const std::string& password) const {
    return testing::SecureOptions(broker_->uri(), Role::kDevice, id, id, password);
  }
  TransportOptions Server() const {
    return testing::SecureOptions(broker_->uri(), Role::kServer, "", kServerUser, kPassServer);
  }
  static std::unique_ptr<Transport> ConnectOrDie(const TransportOptions& o) {
    auto t = Transport::Connect(o);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? std::move(t).value() : nullptr;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::MosquittoBroker> broker_;
};

// dev-a (a valid login, so the ACL lets its replies through) floods the server with large replies
// to requests never made, and with garbage. The server drops them before reassembly, logs a few
// lines only, and serves dev-b meanwhile.
TEST_F(TransportLimitsTest, UnsolicitedFloodCostsTheServerNoMemory) {
  // dev-b announces itself once (no periodic repeats), so that the count of messages below does
  // not depend on how long the flood takes on a loaded machine.
  TransportOptions b = Device("dev-b", kPassB);
  b.status_interval = std::chrono::milliseconds(0);
  auto dev_b = ConnectOrDie(b);
  ASSERT_TRUE(dev_b && dev_b->Serve(Echo).ok());
  auto server = ConnectOrDie(Server());
  ASSERT_TRUE(server);
  // A server only hears the devices it serves: dev-a is one of them, and floods.
  ASSERT_TRUE(server->Watch("dev-a").ok());
  CredentialClient attacker(broker_->uri(), "attacker", "dev-a", kPassA);
  ASSERT_TRUE(attacker.connected()) << attacker.error();
  const std::string data = DeviceTopic("r2f/v1", "dev-a", TopicLeaf::kData);
  constexpr int kFlood = 200;
  std::thread flood([&] {
    for (int i = 0; i < kFlood; ++i) {
      // The first chunk of a 256 MiB reply: held, it would pin 256 MiB of announced payload.
      attacker.Publish(
          data, Announce("dev-a", 1000 + i, 0, 2048, 256ull << 20, 1024).SerializeAsString());
      attacker.Publish(data, "garbage that is no envelope");
    }
  });
  auto r = server->Call("dev-b", Request("served meanwhile"), seconds(10), 1);
  flood.join();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->payload, "served meanwhile");
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return server->stats().unsolicited >= static_cast<uint64_t>(kFlood); }, seconds(10)))
      << "unsolicited " << server->stats().unsolicited;
  const TransportStats st = server->stats();
  EXPECT_GE(st.rejected, static_cast<uint64_t>(kFlood));  // the garbage
  EXPECT_GT(st.log_suppressed, 0u) << "every rejection was logged";
  EXPECT_EQ(st.messages_received, 2u);  // dev-b's status and its reply
}

// A device whose reply to a real call passes its per-device budget fails that call with the
// limit named; another device's call at the same time is served.
TEST_F(TransportLimitsTest, PerDeviceBudgetFailsOnlyTheOffendersCall) {
  auto dev_b = ConnectOrDie(Device("dev-b", kPassB));
  ASSERT_TRUE(dev_b && dev_b->Serve(Echo).ok());
  TransportOptions so = Server();
  so.max_inflight_bytes_per_device = 1u << 20;
  auto server = ConnectOrDie(so);
  ASSERT_TRUE(server);
  CredentialClient dev_a(broker_->uri(), "dev-a-raw", "dev-a", kPassA);
  ASSERT_TRUE(dev_a.connected()) << dev_a.error();

  constexpr uint64_t kId = 777;
  std::atomic<bool> stop{false};
  std::thread greedy([&] {
    // Waits for the request, then answers with 16 of the 32 chunks of a 4 MiB reply.
    dev_a.Subscribe(DeviceTopic("r2f/v1", "dev-a", TopicLeaf::kCmd));
    while (!stop) {
      auto m = dev_a.Next(milliseconds(100));
      if (!m) continue;
      for (uint32_t i = 0; i < 16; ++i) {
        dev_a.Publish(DeviceTopic("r2f/v1", "dev-a", TopicLeaf::kData),
                      Announce("dev-a", kId, i, 32, 4u << 20, 128u << 10).SerializeAsString());
      }
      return;
    }
  });
  std::this_thread::sleep_for(milliseconds(300));  // the raw subscription is in place
  auto offender = std::async(std::launch::async, [&] {
    return server->Call("dev-a", Request("give me data", kId), seconds(3), 1);
  });
  const std::string payload(600 << 10, 'b');  // under the 1 MiB per-device budget
  auto served = server->Call("dev-b", Request(payload), seconds(10), 1);
  ASSERT_TRUE(served.ok()) << served.status().ToString();
  EXPECT_EQ(served->payload.size(), payload.size());
  auto failed = offender.get();
  stop = true;
  greedy.join();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), Status::Code::kDeadlineExceeded);
  EXPECT_NE(failed.status().message().find("device 'dev-a' holds"), std::string::npos)
      << failed.status().ToString();
  EXPECT_NE(failed.status().message().find("limit 1048576 per device"), std::string::npos)
      << failed.status().ToString();
  // And dev-b keeps being served afterwards.
  auto again = server->Call("dev-b", Request("again"), seconds(5), 1);
  EXPECT_TRUE(again.ok()) << again.status().ToString();
}

// A request over the device's size limit is refused at its first chunk with InvalidArgument: a
// resend would be refused alike (and cost the whole upload again), so the call ends at once.
TEST_F(TransportLimitsTest, DeviceRefusesAnOversizedRequestAtTheFirstChunk) {
  TransportOptions d = Device("dev-a", kPassA);
  d.max_incoming_payload_bytes = 1u << 20;
  auto device = ConnectOrDie(d);
  ASSERT_TRUE(device && device->Serve(Echo).ok());
  auto server = ConnectOrDie(Server());
  ASSERT_TRUE(server);
  const auto start = std::chrono::steady_clock::now();
  auto big = server->Call("dev-a", Request(std::string(3u << 20, 'm')), seconds(10), 3);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), Status::Code::kInvalidArgument) << big.status().ToString();
  EXPECT_EQ(server->stats().retries, 0u);
  EXPECT_NE(big.status().message().find("payload_size 3145728 exceeds the limit 1048576"),
            std::string::npos)
      << big.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(5));
  auto small = server->Call("dev-a", Request("fits"), seconds(5), 1);
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  EXPECT_EQ(device->stats().handler_calls, 1u);
}

// max_queued_requests: requests beyond the queue are answered "device busy" (counted as
// dropped, logged), the call's retry after its back-off brings them back, and the device keeps
// serving.
TEST_F(TransportLimitsTest, FullRequestQueueAnswersBusyAndTheRetryRecovers) {
  TransportOptions d = Device("dev-a", kPassA);
  d.max_queued_requests = 2;
  auto device = ConnectOrDie(d);
  ASSERT_TRUE(device);
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> handled{0};
  ASSERT_TRUE(device
                  ->Serve([&](const Message& m) {
                    std::unique_lock<std::mutex> l(mu);
                    cv.wait(l, [&] { return release; });
                    ++handled;
                    return Echo(m);
                  })
                  .ok());
  auto server = ConnectOrDie(Server());
  ASSERT_TRUE(server);
  // The five arrive together: the queue takes two (or one, with one already running), the rest
  // are dropped. Once released, every round of retries gets at least two more through, so three
  // attempts always suffice; with two, a retry round arriving all at once could drop one again.
  std::vector<std::future<Result<Message>>> calls;
  for (int i = 0; i < 5; ++i) {
    calls.push_back(std::async(std::launch::async, [&, i] {
      return server->Call("dev-a", Request("r" + std::to_string(i), 100 + i), seconds(3), 3);
    }));
  }
  ASSERT_TRUE(testing::WaitUntil([&] { return device->stats().dropped >= 2; }, seconds(5)))
      << "dropped " << device->stats().dropped;
  {
    std::lock_guard<std::mutex> l(mu);
    release = true;
  }
  cv.notify_all();
  for (int i = 0; i < 5; ++i) {
    auto r = calls[i].get();
    ASSERT_TRUE(r.ok()) << i << ": " << r.status().ToString();
    EXPECT_EQ(r->payload, "r" + std::to_string(i));
  }
  EXPECT_EQ(handled.load(), 5);
  EXPECT_GE(server->stats().retries, 2u);
}

}  // namespace
}  // namespace r2f
