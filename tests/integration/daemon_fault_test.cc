// Faults in the middle of a request, against the real daemon: the broker killed and restarted,
// the daemon itself killed (SIGKILL) and restarted, and a request delivered twice. Each ends
// with the request completed exactly once in effect: the model version is the intended one,
// getData equals an undisturbed run, and the device's execution counter (Ack.requests_handled)
// shows how often the handler ran.
//
// The daemon runs with the test hook debug.handler_delay_ms: it sleeps after executing a
// request (effects saved) and before replying, which is when the faults are injected.
#include <gtest/gtest.h>

#include <future>

#include "common/net/transport_topics.h"
#include "tests/support/daemon_fixture.h"

namespace r2f {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::kDevice;

constexpr int kDelayMs = 1500;
constexpr char kExecuted[] = "executed; replying after the debug delay";

pb::GetDataRequest DataRequest(pb::AIoTMode mode, uint64_t first, uint64_t count, uint64_t tag) {
  pb::GetDataRequest r;
  r.set_mode(mode);
  r.set_split(pb::SPLIT_TEST);
  r.set_execution_tag(tag);
  for (uint64_t id = first; id < first + count; ++id) r.add_sample_ids(id);
  return r;
}

void ExpectSameData(const pb::DataReply& a, const pb::DataReply& b) {
  EXPECT_EQ(a.sample_ids_size(), b.sample_ids_size());
  EXPECT_EQ(a.logits(), b.logits());
  EXPECT_EQ(a.labels(), b.labels());
  EXPECT_EQ(a.inputs(), b.inputs());
  EXPECT_EQ(a.fp_cycles(), b.fp_cycles());
  ASSERT_EQ(a.layers_size(), b.layers_size());
  for (int l = 0; l < a.layers_size(); ++l) {
    EXPECT_EQ(a.layers(l).encoding(), b.layers(l).encoding());
    EXPECT_EQ(a.layers(l).data(), b.layers(l).data());
  }
  ASSERT_EQ(a.reports_size(), b.reports_size());
  for (int l = 0; l < a.reports_size(); ++l) {
    EXPECT_TRUE(std::equal(a.reports(l).flips().begin(), a.reports(l).flips().end(),
                           b.reports(l).flips().begin()));
  }
}

class DaemonFaultTest : public testing::DaemonTest {
 protected:
  // Short attempts so that retries happen within the test's patience; each attempt still
  // covers the handler delay.
  R2fServerOptions FaultServerOptions() const {
    R2fServerOptions o = ServerOptions();
    o.call_timeout = seconds(4);
    o.attempts = 10;
    return o;
  }
  bool WaitExecuted(size_t count) {
    return testing::WaitUntil([&] { return client_->CountInLog(kExecuted) >= count; }, seconds(20));
  }
};

TEST_F(DaemonFaultTest, BrokerKilledMidRequestCompletesOnce) {
  testing::DeviceYamlOptions o;
  o.ber = 1e-4;
  o.handler_delay_ms = kDelayMs;
  ASSERT_NO_FATAL_FAILURE(StartClient(o));
  ASSERT_NO_FATAL_FAILURE(ConnectServer(FaultServerOptions()));
  ASSERT_TRUE(server_->setAIoTMode(kDevice, pb::MODE_INFERENCE, {}).ok());
  const uint64_t handled = RequestsHandled();

  // deployModel: the broker dies after the device applied the model, before the reply.
  const size_t executed = client_->CountInLog(kExecuted);
  auto deploy = std::async(std::launch::async,
                           [&] { return server_->deployModel(kDevice, testing::TestModel()); });
  ASSERT_TRUE(WaitExecuted(executed + 1)) << client_->Log();
  broker_.Kill();
  std::this_thread::sleep_for(milliseconds(300));
  ASSERT_TRUE(broker_.Start()) << broker_.Log();
  auto ack = deploy.get();
  ASSERT_TRUE(ack.ok()) << ack.status().ToString();
  EXPECT_EQ(ack->model_version(), 1u);

  // getData: the same, then the result is compared with an undisturbed run.
  const pb::GetDataRequest request = DataRequest(pb::MODE_INFERENCE, 100, 64, 21);
  auto get = std::async(std::launch::async, [&] { return server_->getData(kDevice, request); });
  ASSERT_TRUE(WaitExecuted(executed + 2)) << client_->Log();
  broker_.Kill();
  std::this_thread::sleep_for(milliseconds(300));
  ASSERT_TRUE(broker_.Start()) << broker_.Log();
  auto disturbed = get.get();
  ASSERT_TRUE(disturbed.ok()) << disturbed.status().ToString();

  auto undisturbed = server_->getData(kDevice, request);  // a fresh request id
  ASSERT_TRUE(undisturbed.ok()) << undisturbed.status().ToString();
  ExpectSameData(*disturbed, *undisturbed);
  // deploy + getData + the undisturbed getData + this setAIoTMode: each handler ran once.
  ASSERT_TRUE(server_->setAIoTMode(kDevice, pb::MODE_INFERENCE, {}).ok());
  EXPECT_EQ(RequestsHandled(), handled + 4);
  EXPECT_EQ(server_->LastAck(kDevice)->model_version(), 1u);
}

TEST_F(DaemonFaultTest, DaemonKilledMidRequestAndRestartedCompletesOnce) {
  testing::DeviceYamlOptions o;
  o.ber = 1e-4;
  o.handler_delay_ms = kDelayMs;
  ASSERT_NO_FATAL_FAILURE(StartClient(o));
  ASSERT_NO_FATAL_FAILURE(ConnectServer(FaultServerOptions()));
  const pb::QuantizedModel v1 = testing::TestModel();
  const pb::QuantizedModel v2 = testing::Retrained(v1, 2);
  ASSERT_TRUE(server_->deployModel(kDevice, v1).ok());
  ASSERT_TRUE(server_->setAIoTMode(kDevice, pb::MODE_TRAINING, {}).ok());

  // A delta deploy v1 -> v2: the daemon is killed after saving v2, before replying. The new
  // process restores v2; the retried delta finds v2 already running and changes nothing.
  size_t executed = client_->CountInLog(kExecuted);
  auto deploy = std::async(std::launch::async, [&] { return server_->deployModel(kDevice, v2); });
  ASSERT_TRUE(WaitExecuted(executed + 1)) << client_->Log();
  client_->Kill();
  ASSERT_TRUE(client_->Start());
  auto ack = deploy.get();
  ASSERT_TRUE(ack.ok()) << ack.status().ToString() << "\n" << client_->Log();
  EXPECT_EQ(ack->model_version(), 2u);
  EXPECT_NE(ack->detail().find("nothing changed"), std::string::npos) << ack->detail();
  EXPECT_EQ(client_->CountInLog("restored model version 2"), 1u) << client_->Log();
  // The new process has run exactly one request: the retried deploy.
  EXPECT_EQ(ack->requests_handled(), 1u);

  // A training getData: killed mid-request, restarted, retried; equal to an undisturbed run.
  pb::GetDataRequest request = DataRequest(pb::MODE_TRAINING, 7, 8, 33);
  request.set_policy(pb::ENCODE_ADAPTIVE);
  request.set_similarity_threshold(0.5);
  executed = client_->CountInLog(kExecuted);
  auto get = std::async(std::launch::async, [&] { return server_->getData(kDevice, request); });
  ASSERT_TRUE(WaitExecuted(executed + 1)) << client_->Log();
  client_->Kill();
  ASSERT_TRUE(client_->Start());
  auto disturbed = get.get();
  ASSERT_TRUE(disturbed.ok()) << disturbed.status().ToString();
  auto undisturbed = server_->getData(kDevice, request);
  ASSERT_TRUE(undisturbed.ok()) << undisturbed.status().ToString();
  ExpectSameData(*disturbed, *undisturbed);
  EXPECT_EQ(disturbed->model_version(), 2u);
}

// Retraining deploys a delta per iteration and the device journals it (client/
// device_state_store.h): a SIGKILL right after an acknowledged deploy restarts with that model,
// rebuilt from the whole model and the journalled deltas, and the same data as before the kill.
TEST_F(DaemonFaultTest, KilledRightAfterAcknowledgedDeltasRestartsWithTheLastOne) {
  testing::DeviceYamlOptions o;
  o.ber = 1e-4;
  ASSERT_NO_FATAL_FAILURE(StartClient(o));
  ASSERT_NO_FATAL_FAILURE(ConnectServer(FaultServerOptions()));
  pb::QuantizedModel model = testing::TestModel();
  ASSERT_TRUE(server_->deployModel(kDevice, model).ok());
  ASSERT_TRUE(server_->setAIoTMode(kDevice, pb::MODE_INFERENCE, {}).ok());
  for (uint64_t v = 2; v <= 6; ++v) {
    model = testing::Retrained(model, v);
    auto ack = server_->deployModel(kDevice, model);
    ASSERT_TRUE(ack.ok()) << ack.status().ToString();
    ASSERT_NE(ack->detail().find("applied weight delta"), std::string::npos) << ack->detail();
  }
  const pb::GetDataRequest request = DataRequest(pb::MODE_INFERENCE, 3, 4, 5);
  auto before = server_->getData(kDevice, request);
  ASSERT_TRUE(before.ok()) << before.status().ToString();

  ASSERT_TRUE(server_->deployModel(kDevice, testing::Retrained(model, 7)).ok());
  client_->Kill();  // right after the Ack of version 7
  ASSERT_TRUE(client_->Start());
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return client_->CountInLog("restored model version 7") == 1; }, seconds(20)))
      << client_->Log();
  EXPECT_EQ(client_->CountInLog("and 6 journalled delta(s)"), 1u) << client_->Log();
  // Back to version 6 by a delta against the restored 7, then the same data as before the kill.
  auto ack = server_->deployModel(kDevice, model);
  ASSERT_TRUE(ack.ok()) << ack.status().ToString();
  EXPECT_NE(ack->detail().find("applied weight delta 7 -> 6"), std::string::npos) << ack->detail();
  auto after = server_->getData(kDevice, request);
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  ExpectSameData(*before, *after);
}

