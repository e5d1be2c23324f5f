// The retraining loop end to end: a real mosquitto, a real r2f_client process and the server's
// retraining (in-process or as a real r2f_server process that gets killed and resumed).
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "common/link/stage_timer.h"
#include "server/retrain/reconstruct.h"
#include "server/retrain/retrain.h"
#include "tests/support/daemon_fixture.h"

namespace r2f::testing {
namespace {

class RetrainTest : public DaemonTest {
 protected:
  // A retrain config for the test device and a random test model written next to it.
  std::string WriteConfig(const std::string& name, const std::string& method,
                          const std::string& run_dir, int samples = 160) {
    const std::string model_path = dir_.File("model.pb");
    if (!std::filesystem::exists(model_path))
      WriteFile(model_path, TestModel().SerializeAsString());
    std::ostringstream y;
    y << "device_id: " << kDevice << "\njob_id: " << name << "\n"
      << "broker: {uri: '" << broker_.uri() << "', client_id: 'test-retrain-" << name << "'}\n"
      << "link: {preset: ieee802154g}\n"
      << "model: {path: '" << model_path << "', deploy_as_delta: true}\n"
      << "method: " << method << "\n"
      << "train: {samples: " << samples << ", batch_size: 16, lr: 0.01, seed: 3}\n"
      << "eval: {images: 64, batch_size: 64}\n"
      << "run: {dir: '" << run_dir << "', checkpoint_every: 3}\n"
      << "call: {timeout_s: 30, attempts: 3}\n";
    const std::string path = dir_.File(name + ".yaml");
    WriteFile(path, y.str());
    return path;
  }

  static std::vector<std::string> Lines(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) {
      if (!l.empty()) lines.push_back(l);
    }
    return lines;
  }
};

TEST_F(RetrainTest, DrmAndAprmRunEndToEndAndAprmSendsLessAtBerZero) {
  ASSERT_NO_FATAL_FAILURE(StartClient({}));
  TimingTotals totals[3];
  int i = 0;
  for (const char* method :
       {"{mode: drm}", "{mode: aprm, threshold_policy: offline, similarity_threshold: 0.6}",
        "{mode: aprm, threshold_policy: adaptive, reference: local}"}) {
    const std::string run = dir_.File(std::string("run") + std::to_string(i));
    auto config = LoadRetrainConfig(WriteConfig("m" + std::to_string(i), method, run, 96));
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    auto result = RunRetrain(*config, false);
    ASSERT_TRUE(result.ok()) << result.status().ToString() << client_->Log();
    EXPECT_EQ(result->iterations, 6);
    EXPECT_EQ(result->final_model_version, 7u);  // one deploy per iteration
    EXPECT_EQ(result->before.count(), 64);
    EXPECT_EQ(result->after.count(), 64);
    EXPECT_EQ(Lines(run + "/stages.jsonl").size(), 6u);
    for (const std::string& line : Lines(run + "/stages.jsonl")) {
      auto t = IterationTimingFromJson(line);
      ASSERT_TRUE(t.ok()) << t.status().ToString();
      EXPECT_GT(t->uplink_bytes, 0u);
      EXPECT_GT(t->modelled(Stage::kUplink), 0.0);
      EXPECT_GT(t->modelled(Stage::kDownlink), 0.0);
      EXPECT_GT(t->modelled(Stage::kBp), 0.0);
      totals[i].Add(*t);
    }
    EXPECT_TRUE(std::filesystem::exists(run + "/summary.json"));
    EXPECT_TRUE(std::filesystem::exists(run + "/model.pb"));
    std::ifstream summary(run + "/summary.json");
    const std::string text((std::istreambuf_iterator<char>(summary)), {});
    EXPECT_NE(text.find(i == 2 ? "\"reference\": \"local\"" : "\"reference\": \"chain\""),
              std::string::npos)
        << text;
    ++i;
  }
  // The layer-local reference (ours) is as small as the chain's at BER 0 and costs the same TMR.
  EXPECT_LT(totals[2].uplink_bytes * 10, totals[0].uplink_bytes);
  EXPECT_EQ(totals[2].modelled_s[StageIndex(Stage::kTmr)],
            totals[1].modelled_s[StageIndex(Stage::kTmr)]);
  // method.reference is validated like every other key.
  EXPECT_FALSE(
      LoadRetrainConfig(WriteConfig("bad", "{mode: aprm, reference: lw}", dir_.File("x"))).ok());
  // At BER 0 every layer of the faulty chain equals its TMR reference: APRM sends the inputs
  // and empty increments, DRM every layer's outputs.
  EXPECT_LT(totals[1].uplink_bytes * 10, totals[0].uplink_bytes)
      << "APRM " << totals[1].uplink_bytes << " B vs DRM " << totals[0].uplink_bytes << " B";
  EXPECT_EQ(totals[0].modelled_s[StageIndex(Stage::kTmr)], 0.0) << "DRM runs no reference chain";
  EXPECT_GT(totals[1].modelled_s[StageIndex(Stage::kTmr)], 0.0);
}

int WaitExit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(RetrainTest, KilledServerResumesToTheSameModelAsAnUninterruptedRun) {
  DeviceYamlOptions device;
  device.ber = 2e-4;
  ASSERT_NO_FATAL_FAILURE(StartClient(device));
  const std::string method = "{mode: aprm, threshold_policy: adaptive, similarity_threshold: 0.5}";
  const std::string straight = dir_.File("straight");
  const std::string killed = dir_.File("killed");
  const std::string log = dir_.File("server.log");

  pid_t a = SpawnServer(WriteConfig("straight", method, straight), false, log);
  ASSERT_GT(a, 0);
  ASSERT_EQ(WaitExit(a), 0) << ReadFile(log);

  const std::string config = WriteConfig("killed", method, killed);
  pid_t b = SpawnServer(config, false, log);
  ASSERT_GT(b, 0);
  // Kill it mid-epoch, after a checkpoint (every 3 iterations) and before the end (10).
  ASSERT_TRUE(WaitUntil([&] { return Lines(killed + "/stages.jsonl").size() >= 5; },
                        std::chrono::seconds(120)))
      << ReadFile(log);
  kill(b, SIGKILL);
  WaitExit(b);
  const size_t done_before_kill = Lines(killed + "/stages.jsonl").size();
  ASSERT_LT(done_before_kill, 10u) << "the run finished before it could be killed";

  pid_t c = SpawnServer(config, true, log);
  ASSERT_GT(c, 0);
  ASSERT_EQ(WaitExit(c), 0) << ReadFile(log);
  EXPECT_NE(ReadFile(log).find("resuming after iteration"), std::string::npos);

  // Every batch applied exactly once: one stage line per iteration, and the same final model.
  std::vector<std::string> lines = Lines(killed + "/stages.jsonl");
  ASSERT_EQ(lines.size(), 10u);
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(IterationTimingFromJson(lines[i])->iteration, static_cast<int64_t>(i));
  }
  const std::string expected = ReadFile(straight + "/model.pb");
  ASSERT_FALSE(expected.empty());
  EXPECT_TRUE(ReadFile(killed + "/model.pb") == expected)
      << "the resumed run ended with a different model";
}

}  // namespace
}  // namespace r2f::testing
