// R2F on a two-node RabbitMQ cluster (tests/support/rabbitmq_fixture.h): devices on one node,
// servers on the other, each with both nodes' URIs so that it fails over; a node is killed and
// restarted in the middle of a run, and every run still ends with the model of an undisturbed
// one (docs/fleet.md, "Beyond one broker").
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <sstream>

#include "server/api/remote_eval.h"
#include "server/fleet/fleet.h"
#include "server/retrain/retrain.h"
#include "tests/support/daemon_test_util.h"
#include "tests/support/rabbitmq_fixture.h"

namespace r2f::testing {
namespace {

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz")) {
      GTEST_SKIP() << "dataset-fashion-mnist is not installed";
    }
    if (!RabbitMqCluster::Installed()) GTEST_SKIP() << "rabbitmq-server is not installed";
    ASSERT_TRUE(cluster_.Start()) << cluster_.Log();
    WriteFile(dir_.File("model.pb"), TestModel().SerializeAsString());
  }
  void TearDown() override {
    if (HasFailure()) {
      for (auto& [id, c] : clients_) std::cerr << "--- " << id << " ---\n" << c->Log();
    }
    clients_.clear();
  }

  // Device k on node 1, failing over to node 2; a clean session (its queue would otherwise
  // live on node 1 only) and a frequent status, which RabbitMQ never delivers as retained to
  // the servers' wildcard subscription.
  void StartDevice(int k, int handler_delay_ms) {
    DeviceYamlOptions o;
    o.device_id = "dev-" + std::to_string(k);
    o.broker_uri = cluster_.uri(1) + "," + cluster_.uri(2);
    o.state_dir = dir_.File("state-" + o.device_id);
    o.log_file = dir_.File(o.device_id + ".log");
    o.ber = 5e-5 * k;
    o.seed = 200 + k;
    o.handler_delay_ms = handler_delay_ms;
    o.persistent_session = false;
    o.status_interval_s = 1;
    WriteFile(dir_.File(o.device_id + ".yaml"), DeviceYaml(o));
    auto c = std::make_unique<ClientProcess>(dir_.File(o.device_id + ".yaml"), o.log_file);
    ASSERT_TRUE(c->Start());
    ClientProcess* started = c.get();
    clients_[o.device_id] = std::move(c);
    ASSERT_TRUE(
        WaitUntil([&] { return started->CountInLog("serving as") > 0; }, std::chrono::seconds(30)))
        << started->Log();
  }

  // A fleet of `devices` served through node 2 (failing over to node 1).
  std::string FleetConfig(const std::string& name, const std::vector<std::string>& devices,
                          const std::string& run_dir) {
    std::ostringstream y;
    y << "job_id: " << name << "\n"
      << "broker: {uri: '" << cluster_.uri(2) << "," << cluster_.uri(1) << "'}\n"
      << "link: {preset: ieee802154g}\n"
      << "model: {path: '" << dir_.File("model.pb") << "', deploy_as_delta: true}\n"
      << "method: {mode: aprm, threshold_policy: adaptive, similarity_threshold: 0.5}\n"
      << "train: {samples: 192, batch_size: 16, lr: 0.01, seed: 3}\n"
      << "eval: {images: 64, batch_size: 64}\n"
      << "validation: {enabled: false}\n"  // final models compared as trained (no do no harm)
      << "run: {dir: '" << run_dir << "', checkpoint_every: 2}\n"
      << "call: {timeout_s: 4, attempts: 4}\n"
      << "fleet:\n  devices: [";
    for (size_t i = 0; i < devices.size(); ++i) y << (i ? ", " : "") << devices[i];
    y << "]\n  max_concurrent: 2\n  lease_s: 30\n  job_attempts: 20\n  threads_per_job: 1\n"
      << "  plot_script: ''\n";
    const std::string path = dir_.File(name + ".yaml");
    WriteFile(path, y.str());
    return path;
  }

  TempDir dir_;
  RabbitMqCluster cluster_;
  std::map<std::string, std::unique_ptr<ClientProcess>> clients_;
};