TEST_F(DaemonFaultTest, DuplicatedRequestIsExecutedOnce) {
  ASSERT_NO_FATAL_FAILURE(StartClient({}));
  ASSERT_NO_FATAL_FAILURE(ConnectServer());
  ASSERT_TRUE(server_->setAIoTMode(kDevice, pb::MODE_INFERENCE, {}).ok());
  const uint64_t handled = RequestsHandled();
  testing::RawSubscriber watch(broker_.uri(), "test-watch");
  watch.Subscribe(DeviceTopic("r2f/v1", kDevice, TopicLeaf::kAck));

  pb::SetAIoTModeRequest mode;
  mode.set_mode(pb::MODE_TRAINING);
  const std::string bytes = testing::OneChunkEnvelope(pb::MSG_SET_AIOT_MODE, kDevice, "dup-job",
                                                      4242, mode.SerializeAsString())
                                .SerializeAsString();
  const std::string cmd = DeviceTopic("r2f/v1", kDevice, TopicLeaf::kCmd);
  pb::Ack first, second;
  ASSERT_TRUE(testing::MosquittoPub(broker_.port(), cmd, bytes, dir_.File("pub.bin")));
  auto reply = watch.Await(4242, seconds(5));
  ASSERT_TRUE(reply.has_value());
  ASSERT_TRUE(first.ParseFromString(reply->payload));
  ASSERT_TRUE(testing::MosquittoPub(broker_.port(), cmd, bytes, dir_.File("pub.bin")));
  reply = watch.Await(4242, seconds(5));
  ASSERT_TRUE(reply.has_value()) << "the duplicate should be answered from the reply cache";
  ASSERT_TRUE(second.ParseFromString(reply->payload));
  EXPECT_EQ(first.SerializeAsString(), second.SerializeAsString());
  EXPECT_EQ(first.requests_handled(), handled + 1);
  EXPECT_EQ(first.mode(), pb::MODE_TRAINING);
  EXPECT_EQ(client_->CountInLog("MSG_SET_AIOT_MODE job=dup-job request=4242"), 1u)
      << client_->Log();
  // The next request is the second execution since `handled`, not the third.
  ASSERT_TRUE(server_->setAIoTMode(kDevice, pb::MODE_INFERENCE, {}).ok());
  EXPECT_EQ(RequestsHandled(), handled + 2);
}

}  // namespace
}  // namespace r2f
