// Authenticated per-device topics: a mosquitto running the project's configs/mosquitto/r2f.conf
// with the real configs/mosquitto/acl and a password file made by mosquitto_passwd. A device can
// neither read another device's requests nor answer or report in its name, a wrong password is
// refused at once with a clear Status, the server role reaches a device through the ACL (with
// messages as large as the config's size limits allow), and the real r2f_client daemon works
// with its password read from a file. Credentials in configs: password_file / password_env.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "common/link/link_model.h"
#include "common/net/broker_config.h"
#include "common/net/chunker.h"
#include "common/net/reassembler.h"
#include "common/net/transport.h"
#include "common/net/transport_topics.h"
#include "server/api/r2f_server_api.h"
#include "tests/support/daemon_test_util.h"
#include "tests/support/security_test_util.h"

namespace r2f {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::CredentialClient;
using testing::kServerUser;
using Role = TransportOptions::Role;

constexpr char kPassA[] = "pass-of-dev-a";
constexpr char kPassB[] = "pass-of-dev-b";
constexpr char kPassServer[] = "pass-of-the-server";

template <typename T>
T ValueOr(const Result<T>& r, T fallback) {
  return r.ok() ? r.value() : fallback;
}

Result<Message> Echo(const Message& request) {
  Message reply;
  reply.kind = pb::MSG_ACK;
  reply.payload = request.payload;
  return reply;
}

Message Request(const std::string& payload, const std::string& job = "job-1") {
  Message m;
  m.kind = pb::MSG_SET_AIOT_MODE;
  m.job_id = job;
  m.payload = payload;
  return m;
}

// The value of `key` in a mosquitto config file (the first line starting with it), or -1.
int64_t ConfigValue(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + " ", 0) == 0) return std::stoll(line.substr(key.size() + 1));
  }
  return -1;
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::MakePasswordFile(
        passwd_,
        {{"dev-a", kPassA}, {"dev-b", kPassB}, {"dev-1", kPassA}, {kServerUser, kPassServer}}))
        << "mosquitto_passwd failed";
    std::string error;
    int unused = 0;
    testing::MosquittoBroker::Options o;
    o.config = testing::ProjectBrokerConfig({passwd_, "", ""}, &unused, &error);
    ASSERT_TRUE(error.empty()) << error;
    broker_ = std::make_unique<testing::MosquittoBroker>(o);
    ASSERT_TRUE(broker_->Start()) << broker_->Log();
  }

  TransportOptions Device(const std::string& id, const std::string& user,
                          const std::string& password) const {
    return testing::SecureOptions(broker_->uri(), Role::kDevice, id, user, password);
  }
  TransportOptions Server() const {
    return testing::SecureOptions(broker_->uri(), Role::kServer, "", kServerUser, kPassServer);
  }
  static std::unique_ptr<Transport> ConnectOrDie(const TransportOptions& o) {
    auto t = Transport::Connect(o);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? std::move(t).value() : nullptr;
  }
  // A device (its own credentials) serving Echo, and the server.
  void StartDeviceAndServer(const std::string& device, const std::string& password) {
    device_ = ConnectOrDie(Device(device, device, password));
    ASSERT_TRUE(device_);
    ASSERT_TRUE(device_->Serve(Echo).ok());
    server_ = ConnectOrDie(Server());
    ASSERT_TRUE(server_);
    ASSERT_TRUE(testing::WaitUntil(
        [&] {
          auto s = server_->DeviceStatus(device);
          return s.ok() && *s == "online";
        },
        seconds(5)));
  }

  testing::TempDir dir_;
  std::string passwd_ = dir_.File("passwd");
  std::unique_ptr<testing::MosquittoBroker> broker_;
  std::unique_ptr<Transport> device_, server_;
};

// The settings the transport relies on are in the shipped config, with values that fit it.
TEST(BrokerFilesTest, ShippedConfigFitsTheTransport) {
  const std::string conf = testing::ReadFile(testing::MosquittoConfigDir() + "/r2f.conf");
  for (const char* line : {"\nallow_anonymous false\n", "\npassword_file ", "\nacl_file ",
                           "\nuse_username_as_clientid true\n", "\npersistence true\n"}) {
    EXPECT_NE(conf.find(line), std::string::npos) << "r2f.conf lacks: " << line;
  }
  const TransportOptions defaults;
  // One chunk plus the envelope header with both ids at their limit (256 bytes each) must pass.
  const int64_t message_limit = ConfigValue(conf, "message_size_limit");
  const int64_t packet_limit = ConfigValue(conf, "max_packet_size");
  EXPECT_GE(message_limit, static_cast<int64_t>(defaults.chunk_bytes + 2 * 256 + 64));
  EXPECT_GE(packet_limit, message_limit + 256 + 64);
  // A whole message of max_payload_bytes must fit the queue of a slow subscriber.
  EXPECT_GE(ConfigValue(conf, "max_queued_messages"),
            static_cast<int64_t>(defaults.max_payload_bytes / defaults.chunk_bytes));
  const std::string tls = testing::ReadFile(testing::MosquittoConfigDir() + "/r2f-tls.conf");
  EXPECT_NE(tls.find("\nuse_username_as_clientid true\n"), std::string::npos)
      << "a listener option: the TLS listener needs it too";
}