// Table-I calls cross the cluster: the device on node 1, the server on node 2.
TEST_F(ClusterTest, EvalAcrossNodesMatchesTheSameEvalOnOneNode) {
  ASSERT_NO_FATAL_FAILURE(StartDevice(1, 0));
  std::vector<double> top1;
  for (const std::string& uri : {cluster_.uri(2), cluster_.uri(1)}) {
    R2fServerOptions o;
    o.transport.broker_uri = uri;
    o.transport.connect_timeout = std::chrono::seconds(10);
    o.link = LinkPreset("hspa").value();
    o.call_timeout = std::chrono::seconds(10);
    auto server = R2fServer::Connect(o);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    // The status arrives live (RabbitMQ keeps retained messages from wildcard subscribers).
    ASSERT_TRUE(WaitUntil(
        [&] {
          auto s = (*server)->DeviceStatus("dev-1");
          return s.ok() && *s == "online";
        },
        std::chrono::seconds(10)));
    EvalSettings e;
    e.images = 256;
    e.batch_size = 64;
    e.execution_tag = 5;
    auto r = RunRemoteEval(**server, "dev-1", TestModel(), e);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->accuracy.count(), 256);
    top1.push_back(r->accuracy.Top1());
  }
  EXPECT_EQ(top1[0], top1[1]) << "the same device, model and faults through either node";
}

// A fleet on the cluster: the servers' node is killed in the middle of the jobs and restarted;
// every device ends with the model of its undisturbed job.
TEST_F(ClusterTest, FleetSurvivesTheServersNodeKilledAndRestarted) {
  const std::vector<std::string> devices = {"dev-1", "dev-2", "dev-3"};
  for (int k = 1; k <= 3; ++k) ASSERT_NO_FATAL_FAILURE(StartDevice(k, 40));
  // Undisturbed: the same fleet, nothing killed.
  const std::string calm = dir_.File("calm");
  auto calm_config = LoadFleetConfig(FleetConfig("calm", devices, calm));
  ASSERT_TRUE(calm_config.ok()) << calm_config.status().ToString();
  auto calm_result = RunFleet(*calm_config, false);
  ASSERT_TRUE(calm_result.ok()) << calm_result.status().ToString();

  const std::string run = dir_.File("disturbed");
  const std::string log = dir_.File("server.log");
  pid_t server =
      SpawnServerCommand({"fleet", "--config", FleetConfig("disturbed", devices, run)}, log);
  ASSERT_GT(server, 0);
  ASSERT_TRUE(WaitUntil(
      [&] {
        for (const std::string& d : devices) {
          const size_t n = NonEmptyLines(run + "/" + d + "/stages.jsonl").size();
          if (n >= 3 && n <= 8) return true;
        }
        return false;
      },
      std::chrono::seconds(120)))
      << ReadFile(log);
  ASSERT_TRUE(cluster_.Kill(2)) << cluster_.Log();
  std::this_thread::sleep_for(std::chrono::seconds(3));
  ASSERT_TRUE(cluster_.Restart(2)) << cluster_.Log();
  int status = 0;
  waitpid(server, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadFile(log);
  for (const std::string& d : devices) {
    const std::string expected = ReadFile(calm + "/" + d + "/model.pb");
    ASSERT_FALSE(expected.empty()) << d;
    EXPECT_TRUE(ReadFile(run + "/" + d + "/model.pb") == expected)
        << d << " ended with another model than undisturbed\n"
        << ReadFile(log);
    EXPECT_EQ(NonEmptyLines(run + "/" + d + "/stages.jsonl").size(), 12u) << d;
  }
  EXPECT_NE(ReadFile(log).find("connection lost"), std::string::npos)
      << "the node was killed after the fleet had finished\n"
      << ReadFile(log);
}

}  // namespace
}  // namespace r2f::testing
