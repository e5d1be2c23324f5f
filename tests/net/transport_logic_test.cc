// The transport's own logic (routing, retries, the reply cache, error replies, subscriptions
// per device, resending after a reconnect) in process, over the fake broker of
// tests/net/fake_mqtt.h. The same transport against a real mosquitto:
// tests/integration/transport_test.cc.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/base/checksum.h"
#include "common/net/chunker.h"
#include "common/net/transport.h"
#include "common/net/transport_topics.h"
#include "tests/net/fake_mqtt.h"

namespace r2f {
namespace {

using r2f::testing::FakeBroker;
using std::chrono::milliseconds;
using std::chrono::seconds;

bool WaitFor(const std::function<bool()>& cond, milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return cond();
}

TransportOptions Options(TransportOptions::Role role, const std::string& device,
                         const std::string& client_id) {
  TransportOptions o;
  o.role = role;
  o.device_id = device;
  o.client_id = client_id;
  o.connect_timeout = seconds(2);
  return o;
}

Message Request(pb::MessageKind kind, std::string payload) {
  Message m;
  m.kind = kind;
  m.job_id = "job";
  m.payload = std::move(payload);
  return m;
}

// A device served by the fake broker, with a handler that counts its calls.
struct FakeDevice {
  FakeDevice(FakeBroker& broker, const std::string& id,
             std::function<Result<Message>(const Message&)> handler = nullptr) {
    TransportOptions o = Options(TransportOptions::Role::kDevice, id, "dev-" + id);
    auto t = Transport::Connect(o, broker.NewClient(o.client_id, /*clean_session=*/false));
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    transport = std::move(t).value();
    auto echo = [this, handler](const Message& req) -> Result<Message> {
      ++calls;
      if (handler) return handler(req);
      Message reply;
      reply.kind = req.kind == pb::MSG_GET_DATA ? pb::MSG_DATA : pb::MSG_ACK;
      reply.payload = req.payload;
      return reply;
    };
    EXPECT_TRUE(transport->Serve(echo).ok());
  }
  std::unique_ptr<Transport> transport;
  std::atomic<int> calls{0};
};

std::unique_ptr<Transport> NewServer(FakeBroker& broker, const std::string& client_id) {
  TransportOptions o = Options(TransportOptions::Role::kServer, "", client_id);
  auto t = Transport::Connect(o, broker.NewClient(client_id, /*clean_session=*/true));
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return std::move(t).value();
}

TEST(TransportLogicTest, RoundTripAndRetainedStatus) {
  FakeBroker broker;
  FakeDevice device(broker, "d1");
  auto server = NewServer(broker, "srv");
  auto reply = server->Call("d1", Request(pb::MSG_GET_DATA, "hello"), seconds(2));
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->kind, pb::MSG_DATA);
  EXPECT_EQ(reply->payload, "hello");
  EXPECT_EQ(reply->device_id, "d1");
  EXPECT_TRUE(WaitFor([&] { return server->DeviceStatus("d1").ok(); }, seconds(2)));
  EXPECT_EQ(*server->DeviceStatus("d1"), kStatusOnline);
  device.transport->Stop();
  EXPECT_TRUE(WaitFor([&] { return *server->DeviceStatus("d1") == kStatusOffline; }, seconds(2)));
}

// A device says "online" when it connects and again every status_interval, not twice on
// connecting (the first periodic repeat used to go out at once).
TEST(TransportLogicTest, OnlineStatusAtConnectThenOncePerInterval) {
  FakeBroker broker;
  auto server = NewServer(broker, "srv");
  ASSERT_TRUE(server->Watch("d1").ok());
  TransportOptions o = Options(TransportOptions::Role::kDevice, "d1", "dev-d1");
  o.status_interval = milliseconds(1500);
  auto device = Transport::Connect(o, broker.NewClient(o.client_id, /*clean_session=*/false));
  ASSERT_TRUE(device.ok()) << device.status().ToString();
  ASSERT_TRUE(WaitFor([&] { return server->stats().messages_received >= 1; }, seconds(2)));
  std::this_thread::sleep_for(milliseconds(700));  // several housekeeping ticks
  EXPECT_EQ(server->stats().messages_received, 1u);
  EXPECT_TRUE(WaitFor([&] { return server->stats().messages_received >= 2; }, seconds(3)))
      << "no repeat after the interval";
}

TEST(TransportLogicTest, LostReplyIsRetriedAndAnsweredFromTheCache) {
  FakeBroker broker;
  FakeDevice device(broker, "d1");
  auto server = NewServer(broker, "srv");
  broker.DropNext("r2f/v1/d1/ack", 1);
  auto reply = server->Call("d1", Request(pb::MSG_DEPLOY_MODEL, "m"), milliseconds(300), 3);
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(device.calls.load(), 1) << "the retry must be answered from the reply cache";
  EXPECT_EQ(device.transport->stats().cache_hits, 1u);
  EXPECT_EQ(server->stats().retries, 1u);
}

TEST(TransportLogicTest, LostRequestIsSentAgainWithTheSameId) {
  FakeBroker broker;
  FakeDevice device(broker, "d1");
  auto server = NewServer(broker, "srv");
  broker.DropNext("r2f/v1/d1/cmd", 2);
  auto reply = server->Call("d1", Request(pb::MSG_GET_DATA, "x"), milliseconds(200), 3);
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(device.calls.load(), 1);
  auto lost = server->Call("d1", Request(pb::MSG_GET_DATA, "y"), milliseconds(100), 1);
  EXPECT_TRUE(lost.ok());
  broker.DropNext("r2f/v1/d1/cmd", 5);
  auto gone = server->Call("d1", Request(pb::MSG_GET_DATA, "z"), milliseconds(100), 2);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), Status::Code::kDeadlineExceeded);
  EXPECT_NE(gone.status().message().find("2 attempt(s)"), std::string::npos)
      << gone.status().ToString();
}

