// The fleet end to end: a real mosquitto, one r2f_client process per device (each with its own
// soft errors), and `r2f_server fleet` in process or as several real server processes that get
// killed (docs/fleet.md).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "common/link/stage_timer.h"
#include "server/fleet/fleet.h"
#include "tests/support/daemon_test_util.h"
#include "tests/support/mosquitto_fixture.h"

namespace r2f::testing {
namespace {

int WaitExit(pid_t pid, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz")) {
      GTEST_SKIP() << "dataset-fashion-mnist is not installed";
    }
    ASSERT_TRUE(broker_.Start()) << broker_.Log();
    WriteFile(dir_.File("model.pb"), TestModel().SerializeAsString());
  }
  void TearDown() override {
    if (HasFailure()) {
      for (auto& [id, c] : clients_) std::cerr << "--- " << id << " ---\n" << c->Log();
      // Why the broker closed a connection (a client id taken over, a refused packet).
      std::cerr << "--- broker (tail) ---\n" << Tail(broker_.Log(), 8000) << "\n";
    }
    clients_.clear();
  }

  // Device k: its own BER and fault seed, its requests logged (with the lease they carry);
  // waits until it serves.
  void StartDevice(int k, int handler_delay_ms = 0) {
    DeviceYamlOptions o;
    o.device_id = "dev-" + std::to_string(k);
    o.broker_uri = broker_.uri();
    o.state_dir = dir_.File("state-" + o.device_id);
    o.log_file = dir_.File(o.device_id + ".log");
    o.ber = 5e-5 * k;
    o.seed = 100 + k;
    o.log_level = "debug";
    o.handler_delay_ms = handler_delay_ms;
    WriteFile(dir_.File(o.device_id + ".yaml"), DeviceYaml(o));
    auto c = std::make_unique<ClientProcess>(dir_.File(o.device_id + ".yaml"), o.log_file);
    ASSERT_TRUE(c->Start());
    ClientProcess* started = c.get();
    clients_[o.device_id] = std::move(c);
    ASSERT_TRUE(
        WaitUntil([&] { return started->CountInLog("serving as") > 0; }, std::chrono::seconds(30)))
        << started->Log();
  }

  // A fleet config for `devices`, writing to `run_dir`.
  std::string WriteFleetConfig(const std::string& name, const std::vector<std::string>& devices,
                               const std::string& run_dir, int max_concurrent, double lease_s,
                               int samples = 96) {
    std::ostringstream y;
    y << "job_id: " << name << "\n"
      << "broker: {uri: '" << broker_.uri() << "'}\n"
      << "link: {preset: ieee802154g}\n"
      << "model: {path: '" << dir_.File("model.pb") << "', deploy_as_delta: true}\n"
      << "method: {mode: aprm, threshold_policy: adaptive, similarity_threshold: 0.5}\n"
      << "train: {samples: " << samples << ", batch_size: 16, lr: 0.01, seed: 3}\n"
      << "eval: {images: 64, batch_size: 64}\n"
      << "validation: {enabled: false}\n"  // final models compared as trained (no do no harm)
      << "run: {dir: '" << run_dir << "', checkpoint_every: 2}\n"
      << "call: {timeout_s: 5, attempts: 3}\n"
      << "fleet:\n  devices: [";
    for (size_t i = 0; i < devices.size(); ++i) y << (i ? ", " : "") << devices[i];
    y << "]\n  max_concurrent: " << max_concurrent << "\n  lease_s: " << lease_s
      << "\n  job_attempts: 20\n  threads_per_job: 1\n  plot_script: ''\n";
    const std::string path = dir_.File(name + ".yaml");
    WriteFile(path, y.str());
    return path;
  }

  // Each device's model when its job runs alone, undisturbed: the reference.
  std::map<std::string, std::string> ReferenceModels(const std::vector<std::string>& devices,
                                                     int samples = 96) {
    std::map<std::string, std::string> models;
    for (const std::string& d : devices) {
      const std::string run = dir_.File("alone-" + d);
      auto config = LoadFleetConfig(WriteFleetConfig("alone-" + d, {d}, run, 1, 60, samples));
      EXPECT_TRUE(config.ok()) << config.status().ToString();
      auto r = RunFleet(*config, false);
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      models[d] = ReadFile(run + "/" + d + "/model.pb");
      EXPECT_FALSE(models[d].empty());
    }
    return models;
  }

