// client/device_state_store.h: a device restarts with the model it last acknowledged, whether it
// came whole or as weight deltas in the journal, and a torn journal end costs only the record it
// tore.
#include "client/device_state_store.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/base/checksum.h"
#include "common/codec/weight_delta.h"
#include "tests/support/daemon_test_util.h"
#include "tests/support/test_util.h"

namespace r2f {
namespace {

using google::protobuf::util::MessageDifferencer;

// Deploys v1 whole and then `deltas` retraining steps as deltas; returns the last model.
pb::QuantizedModel DeployChain(DeviceStateStore* store, int deltas) {
  pb::QuantizedModel model = testing::TestModel();
  EXPECT_TRUE(store->SaveModel(model).ok());
  for (int v = 2; v <= deltas + 1; ++v) {
    pb::QuantizedModel next = testing::Retrained(model, static_cast<uint64_t>(v));
    auto delta = MakeWeightDelta(model, next);
    EXPECT_TRUE(delta.ok()) << delta.status().ToString();
    EXPECT_TRUE(store->SaveDelta(*delta, next).ok());
    model = next;
  }
  return model;
}

constexpr uint64_t kMaxBytes = uint64_t{1} << 30;

// Loads the saved model; it must be `expected` (or, when null, of `version`), rebuilt with
// `replayed` journalled deltas.
void ExpectLoads(DeviceStateStore* store, int replayed, uint64_t version,
                 const pb::QuantizedModel* expected = nullptr) {
  int got_replayed = -1;
  auto model = store->LoadModel(kMaxBytes, &got_replayed);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_EQ(got_replayed, replayed);
  EXPECT_EQ(model->model_version(), version);
  if (expected != nullptr) {
    EXPECT_TRUE(MessageDifferencer::Equals(*model, *expected));
  }
}

uint64_t FileSize(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : size;
}

TEST(DeviceStateStoreTest, RestartsWithTheLastDeltaFromTheJournal) {
  testing::TempDir dir;
  pb::QuantizedModel last;
  {
    DeviceStateStore store(dir.path());
    last = DeployChain(&store, 5);
    EXPECT_GT(FileSize(store.journal_path()), 0u);
  }
  DeviceStateStore reopened(dir.path());
  ExpectLoads(&reopened, 5, 6, &last);
}

TEST(DeviceStateStoreTest, CompactsIntoAWholeModelAndAWholeModelEmptiesTheJournal) {
  testing::TempDir dir;
  DeviceStateStore store(dir.path());
  const pb::QuantizedModel last = DeployChain(&store, DeviceStateStore::kCompactEvery + 2);
  int replayed = -1;
  auto model = store.LoadModel(kMaxBytes, &replayed);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_LT(replayed, DeviceStateStore::kCompactEvery);  // the journal was started afresh
  EXPECT_TRUE(MessageDifferencer::Equals(*model, last));

  ASSERT_TRUE(store.SaveModel(testing::TestModel(9, 100)).ok());
  EXPECT_EQ(FileSize(store.journal_path()), 0u);
  ExpectLoads(&store, 0, 100);
}

TEST(DeviceStateStoreTest, ATornLastRecordIsDroppedAndLaterAppendsStillReplay) {
  testing::TempDir dir;
  DeviceStateStore store(dir.path());
  const pb::QuantizedModel v4 = DeployChain(&store, 3);
  const std::string journal = store.journal_path();
  const uint64_t good = FileSize(journal);
  {
    // A kill mid-append: half a record's header and a few bytes.
    std::ofstream out(journal, std::ios::binary | std::ios::app);
    out.write("\x40\x00\x00\x00\x12\x34", 6);
  }
  DeviceStateStore restarted(dir.path());
  ExpectLoads(&restarted, 3, 4, &v4);
  EXPECT_EQ(FileSize(journal), good) << "the torn end is cut off";

  const pb::QuantizedModel v5 = testing::Retrained(v4, 5);
  ASSERT_TRUE(restarted.SaveDelta(*MakeWeightDelta(v4, v5), v5).ok());
  DeviceStateStore again(dir.path());
  ExpectLoads(&again, 4, 5);
}

TEST(DeviceStateStoreTest, AStaleJournalIsDroppedALaterBadRecordIsCorruption) {
  testing::TempDir dir;
  DeviceStateStore store(dir.path());
  const pb::QuantizedModel v1 = testing::TestModel();
  ASSERT_TRUE(store.SaveModel(v1).ok());
  const pb::QuantizedModel v2 = testing::Retrained(v1, 2);
  const pb::QuantizedModel v3 = testing::Retrained(v2, 3);
  ASSERT_TRUE(store.SaveDelta(*MakeWeightDelta(v1, v2), v2).ok());
  ASSERT_TRUE(store.SaveDelta(*MakeWeightDelta(v2, v3), v3).ok());
  const std::string journal = store.journal_path();
  std::ifstream in(journal, std::ios::binary);
  const std::string records((std::istreambuf_iterator<char>(in)), {});
  in.close();

  // Killed between writing model.pb (v3, compacted) and removing the journal: the journal
  // leads to model.pb; it is dropped, and model.pb is what the device acknowledged.
  {
    DeviceStateStore compacted(dir.path());
    ASSERT_TRUE(compacted.SaveModel(v3).ok());
  }
  testing::WriteFile(journal, records);
  DeviceStateStore restarted(dir.path());
  ExpectLoads(&restarted, 0, 3, &v3);

  // A good first record and a second that does not apply: acknowledged deltas are missing.
  ASSERT_TRUE(DeviceStateStore(dir.path()).SaveModel(v1).ok());
  pb::WeightDelta bad = *MakeWeightDelta(v2, v3);
  bad.set_weights_crc32(bad.weights_crc32() ^ 1);  // damaged before it was journalled
  {
    DeviceStateStore again(dir.path());
    ASSERT_TRUE(again.SaveDelta(*MakeWeightDelta(v1, v2), v2).ok());
    ASSERT_TRUE(again.SaveDelta(bad, v3).ok());
  }
  auto model = DeviceStateStore(dir.path()).LoadModel(kMaxBytes);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), Status::Code::kCorruption);
  EXPECT_NE(model.status().message().find("model.journal"), std::string::npos)
      << model.status().ToString();
}