TEST(TransportLogicTest, HandlerErrorsAreFinalButBusyDevicesAreRetried) {
  FakeBroker broker;
  std::atomic<int> busy{2};
  FakeDevice device(broker, "d1", [&](const Message& req) -> Result<Message> {
    if (req.payload == "bad") return Status::InvalidArgument("no such sample");
    if (req.payload == "busy" && busy-- > 0) return Status::Unavailable("try later");
    Message reply;
    reply.kind = pb::MSG_ACK;
    return reply;
  });
  auto server = NewServer(broker, "srv");
  auto bad = server->Call("d1", Request(pb::MSG_SET_AIOT_MODE, "bad"), seconds(2), 3);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("no such sample"), std::string::npos);
  EXPECT_EQ(device.calls.load(), 1) << "a final error is not retried";

  // "Busy" is not cached: the retries (same request id) run the handler again after a back-off.
  const auto start = std::chrono::steady_clock::now();
  auto busy_reply = server->Call("d1", Request(pb::MSG_SET_AIOT_MODE, "busy"), seconds(2), 3);
  ASSERT_TRUE(busy_reply.ok()) << busy_reply.status().ToString();
  EXPECT_EQ(device.calls.load(), 4);
  EXPECT_EQ(server->stats().retries, 2u);
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(200 + 400));
}

// A reply with a before_send is held until its promise is kept, and the next request runs
// meanwhile (the promise below is kept only once it has); the replies go out in order.
TEST(TransportLogicTest, AHeldReplyWaitsForItsPromiseWhileTheNextRequestRuns) {
  FakeBroker broker;
  std::promise<void> get_ran, get_sent;
  std::shared_future<void> get_ran_future = get_ran.get_future().share();
  std::future<void> get_sent_future = get_sent.get_future();
  std::atomic<Transport*> device_transport{nullptr};
  FakeDevice device(broker, "d1", [&](const Message& req) -> Result<Message> {
    Message reply;
    if (req.kind == pb::MSG_GET_DATA) {
      get_ran.set_value();
      reply.kind = pb::MSG_DATA;
      return reply;
    }
    // The getData is queued behind this request before its reply is due: the device has
    // received it (counted on the receiving thread just before it is queued there).
    get_sent_future.wait();
    EXPECT_TRUE(WaitFor(
        [&] {
          Transport* t = device_transport.load();
          return t != nullptr && t->stats().messages_received >= 2;
        },
        seconds(5)));
    std::this_thread::sleep_for(milliseconds(50));
    reply.kind = pb::MSG_ACK;
    reply.before_send = [get_ran_future]() -> Status {
      if (get_ran_future.wait_for(seconds(5)) != std::future_status::ready) {
        return Status::Internal("the request behind did not run while this reply was held");
      }
      return Status::Ok();
    };
    return reply;
  });
  device_transport = device.transport.get();
  auto server = NewServer(broker, "srv");
  std::promise<void> sent;
  auto deploy = std::async(std::launch::async, [&] {
    return server->Call("d1", Request(pb::MSG_DEPLOY_MODEL, "m"), seconds(10), 1,
                        [&] { sent.set_value(); });
  });
  sent.get_future().wait();  // the getData reaches the device behind the deploy
  auto get = server->Call("d1", Request(pb::MSG_GET_DATA, "x"), seconds(10), 1,
                          [&] { get_sent.set_value(); });
  ASSERT_TRUE(get.ok()) << get.status().ToString();
  auto ack = deploy.get();
  ASSERT_TRUE(ack.ok()) << ack.status().ToString();
  EXPECT_EQ(ack->kind, pb::MSG_ACK);
  std::vector<std::string> replies;
  for (const std::string& topic : broker.Published()) {
    if (topic == "r2f/v1/d1/ack" || topic == "r2f/v1/d1/data") replies.push_back(topic);
  }
  EXPECT_EQ(replies, (std::vector<std::string>{"r2f/v1/d1/ack", "r2f/v1/d1/data"}));
}

