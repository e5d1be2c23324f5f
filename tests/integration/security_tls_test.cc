// TLS: certificates from configs/mosquitto/make_test_certs.sh, a mosquitto running the project's
// r2f.conf and r2f-tls.conf (paths and ports substituted, the real ACL). A Transport round trip
// over ssl:// with the test CA works; a client without that CA, or checking the broker's host
// name against a certificate made for another host, is refused with the TLS error in the
// Status; with require_certificate and use_identity_as_username a device logs in with its
// certificate alone.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "common/net/transport.h"
#include "tests/support/daemon_test_util.h"
#include "tests/support/security_test_util.h"

namespace r2f {
namespace {

using std::chrono::seconds;
using testing::kServerUser;
using Role = TransportOptions::Role;

constexpr char kPassA[] = "tls-pass-of-dev-a";
constexpr char kPassServer[] = "tls-pass-of-the-server";

Result<Message> Echo(const Message& request) {
  Message reply;
  reply.kind = pb::MSG_ACK;
  reply.payload = request.payload;
  return reply;
}

Message Request(const std::string& payload) {
  Message m;
  m.kind = pb::MSG_GET_DATA;
  m.job_id = "tls-job";
  m.payload = payload;
  return m;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::MakePasswordFile(dir_.File("passwd"),
                                          {{"dev-a", kPassA}, {kServerUser, kPassServer}}));
    ASSERT_TRUE(testing::MakeTestCerts(dir_.File("certs"), {"dev-a", kServerUser}))
        << "configs/mosquitto/make_test_certs.sh failed (is openssl installed?)";
  }

  // Starts a broker with the TLS listener on its port; `extra` goes after r2f-tls.conf.
  std::unique_ptr<testing::MosquittoBroker> StartBroker(const std::string& certs_dir,
                                                        const std::string& extra = "") {
    std::string error;
    int plain_port = 0;
    testing::MosquittoBroker::Options o;
    o.config =
        testing::ProjectBrokerConfig({dir_.File("passwd"), certs_dir, extra}, &plain_port, &error);
    EXPECT_TRUE(error.empty()) << error;
    auto broker = std::make_unique<testing::MosquittoBroker>(o);
    EXPECT_TRUE(broker->Start()) << broker->Log();
    return broker;
  }
  static std::string TlsUri(const testing::MosquittoBroker& b, const std::string& host) {
    return "ssl://" + host + ":" + std::to_string(b.port());
  }
  TransportOptions Options(const std::string& uri, Role role, const std::string& user,
                           const std::string& password, const std::string& ca) const {
    TransportOptions o = testing::SecureOptions(uri, role, "dev-a", user, password);
    o.ca_file = ca;
    return o;
  }

  testing::TempDir dir_;
};

TEST_F(TlsTest, RoundTripOverTlsWithTheTestCa) {
  auto broker = StartBroker(dir_.File("certs"));
  const std::string ca = dir_.File("certs/ca.crt");
  for (const std::string host : {"127.0.0.1", "localhost"}) {
    SCOPED_TRACE(host);
    const std::string uri = TlsUri(*broker, host);
    auto device = Transport::Connect(Options(uri, Role::kDevice, "dev-a", kPassA, ca));
    ASSERT_TRUE(device.ok()) << device.status().ToString() << "\n" << broker->Log();
    ASSERT_TRUE((*device)->Serve(Echo).ok());
    auto server = Transport::Connect(Options(uri, Role::kServer, kServerUser, kPassServer, ca));
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    std::string payload(3 * kDefaultChunkBytes + 5, '\0');
    for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 29 + 3);
    auto reply = (*server)->Call("dev-a", Request(payload), seconds(10), 1);
    ASSERT_TRUE(reply.ok()) << reply.status().ToString();
    EXPECT_EQ(reply->payload, payload);
  }
}