TEST_F(SecurityTest, ServerReachesItsDeviceThroughTheAclWithMaximalChunks) {
  StartDeviceAndServer("dev-a", kPassA);
  // Five full chunks, and ids at the reassembler's 256-byte limit: the largest envelopes the
  // transport makes must pass message_size_limit and max_packet_size.
  const std::string job(256, 'j');
  std::string payload(5 * kDefaultChunkBytes, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 131 + 7);
  auto reply = server_->Call("dev-a", Request(payload, job), seconds(10), 1);
  ASSERT_TRUE(reply.ok()) << reply.status().ToString() << "\n" << broker_->Log();
  EXPECT_EQ(reply->payload, payload);
  EXPECT_EQ(device_->stats().handler_calls, 1u);
}

TEST_F(SecurityTest, WrongPasswordOrNoneIsRefusedAtOnce) {
  for (const auto& [user, password] : std::vector<std::pair<std::string, std::string>>{
           {"dev-a", "not-the-password"}, {"nobody", kPassA}, {"", ""}}) {
    SCOPED_TRACE("user '" + user + "'");
    TransportOptions o = Device("dev-a", user, password);
    o.connect_timeout = seconds(10);
    const auto start = std::chrono::steady_clock::now();
    auto t = Transport::Connect(o);
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), Status::Code::kInvalidArgument) << t.status().ToString();
    EXPECT_NE(t.status().message().find("refused the login"), std::string::npos)
        << t.status().ToString();
    EXPECT_NE(t.status().message().find("not authorised"), std::string::npos)
        << t.status().ToString();
    EXPECT_EQ(t.status().message().find(kPassA), std::string::npos) << "password in the message";
    EXPECT_EQ(t.status().message().find("not-the-password"), std::string::npos);
    EXPECT_LT(took, 5.0) << "a refused login is not retried until connect_timeout";
  }
}

// Device A logs in with its own credentials but claims to be device B: it subscribes to B's
// requests (Mosquitto 2.0 grants the SUBSCRIBE and filters on delivery) and would answer them.
TEST_F(SecurityTest, DeviceCannotReadAnotherDevicesRequests) {
  auto impostor = ConnectOrDie(Device("dev-b", "dev-a", kPassA));
  ASSERT_TRUE(impostor);
  std::atomic<int> handled{0};
  ASSERT_TRUE(impostor
                  ->Serve([&](const Message& m) {
                    ++handled;
                    return Echo(m);
                  })
                  .ok());
  server_ = ConnectOrDie(Server());
  ASSERT_TRUE(server_);
  auto r = server_->Call("dev-b", Request("for B only"), milliseconds(1500), 1);
  EXPECT_EQ(r.status().code(), Status::Code::kDeadlineExceeded) << r.status().ToString();
  EXPECT_EQ(handled.load(), 0);
  EXPECT_EQ(impostor->stats().chunks_received, 0u);
  // Its "online" for B was dropped by the broker too.
  EXPECT_EQ(server_->DeviceStatus("dev-b").status().code(), Status::Code::kNotFound);
  impostor.reset();

  // Control: B itself, same code path, gets the request.
  device_ = ConnectOrDie(Device("dev-b", "dev-b", kPassB));
  ASSERT_TRUE(device_);
  ASSERT_TRUE(device_->Serve(Echo).ok());
  auto ok = server_->Call("dev-b", Request("for B only"), seconds(5), 1);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->payload, "for B only");
}