// A broken promise goes out as the error instead of the reply: a final one is kept in the reply
// cache like any answer, a retryable one is not (the retry runs the handler again).
TEST(TransportLogicTest, ABrokenPromiseIsSentAsTheError) {
  FakeBroker broker;
  std::atomic<int> unavailable{1};
  FakeDevice device(broker, "d1", [&](const Message& req) -> Result<Message> {
    Message reply;
    reply.kind = pb::MSG_ACK;
    const bool final_error = req.payload == "final";
    reply.before_send = [&unavailable, final_error]() -> Status {
      if (final_error) return Status::IoError("disk full");
      return unavailable-- > 0 ? Status::Unavailable("not yet") : Status::Ok();
    };
    return reply;
  });
  auto server = NewServer(broker, "srv");
  auto failed = server->Call("d1", Request(pb::MSG_DEPLOY_MODEL, "final"), seconds(5), 3);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), Status::Code::kIoError);
  EXPECT_NE(failed.status().message().find("disk full"), std::string::npos)
      << failed.status().ToString();
  EXPECT_EQ(device.calls.load(), 1);
  auto retried = server->Call("d1", Request(pb::MSG_DEPLOY_MODEL, "again"), seconds(5), 3);
  ASSERT_TRUE(retried.ok()) << retried.status().ToString();
  EXPECT_EQ(device.calls.load(), 3);  // "not yet" was not cached: the retry ran the handler
}

TEST(TransportLogicTest, ARetriedIdWithOtherContentIsRefused) {
  FakeBroker broker;
  FakeDevice device(broker, "d1");
  auto server = NewServer(broker, "srv");
  Message first = Request(pb::MSG_DEPLOY_MODEL, "one");
  first.request_id = 77;
  ASSERT_TRUE(server->Call("d1", first, seconds(2)).ok());
  Message reused = Request(pb::MSG_DEPLOY_MODEL, "two");
  reused.request_id = 77;
  auto r = server->Call("d1", reused, seconds(2));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("already used"), std::string::npos) << r.status().ToString();
  EXPECT_EQ(device.calls.load(), 1);
}

TEST(TransportLogicTest, AServerReceivesTheRepliesOfItsOwnDevicesOnly) {
  FakeBroker broker;
  FakeDevice a(broker, "a"), b(broker, "b");
  auto server_a = NewServer(broker, "srv-a");
  auto server_b = NewServer(broker, "srv-b");
  const std::string big(300 * 1024, 'x');
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(server_a->Call("a", Request(pb::MSG_GET_DATA, big), seconds(2)).ok());
    ASSERT_TRUE(server_b->Call("b", Request(pb::MSG_GET_DATA, big), seconds(2)).ok());
  }
  EXPECT_GT(broker.BytesDelivered("srv-a", "r2f/v1/a/data"), 3 * big.size());
  // Only b's few status bytes reach srv-a (every server follows every device's status).
  EXPECT_EQ(broker.BytesDelivered("srv-a", "r2f/v1/b/data"), 0u);
  EXPECT_EQ(broker.BytesDelivered("srv-a", "r2f/v1/b/ack"), 0u);
  EXPECT_LT(broker.BytesDelivered("srv-a", "r2f/v1/b/#"), 100u);
  EXPECT_EQ(broker.BytesDelivered("srv-b", "r2f/v1/a/data"), 0u);
  // After Unwatch a device's replies no longer reach the server.
  server_a->Unwatch("a");
  const uint64_t before = broker.BytesDelivered("srv-a", "r2f/v1/a/data");
  broker.Inject("r2f/v1/a/data", "late");
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(broker.BytesDelivered("srv-a", "r2f/v1/a/data"), before);
}

