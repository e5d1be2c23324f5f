// The retraining loop end to end: a real mosquitto, a real r2f_client process and the server's
// retraining (in-process or as a real r2f_server process that gets killed and resumed).
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include <set>

#include "common/base/json.h"
#include "common/ir/model_file.h"
#include "common/link/stage_timer.h"
#include "server/retrain/reconstruct.h"
#include "server/retrain/retrain.h"
#include "tests/support/daemon_fixture.h"

namespace r2f::testing {
namespace {

class RetrainTest : public DaemonTest {
 protected:
  // A retrain config for the test device and a random test model written next to it.
  // Do no harm is off unless `validation` says otherwise.
  std::string WriteConfig(const std::string& name, const std::string& method,
                          const std::string& run_dir, int samples = 160,
                          const std::string& validation = "{enabled: false}",
                          const std::string& lr = "0.01", const std::string& run_extra = "") {
    const std::string model_path = dir_.File("model.pb");
    if (!std::filesystem::exists(model_path))
      WriteFile(model_path, TestModel().SerializeAsString());
    std::ostringstream y;
    y << "device_id: " << kDevice << "\njob_id: " << name << "\n"
      << "broker: {uri: '" << broker_.uri() << "', client_id: 'test-retrain-" << name << "'}\n"
      << "link: {preset: ieee802154g}\n"
      << "model: {path: '" << model_path << "', deploy_as_delta: true}\n"
      << "method: " << method << "\n"
      << "train: {samples: " << samples << ", batch_size: 16, lr: " << lr << ", seed: 3}\n"
      << "validation: " << validation << "\n"
      << "eval: {images: 64, batch_size: 64}\n"
      << "run: {dir: '" << run_dir << "', checkpoint_every: 3" << run_extra << "}\n"
      << "call: {timeout_s: 30, attempts: 3}\n";
    const std::string path = dir_.File(name + ".yaml");
    WriteFile(path, y.str());
    return path;
  }
};

TEST_F(RetrainTest, DrmAndAprmRunEndToEndAndAprmSendsLessAtBerZero) {
  ASSERT_NO_FATAL_FAILURE(StartClient({}));
  TimingTotals totals[3];
  int i = 0;
  for (const char* method :
       {"{mode: drm}",
        "{mode: aprm, threshold_policy: offline, similarity_threshold: 0.6, reference: chain}",
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
    EXPECT_EQ(NonEmptyLines(run + "/stages.jsonl").size(), 6u);
    for (const std::string& line : NonEmptyLines(run + "/stages.jsonl")) {
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
    const char* reference[] = {"none", "chain", "local"};
    EXPECT_NE(text.find("\"reference\": \"" + std::string(reference[i]) + "\""), std::string::npos)
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

// Mistakes that would spoil a run are refused before it trains: an evaluation larger than the
// device's test split, and --resume under other defining settings than the run started with
// (the same settings resume).
TEST_F(RetrainTest, EvalSizeAndChangedSettingsAreRefusedBeforeTraining) {
  ASSERT_NO_FATAL_FAILURE(StartClient({}));
  const std::string run = dir_.File("refused");
  const std::string path = WriteConfig("refused", "{mode: drm}", run, 48);
  std::string text = ReadFile(path);
  const std::string images = "images: 64, batch_size: 64";
  // Base not measured: the check that refuses it is PrepareDevice's, not the Base evaluation's.
  WriteFile(path, text.replace(text.find(images), images.size(),
                               "images: 20000, batch_size: 64, before: false"));
  auto too_many = RunRetrain(LoadRetrainConfig(path).value(), false);
  ASSERT_FALSE(too_many.ok());
  EXPECT_EQ(too_many.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(too_many.status().message().find("eval.images is 20000, but the test split"),
            std::string::npos)
      << too_many.status().ToString();
  EXPECT_TRUE(NonEmptyLines(run + "/stages.jsonl").empty());

  auto done =
      RunRetrain(LoadRetrainConfig(WriteConfig("refused", "{mode: drm}", run, 48)).value(), false);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  auto other_lr =
      LoadRetrainConfig(WriteConfig("refused", "{mode: drm}", run, 48, "{enabled: false}", "0.02"));
  auto refused = RunRetrain(other_lr.value(), true);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("train.lr was '0.01', is now '0.02'"),
            std::string::npos)
      << refused.status().ToString();
  auto same =
      RunRetrain(LoadRetrainConfig(WriteConfig("refused", "{mode: drm}", run, 48)).value(), true);
  ASSERT_TRUE(same.ok()) << same.status().ToString();
  EXPECT_EQ(same->iterations, 3);
}

// run.pipeline sends each getData right behind the previous deploy: the run must train on the
// same data and end with the same model as one that waits for every Ack, and its stage lines
// show the requests that waited on the device while it deployed.
TEST_F(RetrainTest, PipelinedCallsEndWithTheSameModelAsSequentialOnes) {
  DeviceYamlOptions device;
  device.ber = 2e-4;
  ASSERT_NO_FATAL_FAILURE(StartClient(device));
  std::string models[2];
  for (int pipelined = 0; pipelined < 2; ++pipelined) {
    const std::string run = dir_.File("pipeline" + std::to_string(pipelined));
    auto config = LoadRetrainConfig(WriteConfig("p" + std::to_string(pipelined), "{mode: drm}", run,
                                                96, "{enabled: false}", "0.01",
                                                pipelined ? "" : ", pipeline: false"));
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    EXPECT_EQ(config->pipeline, pipelined == 1);
    auto result = RunRetrain(*config, false);
    ASSERT_TRUE(result.ok()) << result.status().ToString() << client_->Log();
    EXPECT_EQ(result->final_model_version, 7u);
    models[pipelined] = ReadFile(run + "/model.pb");
    const std::vector<std::string> lines = NonEmptyLines(run + "/stages.jsonl");
    ASSERT_EQ(lines.size(), 6u);
    for (const std::string& line : lines) {
      const Json extra = ParseJson(line, "stage line").value()["extra"];
      EXPECT_TRUE(extra.contains("getdata_device_s")) << "an iteration without its getData";
      EXPECT_TRUE(extra.contains("deploy_device_s")) << "an iteration without its deploy";
    }
    // Iterations 1-5 trained on data asked for behind the deploy of the one before; the first
    // and the last deploy have nothing behind them.
    EXPECT_EQ(result->prefetched, pipelined ? 5 : 0);
    EXPECT_EQ(result->overtaken, 0);
    const Json summary = ParseJson(ReadFile(run + "/summary.json"), "summary").value();
    EXPECT_EQ(summary["pipeline"]["prefetched"], result->prefetched);
  }
  ASSERT_FALSE(models[0].empty());
  EXPECT_TRUE(models[0] == models[1]) << "pipelining changed the trained model";
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
  // Do no harm validates every 2 iterations: the kept model survives the kill too.
  const std::string validation = "{images: 64, every: 2, batch_size: 32}";

  pid_t a = SpawnServer(WriteConfig("straight", method, straight, 160, validation), false, log);
  ASSERT_GT(a, 0);
  ASSERT_EQ(WaitExit(a), 0) << ReadFile(log);

  const std::string config = WriteConfig("killed", method, killed, 160, validation);
  pid_t b = SpawnServer(config, false, log);
  ASSERT_GT(b, 0);
  // Kill it mid-epoch, after a checkpoint (every 3 iterations) and before the end (10).
  ASSERT_TRUE(WaitUntil([&] { return NonEmptyLines(killed + "/stages.jsonl").size() >= 5; },
                        std::chrono::seconds(120)))
      << ReadFile(log);
  kill(b, SIGKILL);
  WaitExit(b);
  const size_t done_before_kill = NonEmptyLines(killed + "/stages.jsonl").size();
  ASSERT_LT(done_before_kill, 10u) << "the run finished before it could be killed";

  pid_t c = SpawnServer(config, true, log);
  ASSERT_GT(c, 0);
  ASSERT_EQ(WaitExit(c), 0) << ReadFile(log);
  EXPECT_NE(ReadFile(log).find("resuming after iteration"), std::string::npos);

  // Every batch applied exactly once: one stage line per iteration, and the same final model.
  std::vector<std::string> lines = NonEmptyLines(killed + "/stages.jsonl");
  ASSERT_EQ(lines.size(), 10u);
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_EQ(IterationTimingFromJson(lines[i])->iteration, static_cast<int64_t>(i));
  }
  const std::string expected = ReadFile(straight + "/model.pb");
  ASSERT_FALSE(expected.empty());
  EXPECT_TRUE(ReadFile(killed + "/model.pb") == expected)
      << "the resumed run ended with a different model";
  // And the same validations: Base and after iterations 1, 3, 5, 7, 9.
  auto validation_of = [](const std::string& run) {
    return ParseJson(ReadFile(run + "/summary.json"), "summary").value()["validation"];
  };
  const Json v = validation_of(killed);
  EXPECT_EQ(v, validation_of(straight));
  ASSERT_EQ(v["history"].size(), 6u) << v.dump();
  EXPECT_EQ(v["history"][5]["iteration"], 9);
}

// Do no harm end to end. With a learning rate of 1e-8 no int8 weight changes, so every
// retrained model ties with Base on validation, and a tie keeps the earlier model: the run must
// keep Base, deploy it at the end (the device ends on version 1, not 7), write it as model.pb
// and the last iteration's model beside it, and say why. Deterministic on any CPU.
TEST_F(RetrainTest, DoNoHarmKeepsBaseUnlessARetrainedModelIsBetterOnValidation) {
  ASSERT_NO_FATAL_FAILURE(StartClient({}));
  const std::string run = dir_.File("harm");
  auto config = LoadRetrainConfig(WriteConfig("harm", "{mode: drm}", run, 96,
                                              "{images: 100, every: 3, batch_size: 50}", "1e-8"));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  auto result = RunRetrain(*config, false);
  ASSERT_TRUE(result.ok()) << result.status().ToString() << client_->Log();
  EXPECT_EQ(result->validation.kept().iteration, -1) << result->validation.Reason();
  EXPECT_EQ(result->validation.count(), 100);
  EXPECT_EQ(ReadFile(run + "/model.pb"), TestModel().SerializeAsString());
  EXPECT_EQ(result->final_model_version, 1u);
  auto last = LoadQuantizedModelFile(run + "/last_model.pb");
  ASSERT_TRUE(last.ok()) << last.status().ToString();
  EXPECT_EQ(last->model_version(), 7u);
  EXPECT_EQ(result->after.top1_hits(), result->before.top1_hits());  // BER 0, same images
  EXPECT_EQ(result->after_last.count(), 64);
  // The device runs what the run deployed last: Base.
  ASSERT_NO_FATAL_FAILURE(ConnectServer());
  ASSERT_TRUE(server_->setAIoTMode(kDevice, pb::MODE_INFERENCE, accel::TmrConfig{}).ok());
  EXPECT_EQ(server_->LastAck(kDevice)->model_version(), 1u);

  const Json summary = ParseJson(ReadFile(run + "/summary.json"), "summary").value();
  const Json& v = summary["validation"];
  EXPECT_NE(v["reason"].get<std::string>().find("Base kept"), std::string::npos) << v.dump();
  ASSERT_EQ(v["history"].size(), 3u);  // Base, after iterations 2 and 5
  EXPECT_EQ(v["history"][1]["iteration"], 2);
  EXPECT_EQ(v["history"][1]["top1"], v["base_top1"]);
  EXPECT_TRUE(summary.contains("accuracy_last"));
  // Validations are timed as a stage of their own, outside the paper's seven: on the lines of
  // iteration 0 (Base's), 2 and 5.
  EXPECT_EQ(result->timing.validations, 3);
  EXPECT_GT(result->timing.validation_measured_s, 0.0);
  EXPECT_GT(result->timing.validation_modelled_s, 0.0);
}

}  // namespace
}  // namespace r2f::testing