// A plain client logged in as dev-a subscribed to everything receives only its own requests.
TEST_F(SecurityTest, WildcardSubscriptionSeesOnlyOwnTopics) {
  StartDeviceAndServer("dev-b", kPassB);
  CredentialClient spy(broker_->uri(), "spy", "dev-a", kPassA);
  ASSERT_TRUE(spy.connected()) << spy.error();
  for (const char* topic : {"#", "r2f/v1/+/cmd", "r2f/v1/dev-b/#", "$SYS/#"}) {
    const int code = spy.Subscribe(topic);
    EXPECT_TRUE(code == 0x80 || (code >= 0 && code <= 2)) << topic << ": " << code;
  }
  // Traffic of B (request, reply; its retained status) ...
  auto r = server_->Call("dev-b", Request("secret of B"), seconds(5), 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // ... then a request to A as a marker: the broker delivers in order, so anything of B that
  // reached the spy arrived before it.
  auto marker = server_->Call("dev-a", Request("marker"), milliseconds(300), 1);
  EXPECT_FALSE(marker.ok());
  std::vector<std::string> seen;
  bool got_marker = false;
  for (auto m = spy.Next(seconds(3)); m; m = spy.Next(milliseconds(500))) {
    seen.push_back(m->get_topic());
    if (m->get_topic() == "r2f/v1/dev-a/cmd") {
      got_marker = true;
      break;
    }
  }
  EXPECT_TRUE(got_marker) << "the spy's own requests must still arrive";
  for (const std::string& topic : seen) EXPECT_EQ(topic, "r2f/v1/dev-a/cmd");
}

// Device A publishes a well-formed reply in B's name for a request B is asked: the broker drops
// it (the ACL), so the server never sees it; B's own credentials get the same bytes through.
TEST_F(SecurityTest, DeviceCannotAnswerOrReportForAnotherDevice) {
  server_ = ConnectOrDie(Server());
  ASSERT_TRUE(server_);
  constexpr uint64_t kId = 4242;
  const std::string ack =
      testing::OneChunkEnvelope(pb::MSG_ACK, "dev-b", "job-1", kId, "forged").SerializeAsString();
  const std::string online =
      testing::OneChunkEnvelope(pb::MSG_STATUS, "dev-b", "", 0, "online").SerializeAsString();
  auto call_while_publishing = [&](const std::string& user, const std::string& password) {
    CredentialClient peer(broker_->uri(), "peer-" + user, user, password);
    EXPECT_TRUE(peer.connected()) << peer.error();
    std::atomic<bool> stop{false};
    std::thread publisher([&] {
      while (!stop) {
        peer.Publish(DeviceTopic("r2f/v1", "dev-b", TopicLeaf::kAck), ack);
        peer.Publish(DeviceTopic("r2f/v1", "dev-b", TopicLeaf::kStatus), online, true);
        std::this_thread::sleep_for(milliseconds(100));
      }
    });
    Message req = Request("real request");
    req.request_id = kId;
    auto r = server_->Call("dev-b", req, milliseconds(1500), 1);
    stop = true;
    publisher.join();
    return r;
  };
  auto forged = call_while_publishing("dev-a", kPassA);
  EXPECT_EQ(forged.status().code(), Status::Code::kDeadlineExceeded) << forged.status().ToString();
  EXPECT_EQ(server_->DeviceStatus("dev-b").status().code(), Status::Code::kNotFound);
  EXPECT_EQ(server_->stats().messages_received, 0u);

  // Control: the same bytes from B's own login are accepted.
  auto genuine = call_while_publishing("dev-b", kPassB);
  ASSERT_TRUE(genuine.ok()) << genuine.status().ToString();
  EXPECT_EQ(genuine->payload, "forged");
  EXPECT_EQ(ValueOr(server_->DeviceStatus("dev-b"), std::string()), "online");
}

// With use_username_as_clientid, connecting under another device's client id does not take its
// session (without it, B would be disconnected and reconnect).
TEST_F(SecurityTest, ClientIdOfAnotherDeviceDoesNotTakeItsSession) {
  StartDeviceAndServer("dev-b", kPassB);
  ASSERT_EQ(device_->stats().connects, 1u);
  CredentialClient thief(broker_->uri(), device_->options().client_id, "dev-a", kPassA);
  ASSERT_TRUE(thief.connected()) << thief.error();
  std::this_thread::sleep_for(milliseconds(1500));  // longer than B's reconnect backoff
  EXPECT_EQ(device_->stats().connects, 1u) << "device B lost its connection";
  EXPECT_TRUE(device_->connected());
  auto r = server_->Call("dev-b", Request("still B"), seconds(5), 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
}

// --- credentials in configs ---------------------------------------------------------------------

Status ParseBroker(const std::string& yaml, TransportOptions* out) {
  auto map = ConfigMap::LoadString(yaml, "test.yaml");
  if (!map.ok()) return map.status();
  ConfigMap broker = map->Section("broker");
  return ParseBrokerConfig(broker, out);
}

TEST(BrokerCredentialsTest, PasswordFromFileOrEnvironmentNeverInErrors) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("pw"), "s3cret-from-file\n");
  chmod(dir.File("pw").c_str(), 0600);
  TransportOptions o;
  Status st =
      ParseBroker("broker: {username: dev-1, password_file: '" + dir.File("pw") + "'}\n", &o);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(o.password, "s3cret-from-file");

  setenv("R2F_TEST_BROKER_PASSWORD", "s3cret-from-env", 1);
  o = TransportOptions();
  st = ParseBroker("broker: {username: dev-1, password_env: R2F_TEST_BROKER_PASSWORD}\n", &o);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(o.password, "s3cret-from-env");
  EXPECT_TRUE(o.tls_verify_hostname);

  testing::WriteFile(dir.File("two-lines"), "s3cret\nmore\n");
  testing::WriteFile(dir.File("empty"), "\n");
  for (const auto& [yaml, text] : std::vector<std::pair<std::string, std::string>>{
           {"broker: {username: u, password: s3cret, password_env: R2F_TEST_BROKER_PASSWORD}\n",
            "give at most one of password, password_file and password_env"},
           {"broker: {username: u, password_env: R2F_TEST_NO_SUCH_VARIABLE}\n",
            "key 'broker.password_env': environment variable 'R2F_TEST_NO_SUCH_VARIABLE' is not "
            "set or empty"},
           {"broker: {username: u, password_file: /nonexistent/pw}\n",
            "key 'broker.password_file': cannot read file '/nonexistent/pw'"},
           {"broker: {username: u, password_file: '" + dir.File("two-lines") + "'}\n",
            "must hold one line"},
           {"broker: {username: u, password_file: '" + dir.File("empty") + "'}\n", "is empty"},
           {"broker: {password: s3cret}\n", "key 'broker.username': a password is configured"},
           {"broker: {username: u, password: s3cret, verify_hostname: maybe}\n",
            "broker.verify_hostname"}}) {
    TransportOptions opts;
    st = ParseBroker(yaml, &opts);
    EXPECT_FALSE(st.ok()) << yaml;
    EXPECT_NE(st.message().find(text), std::string::npos) << st.ToString();
    EXPECT_EQ(st.message().find("s3cret"), std::string::npos) << st.ToString();
  }
  unsetenv("R2F_TEST_BROKER_PASSWORD");
}