TEST_F(TlsTest, ClientWithoutTheCaIsRefused) {
  auto broker = StartBroker(dir_.File("certs"));
  ASSERT_TRUE(testing::MakeTestCerts(dir_.File("other-ca"), {}));
  const std::string uri = TlsUri(*broker, "127.0.0.1");
  // No CA (the system's CAs do not know the test CA), another CA, and plain MQTT on the TLS
  // port: all refused, and a TLS failure says why.
  // An untrusted certificate is not a passing condition: refused at once, not retried.
  for (const std::string& ca : {std::string(), dir_.File("other-ca/ca.crt")}) {
    SCOPED_TRACE("ca_file '" + ca + "'");
    TransportOptions o = Options(uri, Role::kServer, kServerUser, kPassServer, ca);
    o.connect_timeout = seconds(10);
    const auto start = std::chrono::steady_clock::now();
    auto t = Transport::Connect(o);
    ASSERT_FALSE(t.ok());
    EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(5));
    EXPECT_EQ(t.status().code(), Status::Code::kInvalidArgument) << t.status().ToString();
    EXPECT_NE(t.status().message().find("TLS certificate is not trusted"), std::string::npos)
        << t.status().ToString();
    EXPECT_NE(t.status().message().find("certificate verify failed"), std::string::npos)
        << t.status().ToString();
  }
  TransportOptions plain = Options("tcp://127.0.0.1:" + std::to_string(broker->port()),
                                   Role::kServer, kServerUser, kPassServer, "");
  plain.connect_timeout = seconds(2);
  EXPECT_FALSE(Transport::Connect(plain).ok());
}

// A certificate for another host: refused unless verify_hostname is turned off (the chain is
// still checked against the CA).
TEST_F(TlsTest, BrokerHostNameIsVerified) {
  ASSERT_TRUE(testing::MakeTestCerts(dir_.File("elsewhere"), {}, "broker.example"));
  auto broker = StartBroker(dir_.File("elsewhere"));
  TransportOptions o = Options(TlsUri(*broker, "127.0.0.1"), Role::kServer, kServerUser,
                               kPassServer, dir_.File("elsewhere/ca.crt"));
  o.connect_timeout = seconds(2);
  auto refused = Transport::Connect(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::Code::kUnavailable) << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("names the host"), std::string::npos)
      << refused.status().ToString();
  o.tls_verify_hostname = false;
  auto accepted = Transport::Connect(o);
  EXPECT_TRUE(accepted.ok()) << accepted.status().ToString();
}

// r2f-tls.conf's optional client-certificate mode: the certificate's CN is the user name, so the
// ACL's %u is the device id and no password is needed on that listener.
TEST_F(TlsTest, ClientCertificateIsTheIdentity) {
  auto broker =
      StartBroker(dir_.File("certs"), "require_certificate true\nuse_identity_as_username true\n");
  const std::string uri = TlsUri(*broker, "127.0.0.1");
  const std::string certs = dir_.File("certs/");
  TransportOptions dev = Options(uri, Role::kDevice, "", "", certs + "ca.crt");
  dev.cert_file = certs + "dev-a.crt";
  dev.key_file = certs + "dev-a.key";
  auto device = Transport::Connect(dev);
  ASSERT_TRUE(device.ok()) << device.status().ToString() << "\n" << broker->Log();
  ASSERT_TRUE((*device)->Serve(Echo).ok());
  TransportOptions srv = Options(uri, Role::kServer, "", "", certs + "ca.crt");
  srv.cert_file = certs + std::string(kServerUser) + ".crt";
  srv.key_file = certs + std::string(kServerUser) + ".key";
  auto server = Transport::Connect(srv);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  auto reply = (*server)->Call("dev-a", Request("by certificate"), seconds(5), 1);
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->payload, "by certificate");

  // dev-a's certificate makes it dev-a: claiming to be another device gets nothing. (It would
  // also take dev-a's session, the client id being the user name: dev-a goes first.)
  (*device)->Stop();
  auto impostor = Transport::Connect([&] {
    TransportOptions o = dev;
    o.device_id = "dev-b";
    o.client_id = "test-dev-b";
    return o;
  }());
  ASSERT_TRUE(impostor.ok()) << impostor.status().ToString();
  ASSERT_TRUE((*impostor)->Serve(Echo).ok());
  auto none = (*server)->Call("dev-b", Request("for B"), std::chrono::milliseconds(1000), 1);
  EXPECT_EQ(none.status().code(), Status::Code::kDeadlineExceeded) << none.status().ToString();

  // Without a certificate the TLS handshake itself fails.
  TransportOptions anonymous = Options(uri, Role::kServer, "", "", certs + "ca.crt");
  anonymous.connect_timeout = seconds(2);
  EXPECT_FALSE(Transport::Connect(anonymous).ok());
}

}  // namespace
}  // namespace r2f
