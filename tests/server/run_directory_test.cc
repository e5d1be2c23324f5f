// Checkpoints (server/retrain/run_directory.h): versioned files named by state.yaml, the old
// checkpoint's files removed only after the new state is in place, so a run killed between two
// writes resumes from the last complete checkpoint.
#include "server/retrain/run_directory.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/support/test_util.h"

namespace r2f {
namespace {

namespace fs = std::filesystem;

pb::QuantizedModel Model(uint64_t version) {
  pb::QuantizedModel m;
  m.set_model_version(version);
  m.add_activation_frac(static_cast<int32_t>(version));
  return m;
}

// A checkpoint after iteration `last` with model `version`, keeping iteration `kept_it`'s model.
CheckpointState State(int64_t last, uint64_t version, int64_t kept_it, uint64_t kept_version) {
  CheckpointState s;
  s.last_iteration = last;
  s.model_version = version;
  s.kept_iteration = kept_it;
  s.kept_model_version = kept_version;
  return s;
}

TEST(RunDirectoryTest, ACheckpointNamesItsFilesAndRemovesTheEarlierOnes) {
  testing::TempDir tmp;
  RunDirectory dir(tmp.File("run"));
  ASSERT_TRUE(dir.StartFresh().ok());
  CheckpointState s = State(9, 11, 4, 6);
  s.validation_count = 100;
  s.validated_iterations = {-1, 4, 9};
  s.validated_hits = {70, 75, 72};
  s.validation_held_out = 100;
  s.settings = {{"train.batch_size", "16"}, {"model.path", R"(runs/a "b"\c: d.pb)"}, {"x", ""}};
  const pb::QuantizedModel kept = Model(6);
  ASSERT_TRUE(dir.SaveCheckpoint(s, Model(11), &kept).ok());
  testing::WriteFile(dir.trainer_prefix(11) + ".weights.pt", "w");

  // The next checkpoint; the kept model is unchanged (not rewritten).
  s.last_iteration = 19;
  s.model_version = 21;
  testing::WriteFile(dir.trainer_prefix(21) + ".weights.pt", "w");
  ASSERT_TRUE(dir.SaveCheckpoint(s, Model(21), nullptr).ok());
  const std::string cp = tmp.File("run") + "/checkpoint";
  EXPECT_TRUE(fs::exists(cp + "/model-21.pb"));
  EXPECT_TRUE(fs::exists(cp + "/kept-6.pb"));
  EXPECT_TRUE(fs::exists(cp + "/trainer-21.weights.pt"));
  EXPECT_FALSE(fs::exists(cp + "/model-11.pb"));
  EXPECT_FALSE(fs::exists(cp + "/trainer-11.weights.pt"));

  // Killed while writing the next one: its files exist, the state does not name them yet.
  testing::WriteFile(cp + "/model-31.pb", "partial");
  testing::WriteFile(dir.trainer_prefix(31) + ".weights.pt", "partial");
  pb::QuantizedModel model, kept_back;
  auto resumed = dir.Resume(&model, &kept_back);
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_EQ(resumed->last_iteration, 19);
  EXPECT_EQ(model.model_version(), 21u);
  EXPECT_EQ(kept_back.model_version(), 6u);
  EXPECT_EQ(resumed->validated_hits, (std::vector<int64_t>{70, 75, 72}));
  EXPECT_EQ(resumed->validation_held_out, 100);
  EXPECT_EQ(resumed->settings, s.settings);  // in order, quotes and backslashes intact
  EXPECT_EQ(dir.trainer_prefix(21), cp + "/trainer-21");
}

// Resume's `accept` sees the state before anything changes: refused, the stage lines of the
// iterations after the checkpoint stay; accepted, they go.
TEST(RunDirectoryTest, ARefusedResumeLeavesTheDirectoryAsItWas) {
  testing::TempDir tmp;
  RunDirectory dir(tmp.File("run"));
  ASSERT_TRUE(dir.StartFresh().ok());
  CheckpointState s = State(1, 3, -1, 0);
  s.settings = {{"train.seed", "1"}};
  ASSERT_TRUE(dir.SaveCheckpoint(s, Model(3), nullptr).ok());
  for (int64_t it = 0; it < 4; ++it) {
    IterationTiming t;
    t.iteration = it;
    ASSERT_TRUE(dir.AppendStage(t, {}).ok());
  }
  pb::QuantizedModel model, kept;
  auto refused = dir.Resume(&model, &kept, [](const CheckpointState& saved) {
    EXPECT_EQ(saved.settings.size(), 1u);
    return Status::FailedPrecondition("other settings");
  });
  EXPECT_EQ(refused.status().code(), Status::Code::kFailedPrecondition);
  EXPECT_EQ(dir.ReplayStages()->iterations, 4);
  auto accepted = dir.Resume(&model, &kept, [](const CheckpointState&) { return Status::Ok(); });
  ASSERT_TRUE(accepted.ok()) << accepted.status().ToString();
  EXPECT_EQ(dir.ReplayStages()->iterations, 2);  // iterations 0 and 1, the checkpoint's
}

TEST(RunDirectoryTest, AStateNamingAMissingModelIsAnError) {
  testing::TempDir tmp;
  RunDirectory dir(tmp.File("run"));
  ASSERT_TRUE(dir.StartFresh().ok());
  const CheckpointState s = State(3, 5, 2, 4);
  ASSERT_TRUE(dir.SaveCheckpoint(s, Model(5), nullptr).ok());  // kept-4.pb never written
  pb::QuantizedModel model, kept;
  auto resumed = dir.Resume(&model, &kept);
  ASSERT_FALSE(resumed.ok());
  EXPECT_NE(resumed.status().message().find("kept-4.pb"), std::string::npos)
      << resumed.status().ToString();
}

}  // namespace
}  // namespace r2f