// The real device daemon with its password in a file and the server API with its password in an
// environment variable (as configs/eval.yaml would give them): one Table-I call end to end.
TEST_F(SecurityTest, DaemonWithPasswordFileServesTheServerApi) {
  if (!std::filesystem::exists(std::string(testing::kFashionMnistDir) +
                               "/t10k-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  ASSERT_TRUE(std::filesystem::exists(testing::ClientProcess::Binary()));
  testing::WriteFile(dir_.File("dev-1.pw"), std::string(kPassA) + "\n");
  chmod(dir_.File("dev-1.pw").c_str(), 0600);
  testing::DeviceYamlOptions y;
  y.device_id = "dev-1";
  y.broker_uri = broker_->uri();
  y.state_dir = dir_.File("state");
  y.log_file = dir_.File("client.log");
  std::string yaml = testing::DeviceYaml(y);
  ASSERT_EQ(testing::ReplaceAll(&yaml, "client_id: 'test-client-dev-1'}",
                                "client_id: 'test-client-dev-1', username: dev-1, "
                                "password_file: '" +
                                    dir_.File("dev-1.pw") + "'}"),
            1u);
  testing::WriteFile(dir_.File("client.yaml"), yaml);
  testing::ClientProcess client(dir_.File("client.yaml"), dir_.File("client.log"));
  ASSERT_TRUE(client.Start());

  setenv("R2F_TEST_SERVER_PASSWORD", kPassServer, 1);
  R2fServerOptions so;
  Status st = ParseBroker("broker: {uri: '" + broker_->uri() + "', client_id: test-server, " +
                              "username: r2f-server, password_env: R2F_TEST_SERVER_PASSWORD}\n",
                          &so.transport);
  unsetenv("R2F_TEST_SERVER_PASSWORD");
  ASSERT_TRUE(st.ok()) << st.ToString();
  so.link = LinkPreset("hspa").value();
  so.job_id = "security";
  so.call_timeout = seconds(10);
  so.attempts = 1;
  auto server = R2fServer::Connect(so);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return ValueOr((*server)->DeviceStatus("dev-1"), std::string()) == "online"; },
      seconds(20)))
      << client.Log();
  Status mode = (*server)->setAIoTMode("dev-1", pb::MODE_INFERENCE, accel::TmrConfig{});
  ASSERT_TRUE(mode.ok()) << mode.ToString() << "\n" << client.Log();
  EXPECT_EQ((*server)->LastAck("dev-1").value().requests_handled(), 1u);
  EXPECT_EQ(client.Terminate(), 0);
  const std::string log = client.Log();
  EXPECT_NE(log.find("user 'dev-1', password '***'"), std::string::npos) << log;
  EXPECT_EQ(log.find(kPassA), std::string::npos) << "the password reached the log";
}

}  // namespace
}  // namespace r2f