TEST(TransportLogicTest, AReconnectedServerAsksAgainAtOnce) {
  FakeBroker broker;
  FakeDevice device(broker, "d1", [](const Message& req) -> Result<Message> {
    std::this_thread::sleep_for(milliseconds(100));  // the reply leaves after the cut
    Message reply;
    reply.kind = pb::MSG_ACK;
    reply.payload = req.payload;
    return reply;
  });
  auto server = NewServer(broker, "srv");
  std::thread cut([&] {
    std::this_thread::sleep_for(milliseconds(30));
    broker.CutConnection("srv", milliseconds(200));
  });
  const auto start = std::chrono::steady_clock::now();
  auto reply = server->Call("d1", Request(pb::MSG_DEPLOY_MODEL, "m"), seconds(20), 1);
  const auto took = std::chrono::steady_clock::now() - start;
  cut.join();
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_LT(took, seconds(5)) << "the request must be sent again after the reconnect, not after "
                                 "the 20 s attempt";
  EXPECT_EQ(device.calls.load(), 1);
}

TEST(TransportLogicTest, GarbageAndStrayRepliesAreDroppedAndServingGoesOn) {
  FakeBroker broker;
  FakeDevice device(broker, "d1");
  auto server = NewServer(broker, "srv");
  ASSERT_TRUE(server->Watch("d1").ok());
  broker.Inject("r2f/v1/d1/cmd", "not an envelope");
  broker.Inject("r2f/v1/d1/data", "not an envelope either");
  broker.Inject("elsewhere/topic", "x");
  auto reply = server->Call("d1", Request(pb::MSG_GET_DATA, "ok"), seconds(2));
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_TRUE(WaitFor([&] { return device.transport->stats().rejected >= 1; }, seconds(2)));
  EXPECT_GE(server->stats().rejected, 1u);
}

// Hundreds of partial 60 MB requests (announced, never finished) and garbage on the device's
// command topic: the next real request is served at once, without a retry.
TEST(TransportLogicTest, AFloodOfPartialRequestsDoesNotLockOutTheNextRealOne) {
  FakeBroker broker;
  FakeDevice device(broker, "d1");
  auto server = NewServer(broker, "srv");
  constexpr uint64_t kPayload = 60ull << 20;
  constexpr size_t kJunkChunkBytes = 128 * 1024;  // any chunk size is accepted; these stay small
  constexpr uint32_t kChunks = kPayload / kJunkChunkBytes;
  for (uint64_t i = 0; i < 300; ++i) {
    pb::Envelope e;
    e.set_protocol_version(kProtocolVersion);
    e.set_device_id("d1");
    e.set_job_id("junk");
    e.set_request_id(1000 + i);
    e.set_kind(pb::MSG_DEPLOY_MODEL);
    e.set_chunk_index(0);
    e.set_chunk_count(kChunks);
    e.set_payload_size(kPayload);
    e.set_payload_crc32(1);
    e.set_chunk(std::string(kJunkChunkBytes, 'j'));
    e.set_chunk_crc32(Crc32(e.chunk()));
    broker.Inject("r2f/v1/d1/cmd", e.SerializeAsString());
    broker.Inject("r2f/v1/d1/cmd", "garbage " + std::to_string(i));
  }
  const auto start = std::chrono::steady_clock::now();
  auto reply = server->Call("d1", Request(pb::MSG_GET_DATA, "real"), seconds(5), 1);
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(2));
  EXPECT_EQ(server->stats().retries, 0u);
  EXPECT_EQ(device.calls.load(), 1);
}

TEST(TransportLogicTest, RoleMismatchesAreInvalidArguments) {
  FakeBroker broker;
  FakeDevice device(broker, "d1");
  auto server = NewServer(broker, "srv");
  EXPECT_EQ(device.transport->Call("d1", Request(pb::MSG_GET_DATA, ""), seconds(1)).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(server->Serve([](const Message&) { return Result<Message>(Message{}); }).code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(server->Call("d1", Request(pb::MSG_ACK, ""), seconds(1)).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(server->Call("bad/id", Request(pb::MSG_GET_DATA, ""), seconds(1)).status().code(),
            Status::Code::kInvalidArgument);
}

TEST(TransportLogicTest, DefaultClientIdsAreUniquePerServerProcessAndStablePerDevice) {
  TransportOptions server;
  const std::string a = DefaultClientId(server), b = DefaultClientId(server);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("r2f-server-", 0), 0u) << a;
  TransportOptions device;
  device.role = TransportOptions::Role::kDevice;
  device.device_id = "d7";
  EXPECT_EQ(DefaultClientId(device), "r2f-dev-d7");
  device.device_id = "d8";
  EXPECT_EQ(DefaultClientId(device), "r2f-dev-d8");
  EXPECT_EQ(SplitBrokerUris(" tcp://a:1, tcp://b:2 ,,"),
            (std::vector<std::string>{"tcp://a:1", "tcp://b:2"}));
}

}  // namespace
}  // namespace r2f
