// The retrain config's choices of issue-17 features: the exact reference is APRM's default,
// do no harm is on by default, and bad values name their key.
#include "server/retrain/retrain_config.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/support/test_util.h"

namespace r2f {
namespace {

Result<RetrainConfig> Load(const std::string& extra) {
  static testing::TempDir dir;
  const std::string path = dir.File("retrain.yaml");
  testing::WriteFile(path,
                     "device_id: dev-1\n"
                     "broker: {uri: 'tcp://127.0.0.1:1883'}\n"
                     "link: {preset: hspa}\nmodel: {path: 'model.pb'}\n" +
                         extra);
  return LoadRetrainConfig(path);
}

TEST(RetrainConfigTest, ExactReferenceAndDoNoHarmAreTheDefaults) {
  auto c = Load("method: {mode: aprm}\n");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->reference, pb::REFERENCE_LOCAL_EXACT);
  EXPECT_FALSE(c->verify_rebuild);
  EXPECT_TRUE(c->validation.enabled);
  EXPECT_EQ(c->validation.images, 1000);
  EXPECT_EQ(c->validation.every, 50);

  auto chain = Load(
      "method: {mode: aprm, reference: chain, verify_rebuild: true}\n"
      "validation: {enabled: false, images: 64, every: 5, batch_size: 32}\n");
  ASSERT_TRUE(chain.ok()) << chain.status().ToString();
  EXPECT_EQ(chain->reference, pb::REFERENCE_CHAIN);
  EXPECT_TRUE(chain->verify_rebuild);
  EXPECT_FALSE(chain->validation.enabled);
  EXPECT_EQ(chain->validation.images, 64);
  EXPECT_EQ(chain->validation.every, 5);
  EXPECT_EQ(chain->validation.batch_size, 32);
}

TEST(RetrainConfigTest, BadValuesNameTheirKey) {
  auto unknown = Load("method: {mode: aprm, reference: lw}\n");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("reference"), std::string::npos)
      << unknown.status().ToString();
  EXPECT_NE(unknown.status().message().find("exact"), std::string::npos)
      << unknown.status().ToString();

  auto nw = Load("method: {mode: aprm}\ntmr: {mode: network_wise}\n");
  ASSERT_FALSE(nw.ok());
  EXPECT_NE(nw.status().message().find("exact needs a single deployed chain"), std::string::npos)
      << nw.status().ToString();

  auto every = Load("validation: {every: 0}\n");
  ASSERT_FALSE(every.ok());
  EXPECT_NE(every.status().message().find("every"), std::string::npos) << every.status().ToString();
}

// --resume under other defining settings is refused with every difference named; what does not
// define the run (eval and validation sizes, timeouts, the link) may change.
TEST(RetrainConfigTest, ResumeRefusesOtherDefiningSettings) {
  auto base = Load("train: {batch_size: 16, seed: 1, lr: 0.0003}\n");
  ASSERT_TRUE(base.ok()) << base.status().ToString();
  const RunSettings recorded = RunDefiningSettings(*base);
  EXPECT_NE(std::find(recorded.begin(), recorded.end(),
                      std::pair<std::string, std::string>{"train.lr", "0.0003"}),
            recorded.end());

  auto same = Load(
      "train: {batch_size: 16, seed: 1, lr: 0.0003}\neval: {images: 500}\n"
      "validation: {every: 10}\ncall: {timeout_s: 9}\n");
  ASSERT_TRUE(same.ok()) << same.status().ToString();
  EXPECT_TRUE(CheckResumeSettings("runs/r", recorded, RunDefiningSettings(*same)).ok());

  auto other = Load("train: {batch_size: 32, seed: 2, lr: 0.0003}\n");
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  Status st = CheckResumeSettings("runs/r", recorded, RunDefiningSettings(*other));
  EXPECT_EQ(st.code(), Status::Code::kFailedPrecondition) << st.ToString();
  for (const char* text : {"runs/r", "train.batch_size was '16', is now '32'",
                           "train.seed was '1', is now '2'", "without --resume"}) {
    EXPECT_NE(st.message().find(text), std::string::npos) << st.ToString();
  }
  EXPECT_EQ(st.message().find("train.lr"), std::string::npos) << st.ToString();

  RunSettings partial = recorded;
  partial.pop_back();
  partial.push_back({"old.key", "1"});
  st = CheckResumeSettings("runs/r", partial, recorded);
  EXPECT_NE(st.message().find("(not recorded)"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("old.key was '1', is now '(not a setting now)'"), std::string::npos)
      << st.ToString();
}

// tmr.search_result: the protection set of a search.json. A file whose protected_layers are not
// a list of ids is an error naming it, never an empty set (which would run without protection).
TEST(RetrainConfigTest, SearchResultIsReadStrictly) {
  static testing::TempDir dir;
  auto with_search = [&](const std::string& json) {
    const std::string path = dir.File("search.json");
    testing::WriteFile(path, json);
    return Load("tmr: {mode: partial, search_result: '" + path + "'}\n");
  };
  auto good = with_search(R"({"network": "resnet18", "protected_layers": [3, 7, 12]})");
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_EQ(good->session.tmr.protected_layers, (std::vector<uint32_t>{3, 7, 12}));

  const std::pair<const char*, const char*> bad[] = {
      {R"({"protected_layers": "3, 7"})", "must be a list of layer ids, got \"3, 7\""},
      {R"({"protected_layers": [3, -1]})", "must hold layer ids, got -1"},
      {R"({"protected_layers": [3, 1.5]})", "must hold layer ids, got 1.5"},
      {R"({"protected_layers": [4294967296]})", "must hold layer ids, got 4294967296"},
      {R"({"layers": [3]})", "has no protected_layers"},
      {R"([3, 7])", "has no protected_layers"},
      {R"({"protected_layers": [3)", "search.json"},
  };
  for (const auto& [json, text] : bad) {
    auto c = with_search(json);
    ASSERT_FALSE(c.ok()) << json;
    EXPECT_NE(c.status().message().find("search_result"), std::string::npos)
        << c.status().ToString();
    EXPECT_NE(c.status().message().find(text), std::string::npos) << c.status().ToString();
  }
}

}  // namespace
}  // namespace r2f