  // Two `r2f_server fleet` processes, A and B, on one config.
  void StartTwoServers(const std::string& config) {
    log_a_ = dir_.File("server-a.log");
    log_b_ = dir_.File("server-b.log");
    a_ = SpawnServerCommand({"fleet", "--config", config}, log_a_);
    b_ = SpawnServerCommand({"fleet", "--config", config}, log_b_);
    ASSERT_GT(a_, 0);
    ASSERT_GT(b_, 0);
  }

  // Waits until A is in the middle of a job (16 iterations), SIGKILLs it; *device is the job's.
  void KillServerAInAJob(const std::string& run, std::string* device);

  TempDir dir_;
  MosquittoBroker broker_;
  std::map<std::string, std::unique_ptr<ClientProcess>> clients_;
  std::string log_a_, log_b_;
  pid_t a_ = -1, b_ = -1;
};

TEST_F(FleetTest, EveryDeviceIsRetrainedAgainstItsOwnErrorsAsIfAlone) {
  const std::vector<std::string> devices = {"dev-1", "dev-2", "dev-3"};
  for (int k = 1; k <= 3; ++k) ASSERT_NO_FATAL_FAILURE(StartDevice(k));
  const auto alone = ReferenceModels(devices);
  const std::string run = dir_.File("fleet");
  auto config = LoadFleetConfig(WriteFleetConfig("fleet", devices, run, 2, 60));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  auto result = RunFleet(*config, false);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->jobs.size(), 3u);
  for (const FleetJob& j : result->jobs) {
    EXPECT_EQ(j.state, FleetJob::State::kDone) << j.device << ": " << j.last_error.ToString();
    EXPECT_EQ(j.result.iterations, 6);
    EXPECT_TRUE(ReadFile(run + "/" + j.device + "/model.pb") == alone.at(j.device))
        << j.device << " ended with another model than its job alone";
    EXPECT_EQ(NonEmptyLines(run + "/" + j.device + "/stages.jsonl").size(), 6u);
  }
  // Matched retraining: the devices' faults differ, so do their models.
  EXPECT_NE(alone.at("dev-1"), alone.at("dev-3"));
  const std::string json = ReadFile(run + "/fleet.json");
  for (const std::string& d : devices) EXPECT_NE(json.find("\"" + d + "\""), std::string::npos);
  // A second run finds every device done and retrains nothing.
  auto again = RunFleet(*config, false);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  for (const FleetJob& j : again->jobs) {
    EXPECT_EQ(j.state, FleetJob::State::kDoneElsewhere);
    EXPECT_EQ(j.attempts, 0);
  }
}

// The lease of every device changes hands only when the holder stopped renewing it, and no
// request carrying an old lease is served after a new one was granted.
void ExpectOneServerAtATime(const std::string& device, const std::string& log) {
  static const std::regex granted("lease ([0-9a-f]{16}) granted to (\\S+)");
  static const std::regex served(" lease=([0-9a-f]{16})[^\\n]*: ok in");
  std::string current;
  int grants = 0;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, granted)) {
      current = m[1];
      ++grants;
    } else if (std::regex_search(line, m, served)) {
      EXPECT_EQ(m[1].str(), current) << device << " served a request of an old lease: " << line;
    }
  }
  EXPECT_GE(grants, 1) << device;
}

// A device that `log` (a fleet server's) started and that has done some iterations (and a
// checkpoint) but not all; "" when there is none yet.
std::string RunningDevice(const std::string& log, const std::string& run, size_t iterations) {
  static const std::regex started("\\[fleet\\] (dev-\\d)\\s+(starting|resuming)");
  std::string found;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), started);
       it != std::sregex_iterator(); ++it) {
    const std::string d = (*it)[1];
    const size_t done = NonEmptyLines(run + "/" + d + "/stages.jsonl").size();
    if (done >= 3 && done + 4 < iterations &&
        !std::filesystem::exists(run + "/" + d + "/summary.json")) {
      found = d;
    }
  }
  return found;
}

// What an undisturbed run of each job would have left: the same model, every iteration once,
// and the lease of each device held by one server at a time.
void ExpectUndisturbedResults(
    const std::vector<std::string>& devices, const std::string& run,
    const std::map<std::string, std::string>& alone, size_t iterations,
    const std::map<std::string, std::unique_ptr<ClientProcess>>& clients) {
  for (const std::string& d : devices) {
    ASSERT_TRUE(std::filesystem::exists(run + "/" + d + "/summary.json")) << d;
    EXPECT_TRUE(ReadFile(run + "/" + d + "/model.pb") == alone.at(d))
        << d << " ended with another model than its job alone";
    const std::vector<std::string> stages = NonEmptyLines(run + "/" + d + "/stages.jsonl");
    ASSERT_EQ(stages.size(), iterations) << d;
    for (size_t i = 0; i < stages.size(); ++i) {
      EXPECT_EQ(IterationTimingFromJson(stages[i])->iteration, static_cast<int64_t>(i)) << d;
    }
    ExpectOneServerAtATime(d, clients.at(d)->Log());
  }
}