// A journal record as SaveDelta frames it: length and CRC-32 (little-endian), then the payload.
std::string Record(const std::string& payload) {
  std::string r;
  for (uint32_t v : {static_cast<uint32_t>(payload.size()), Crc32(payload)}) {
    for (int i = 0; i < 4; ++i) r.push_back(static_cast<char>(v >> (8 * i)));
  }
  return r + payload;
}

// Only a record the file ends inside is torn. A whole, intact record above the loading limit
// (a limit lowered since it was written) is an error that names the limit, and the journal is
// left as it is.
TEST(DeviceStateStoreTest, AnIntactRecordOverTheLimitIsNotTakenForATornOne) {
  testing::TempDir dir;
  DeviceStateStore store(dir.path());
  DeployChain(&store, 2);
  const std::string journal = store.journal_path();
  const uint64_t model_bytes = FileSize(store.model_path());
  {
    std::ofstream out(journal, std::ios::binary | std::ios::app);
    const std::string big = Record(std::string(2 * model_bytes, 'x'));
    out.write(big.data(), static_cast<std::streamsize>(big.size()));
  }
  const uint64_t before = FileSize(journal);
  auto over = DeviceStateStore(dir.path()).LoadModel(model_bytes + 100);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().code(), Status::Code::kCorruption);
  EXPECT_NE(over.status().message().find("record 3 has"), std::string::npos)
      << over.status().ToString();
  EXPECT_NE(over.status().message().find("limits.max_model_bytes"), std::string::npos);
  EXPECT_EQ(FileSize(journal), before) << "nothing cut off";
}

// The journal is read whole, so a file that could not be one is refused before reading: a
// device file (which would never end) or one longer than kCompactEvery records can be.
TEST(DeviceStateStoreTest, AJournalThatCannotBeOneIsCorruptionNotAHang) {
  testing::TempDir dir;
  DeviceStateStore store(dir.path());
  ASSERT_TRUE(store.SaveModel(testing::TestModel()).ok());
  std::filesystem::create_symlink("/dev/zero", store.journal_path());
  Result<pb::QuantizedModel> model = store.LoadModel(1 << 20);
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("is not a regular file"), std::string::npos)
      << model.status().ToString();
  std::filesystem::remove(store.journal_path());
  testing::WriteFile(store.journal_path(), "");
  std::filesystem::resize_file(store.journal_path(),
                               DeviceStateStore::kCompactEvery * ((1 << 20) + 8) + 1);  // sparse
  model = store.LoadModel(1 << 20);
  ASSERT_FALSE(model.ok());
  EXPECT_NE(model.status().message().find("more than 64 records can"), std::string::npos)
      << model.status().ToString();
}

TEST(DeviceStateStoreTest, WithoutADirectoryNothingIsKept) {
  DeviceStateStore store("");
  const pb::QuantizedModel v1 = testing::TestModel();
  EXPECT_TRUE(store.SaveModel(v1).ok());
  EXPECT_EQ(store.LoadModel(1 << 30).status().code(), Status::Code::kNotFound);
}

// The two-step save a deploy uses to let the append wait on the disk while it does other work:
// appends replay after a restart and go on from there; without a whole model saved, or without
// a directory, there is nothing to append to.
TEST(DeviceStateStoreTest, AppendsReplayAndGoOnAndNeedAWholeModel) {
  testing::TempDir dir;
  DeviceStateStore store(dir.path());
  EXPECT_FALSE(store.NextDeltaAppends()) << "no model.pb yet";
  const pb::QuantizedModel v1 = testing::TestModel();
  const pb::QuantizedModel v2 = testing::Retrained(v1, 2);
  const pb::QuantizedModel v3 = testing::Retrained(v2, 3);
  EXPECT_EQ(store.AppendDelta(*MakeWeightDelta(v1, v2)).code(), Status::Code::kFailedPrecondition);
  ASSERT_TRUE(store.SaveModel(v1).ok());
  ASSERT_TRUE(store.NextDeltaAppends());
  ASSERT_TRUE(store.AppendDelta(*MakeWeightDelta(v1, v2)).ok());
  {
    DeviceStateStore restarted(dir.path());
    ExpectLoads(&restarted, 1, 2, &v2);
  }
  ASSERT_TRUE(store.AppendDelta(*MakeWeightDelta(v2, v3)).ok());
  DeviceStateStore again(dir.path());
  ExpectLoads(&again, 2, 3, &v3);

  DeviceStateStore memory_only("");
  EXPECT_FALSE(memory_only.NextDeltaAppends());
  EXPECT_EQ(memory_only.AppendDelta(*MakeWeightDelta(v1, v2)).code(),
            Status::Code::kFailedPrecondition);
}

}  // namespace
}  // namespace r2f
