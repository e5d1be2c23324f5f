// Focused regression tests for what the fault campaign (tests/integration/campaign_test.cc,
// docs/fault_campaign.md) found: the transport behind a fault proxy.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>

#include "common/base/random.h"
#include "common/net/transport.h"
#include "tests/support/daemon_test_util.h"
#include "tests/support/fault_proxy.h"
#include "tests/support/mosquitto_fixture.h"

namespace r2f::testing {
namespace {

using campaign::FaultKind;
using campaign::FaultProxy;
using campaign::Peer;
using Clock = std::chrono::steady_clock;

constexpr char kDeviceId[] = "dev-1";

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A device transport serving `handler` and a server transport, both behind a fault proxy.
class ProxiedTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(broker_.Start()) << broker_.Log();
    proxy_ = std::make_unique<FaultProxy>(broker_.port(), 1, [](const std::string& id) {
      return id == "camp-dev" ? Peer::kDevice : id == "camp-srv" ? Peer::kServer : Peer::kOther;
    });
    ASSERT_TRUE(proxy_->Start());
  }

  void StartPair(Transport::Handler handler) {
    for (auto role : {TransportOptions::Role::kDevice, TransportOptions::Role::kServer}) {
      TransportOptions o;
      o.role = role;
      o.broker_uri = proxy_->uri();
      o.device_id = kDeviceId;
      o.client_id = role == TransportOptions::Role::kDevice ? "camp-dev" : "camp-srv";
      o.connect_timeout = std::chrono::seconds(5);
      o.reconnect_min = o.reconnect_max = std::chrono::seconds(1);
      auto t = Transport::Connect(o);
      ASSERT_TRUE(t.ok()) << t.status().ToString();
      (role == TransportOptions::Role::kDevice ? device_ : server_) = std::move(t).value();
    }
    ASSERT_TRUE(device_->Serve(std::move(handler)).ok());
    // Wait for the retained "online": after it, the next PUBLISH on the server's connection is
    // the request of the first Call.
    ASSERT_TRUE(WaitUntil(
        [&] {
          auto s = server_->DeviceStatus(kDeviceId);
          return s.ok() && *s == "online";
        },
        std::chrono::seconds(10)));
  }

  static Message Request(std::string payload) {
    Message m;
    m.kind = pb::MSG_GET_DATA;
    m.job_id = "job";
    m.payload = std::move(payload);
    return m;
  }

  MosquittoBroker broker_;
  std::unique_ptr<FaultProxy> proxy_;
  std::unique_ptr<Transport> device_;
  std::unique_ptr<Transport> server_;
};

// common/net/server_endpoint.cc, Call: a request damaged on its way to the device comes back as a
// Corruption error reply (the chunk's CRC-32 failed). Before the fix that reply ended the call
// (and with it a whole retraining run); now the request is sent again at once and the call
// succeeds, with the handler run once.
TEST_F(ProxiedTransportTest, RequestCorruptedInTransitIsSentAgain) {
  std::atomic<int> handled{0};
  ASSERT_NO_FATAL_FAILURE(StartPair([&](const Message& req) -> Result<Message> {
    ++handled;
    Message reply;
    reply.kind = pb::MSG_DATA;
    reply.payload = req.payload;
    return reply;
  }));
  std::string payload(8192, '\0');
  Rng rng(5);
  for (char& c : payload) c = static_cast<char>(rng.Next());
  // The middle of an 8 KiB payload lies inside the envelope's chunk bytes, away from its header.
  proxy_->Arm(FaultKind::kCorrupt, Peer::kServer, 0.5);
  const auto start = Clock::now();
  auto reply = server_->Call(kDeviceId, Request(payload), std::chrono::seconds(20), 3);
  ASSERT_TRUE(reply.ok()) << reply.status().ToString() << "\n" << proxy_->Log();
  EXPECT_TRUE(reply->payload == payload);
  EXPECT_EQ(proxy_->counts().Kind(FaultKind::kCorrupt), 1u) << proxy_->Log();
  EXPECT_EQ(handled.load(), 1);
  EXPECT_EQ(server_->stats().retries, 1u);
  EXPECT_EQ(device_->stats().error_replies_sent, 1u);
  EXPECT_LT(SecondsSince(start), 10.0) << "the resend waited for the attempt's timeout";
}

// The other side of the same rule: a Corruption verdict of the handler is not damage in
// transit; the resends are answered from the device's reply cache and the call ends with it.
TEST_F(ProxiedTransportTest, HandlerCorruptionVerdictStillEndsTheCall) {
  std::atomic<int> handled{0};
  ASSERT_NO_FATAL_FAILURE(StartPair([&](const Message&) -> Result<Message> {
    ++handled;
    return Status::Corruption("weights after the delta do not match weights_crc32");
  }));
  auto reply = server_->Call(kDeviceId, Request("x"), std::chrono::seconds(20), 3);
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), Status::Code::kCorruption) << reply.status().ToString();
  EXPECT_NE(reply.status().message().find("weights_crc32"), std::string::npos);
  EXPECT_EQ(handled.load(), 1);
  EXPECT_EQ(device_->stats().cache_hits, 2u);
}

// common/net/paho_client.cc, Rebuild: after a broker restart in the middle of a device's
// publish, Mosquitto closed every new connection of the device at once ("disconnected due to
// malformed packet"): Paho resent the same unacknowledged packet after each reconnect and never
// got out of the loop. Here the proxy refuses every PUBLISH the device resends, and the device's
// reply is lost with its connection, so Paho resends it on every reconnect. After three short
// connections the device replaces its client (dropping the packet), the server's resent request
// is answered from the reply cache, and the call succeeds.
TEST_F(ProxiedTransportTest, DeviceStuckResendingARefusedPacketReplacesItsClient) {
  std::atomic<int> handled{0};
  ASSERT_NO_FATAL_FAILURE(StartPair([&](const Message& req) -> Result<Message> {
    // The request has arrived: the next PUBLISH on the device's connection is this reply.
    if (handled++ == 0) proxy_->Arm(FaultKind::kDrop, Peer::kDevice);
    Message reply;
    reply.kind = pb::MSG_DATA;
    reply.payload = req.payload;
    return reply;
  }));
  proxy_->RefuseResends(Peer::kDevice, true);
  auto reply = server_->Call(kDeviceId, Request("ping"), std::chrono::seconds(15), 4);
  ASSERT_TRUE(reply.ok()) << reply.status().ToString() << "\n" << proxy_->Log();
  EXPECT_EQ(reply->payload, "ping");
  EXPECT_EQ(handled.load(), 1);
  // The loop did happen (the connection the drop cut may be the first of the three short ones).
  EXPECT_GE(proxy_->counts().refused_resends, 2u) << proxy_->Log();
  EXPECT_GE(device_->stats().cache_hits, 1u);
  // The device keeps serving after the replacement.
  auto again = server_->Call(kDeviceId, Request("pong"), std::chrono::seconds(10), 3);
  ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << proxy_->Log();
}

}  // namespace
}  // namespace r2f::testing