void FleetTest::KillServerAInAJob(const std::string& run, std::string* device) {
  ASSERT_TRUE(
      WaitUntil([&] { return !(*device = RunningDevice(ReadFile(log_a_), run, 16)).empty(); },
                std::chrono::seconds(120)))
      << ReadFile(log_a_);
  kill(a_, SIGKILL);
  WaitExit(a_, std::chrono::seconds(10));
  ASSERT_FALSE(std::filesystem::exists(run + "/" + *device + "/summary.json"))
      << "A finished " << *device << " before it was killed";
}

TEST_F(FleetTest, TwoServersShareAFleetAndTakeOverFromAKilledOne) {
  const std::vector<std::string> devices = {"dev-1", "dev-2", "dev-3", "dev-4"};
  // Slow replies, so that a run lasts long enough to be interrupted.
  for (int k = 1; k <= 4; ++k) ASSERT_NO_FATAL_FAILURE(StartDevice(k, 60));
  constexpr int kSamples = 256;  // 16 iterations
  const auto alone = ReferenceModels(devices, kSamples);
  const std::string run = dir_.File("shared");
  const std::string config = WriteFleetConfig("shared", devices, run, 1, 3, kSamples);
  ASSERT_NO_FATAL_FAILURE(StartTwoServers(config));
  std::string victim;
  ASSERT_NO_FATAL_FAILURE(KillServerAInAJob(run, &victim));
  ASSERT_EQ(WaitExit(b_, std::chrono::seconds(300)), 0) << ReadFile(log_b_);
  ExpectUndisturbedResults(devices, run, alone, 16, clients_);
  EXPECT_TRUE(std::regex_search(ReadFile(log_b_), std::regex(victim + "\\s+resuming")))
      << "B should have resumed " << victim << "\n"
      << ReadFile(log_b_);
}

// The fleet campaign: six devices, two servers; a server is killed, a device is killed and
// restarted, and the broker is restarted, all in the middle of jobs. Every device still ends
// with the model of its undisturbed job.
TEST_F(FleetTest, CampaignOfKillsAndRestartsEndsWithTheUndisturbedModels) {
  std::vector<std::string> devices;
  for (int k = 1; k <= 6; ++k) {
    ASSERT_NO_FATAL_FAILURE(StartDevice(k, 40));
    devices.push_back("dev-" + std::to_string(k));
  }
  constexpr int kSamples = 256;  // 16 iterations
  const auto alone = ReferenceModels(devices, kSamples);
  const std::string run = dir_.File("campaign");
  const std::string config = WriteFleetConfig("campaign", devices, run, 2, 3, kSamples);
  ASSERT_NO_FATAL_FAILURE(StartTwoServers(config));

  // 1. Server A dies in the middle of a job.
  std::string victim;
  ASSERT_NO_FATAL_FAILURE(KillServerAInAJob(run, &victim));
  const std::string log_b = log_b_;
  // 2. A device dies in the middle of B's job and comes back.
  std::string device;
  ASSERT_TRUE(WaitUntil([&] { return !(device = RunningDevice(ReadFile(log_b), run, 16)).empty(); },
                        std::chrono::seconds(120)))
      << ReadFile(log_b);
  clients_.at(device)->Kill();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  ASSERT_TRUE(clients_.at(device)->Start());
  // 3. The broker restarts (forgetting every session) while jobs run.
  ASSERT_TRUE(WaitUntil([&] { return !RunningDevice(ReadFile(log_b), run, 16).empty(); },
                        std::chrono::seconds(120)));
  broker_.Stop();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  ASSERT_TRUE(broker_.Start()) << broker_.Log();

  ASSERT_EQ(WaitExit(b_, std::chrono::seconds(400)), 0) << ReadFile(log_b);
  ExpectUndisturbedResults(devices, run, alone, 16, clients_);
  // Each event hit a running job: B took A's device over, resumed the restarted device's job,
  // and lived through the broker's restart.
  const std::string b_log = ReadFile(log_b);
  EXPECT_TRUE(std::regex_search(b_log, std::regex(victim + "\\s+resuming"))) << b_log;
  EXPECT_TRUE(std::regex_search(b_log, std::regex(device + "\\s+resuming"))) << b_log;
  EXPECT_NE(b_log.find("connection lost"), std::string::npos) << b_log;
}

// A summary.json that another process (or version) left with values of the wrong type fails
// that device's job with the file named; the fleet goes on with the others (it used to end the
// process: the JSON library throws on the wrong type, on a job's thread).
TEST_F(FleetTest, AMalformedSummaryFailsOnlyItsJob) {
  const std::string run = dir_.File("bad-summary");
  std::filesystem::create_directories(run + "/dev-x");
  std::filesystem::create_directories(run + "/dev-y");
  WriteFile(run + "/dev-x/summary.json", R"({"device": "dev-x", "iterations": "5"})");
  WriteFile(run + "/dev-y/summary.json",
            R"({"device": "dev-y", "served_by": "other-server", "iterations": 3,)"
            R"( "accuracy_before": {"images": 100, "top1": 50.0},)"
            R"( "accuracy_after": {"images": 100, "top1": 60.0}})");
  auto config = LoadFleetConfig(WriteFleetConfig("bad-summary", {"dev-x", "dev-y"}, run, 2, 60));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  auto r = RunFleet(*config, false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->jobs.size(), 2u);
  for (const FleetJob& j : r->jobs) {
    SCOPED_TRACE(j.device);
    if (j.device == "dev-x") {
      EXPECT_EQ(j.state, FleetJob::State::kFailed);
      EXPECT_EQ(j.last_error.code(), Status::Code::kCorruption) << j.last_error.ToString();
      EXPECT_NE(j.last_error.message().find("dev-x/summary.json: not a retraining summary"),
                std::string::npos)
          << j.last_error.ToString();
    } else {
      EXPECT_EQ(j.state, FleetJob::State::kDoneElsewhere);
      EXPECT_EQ(j.result.served_by, "other-server");
      EXPECT_EQ(j.result.iterations, 3);
      EXPECT_DOUBLE_EQ(j.result.after.Top1(), 60.0);
    }
  }
}

TEST(FleetConfigTest, OverridesAndErrorsNameTheKey) {
  TempDir dir;
  const std::string base =
      "broker: {uri: 'tcp://127.0.0.1:1883'}\nlink: {preset: ieee802154g}\n"
      "model: {path: m.pb}\nrun: {dir: runs/f}\n";
  WriteFile(dir.File("ok.yaml"),
            base +
                "fleet:\n  devices: [a, b]\n  overrides:\n"
                "    b: {method: {mode: drm}, link: {preset: hspa}, train: {max_iterations: 7}}\n");
  auto c = LoadFleetConfig(dir.File("ok.yaml"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->JobFor("a").method, RetrainMethod::kAprm);
  EXPECT_EQ(c->JobFor("b").method, RetrainMethod::kDrm);
  EXPECT_EQ(c->JobFor("b").max_iterations, 7);
  EXPECT_EQ(c->JobFor("b").session.link.spec.name, "hspa");
  EXPECT_EQ(c->JobFor("a").session.link.spec.name, "ieee802154g");
  EXPECT_EQ(c->JobFor("b").run_dir, "runs/f/b");
  EXPECT_EQ(c->JobFor("b").session.device_id, "b");

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"fleet: {devices: [a, a]}\n", "listed twice"},
      {"fleet: {devices: []}\n", "either a list of devices or discover"},
      {"fleet: {devices: [a], discover: true}\n", "either a list of devices or discover"},
      {"fleet: {devices: [a/b]}\n", "topic level"},
      {"fleet: {devices: [a], overrides: {c: {method: {mode: drm}}}}\n", "not one of"},
      {"fleet: {devices: [a], overrides: {a: {metod: {mode: drm}}}}\n", "metod"},
      {"fleet: {devices: [a], overrides: {a: {run: {dir: x}}}}\n", "<run.dir>/<device>"},
      {"fleet: {devices: [a], max_concurrent: 0}\n", "max_concurrent"},
      {"device_id: a\nfleet: {devices: [a]}\n", "fleet.devices"},
  };
  for (const auto& [yaml, error] : bad) {
    WriteFile(dir.File("bad.yaml"), base + yaml);
    auto r = LoadFleetConfig(dir.File("bad.yaml"));
    ASSERT_FALSE(r.ok()) << yaml;
    EXPECT_NE(r.status().message().find(error), std::string::npos)
        << yaml << " -> " << r.status().ToString();
    EXPECT_NE(r.status().message().find("bad.yaml:"), std::string::npos) << r.status().ToString();
  }
}

}  // namespace
}  // namespace r2f::testing
