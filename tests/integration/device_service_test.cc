// DeviceService without MQTT: every Table-I request kind, every error it must name, weight
// deltas (wrong base, CRC mismatch), persistence across a restart, and the training encodings
// checked bit for bit against a local accelerator run.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include "accel_sim/accelerator.h"
#include "client/device_service.h"
#include "client/r2f_client_api.h"
#include "common/codec/increment_codec.h"
#include "common/codec/weight_delta.h"
#include "common/ir/graph.h"
#include "server/retrain/reconstruct.h"
#include "tests/support/daemon_test_util.h"

namespace r2f {
namespace {

using testing::TestModel;

const Dataset& TrainData() {
  static const Dataset* data = new Dataset(LoadDataset(testing::TestSplit("train")).value());
  return *data;
}
const Dataset& TestData() {
  static const Dataset* data = new Dataset(LoadDataset(testing::TestSplit("test")).value());
  return *data;
}
const pb::QuantizedModel& Model() {
  static const pb::QuantizedModel* model = new pb::QuantizedModel(TestModel());
  return *model;
}

bool HaveData() {
  return std::filesystem::exists(std::string(testing::kFashionMnistDir) +
                                 "/t10k-images-idx3-ubyte.gz");
}

pb::DeployModelRequest Whole(const pb::QuantizedModel& model) {
  pb::DeployModelRequest r;
  *r.mutable_model() = model;
  return r;
}

pb::SetAIoTModeRequest Mode(pb::AIoTMode mode, pb::TmrModeProto tmr = pb::TMR_NONE,
                            std::vector<uint32_t> layers = {}) {
  pb::SetAIoTModeRequest r;
  r.set_mode(mode);
  r.set_tmr(tmr);
  for (uint32_t l : layers) r.add_protected_layers(l);
  return r;
}

pb::GetDataRequest Request(pb::AIoTMode mode, std::vector<uint64_t> ids, uint64_t tag = 3) {
  pb::GetDataRequest r;
  r.set_mode(mode);
  r.set_split(pb::SPLIT_TEST);
  r.set_execution_tag(tag);
  for (uint64_t id : ids) r.add_sample_ids(id);
  return r;
}

std::vector<uint64_t> Range(uint64_t first, uint64_t count) {
  std::vector<uint64_t> ids;
  for (uint64_t i = 0; i < count; ++i) ids.push_back(first + i);
  return ids;
}

void ExpectError(const Status& st, Status::Code code, const std::string& text) {
  EXPECT_EQ(st.code(), code) << st.ToString();
  EXPECT_NE(st.message().find(text), std::string::npos)
      << "'" << text << "' not in: " << st.ToString();
}

class DeviceServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveData()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
    options_.device_id = "dev-unit";
    options_.faults.ber = 1e-3;
    options_.faults.seed = 5;
    options_.state_dir = dir_.File("state");
    options_.max_samples_per_request = 64;
    service_ = MakeService();
  }
  std::unique_ptr<DeviceService> MakeService() {
    auto s = DeviceService::Create(options_, TrainData(), TestData());
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return std::move(s).value();
  }
  void Deploy(const pb::QuantizedModel& model = Model()) {
    auto ack = service_->DeployModel(Whole(model));
    ASSERT_TRUE(ack.ok()) << ack.status().ToString();
  }
  // The same accelerator the device runs, for expected values.
  std::unique_ptr<accel::Accelerator> Local(const pb::QuantizedModel& model = Model()) {
    return accel::Accelerator::Create(model, options_.accelerator).value();
  }
  accel::ImageBatch Batch(const std::vector<uint64_t>& ids) {
    pixels_.clear();
    for (uint64_t id : ids) {
      pixels_.insert(pixels_.end(), TestData().image(id),
                     TestData().image(id) + TestData().image_bytes());
    }
    return accel::ImageBatch{pixels_.data(), static_cast<int>(ids.size()), ids};
  }

  testing::TempDir dir_;
  DeviceServiceOptions options_;
  std::unique_ptr<DeviceService> service_;
  std::vector<uint8_t> pixels_;
};

TEST_F(DeviceServiceTest, SetAIoTModeValidatesTheProtectionSet) {
  auto ack = service_->SetAIoTMode(Mode(pb::MODE_INFERENCE));
  ASSERT_TRUE(ack.ok()) << ack.status().ToString();
  EXPECT_EQ(ack->model_version(), 0u);
  EXPECT_EQ(ack->test_samples(), static_cast<uint64_t>(testing::kTestLimit));
  EXPECT_EQ(ack->train_samples(), static_cast<uint64_t>(testing::kTrainLimit));
  ExpectError(service_->SetAIoTMode(Mode(pb::MODE_TRAINING, pb::TMR_PARTIAL, {1})).status(),
              Status::Code::kInvalidArgument, "deployModel first");

  Deploy();
  const std::vector<uint32_t> macs = MacLayerIds(Model().graph());
  ack = service_->SetAIoTMode(Mode(pb::MODE_TRAINING, pb::TMR_PARTIAL, {macs[0], macs[3]}));
  ASSERT_TRUE(ack.ok()) << ack.status().ToString();
  EXPECT_EQ(ack->mode(), pb::MODE_TRAINING);
  EXPECT_EQ(ack->tmr(), pb::TMR_PARTIAL);
  EXPECT_EQ(ack->protected_layers_size(), 2);
  EXPECT_EQ(ack->model_version(), 1u);

  ExpectError(service_->SetAIoTMode(Mode(pb::MODE_TRAINING, pb::TMR_PARTIAL, {0})).status(),
              Status::Code::kInvalidArgument, "protected layer 0 is not a MAC layer");
  ExpectError(
      service_->SetAIoTMode(Mode(pb::MODE_TRAINING, pb::TMR_PARTIAL, {macs[1], macs[1]})).status(),
      Status::Code::kInvalidArgument, "listed twice");
  ExpectError(
      service_->SetAIoTMode(Mode(pb::MODE_TRAINING, pb::TMR_LAYER_WISE, {macs[1]})).status(),
      Status::Code::kInvalidArgument, "only for TMR partial");
  pb::SetAIoTModeRequest bad = Mode(pb::MODE_INFERENCE);
  bad.set_tmr(static_cast<pb::TmrModeProto>(9));
  ExpectError(service_->SetAIoTMode(bad).status(), Status::Code::kInvalidArgument,
              "unknown TMR mode 9");
  // Rejected requests changed nothing: mode, TMR and protection set (the redeploy of the
  // running model changes nothing and reports them).
  EXPECT_EQ(service_->mode(), pb::MODE_TRAINING);
  auto state = service_->DeployModel(Whole(Model()));
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  EXPECT_EQ(state->tmr(), pb::TMR_PARTIAL);
  EXPECT_EQ(
      std::vector<uint32_t>(state->protected_layers().begin(), state->protected_layers().end()),
      (std::vector<uint32_t>{macs[0], macs[3]}));
}

// A new model on which the protection set is not all MAC layers: the device falls back to TMR
// none (saying so in the Ack) and runs the model, even when the mode cannot be saved (the
// model was: an error then would leave it running under the stale set); a restart has TMR none.
TEST_F(DeviceServiceTest, AModelThatBreaksTheProtectionSetFallsBackToTmrNone) {
  Deploy();
  NetworkSpec spec = DefaultNetworkSpec("squeezenet").value();
  pb::QuantizedModel other = accel::MakeRandomQuantizedModel(BuildNetwork(spec).value(), 2).value();
  other.set_model_version(2);
  const std::vector<uint32_t> theirs = MacLayerIds(other.graph());
  uint32_t only_ours = 0;
  for (uint32_t id : MacLayerIds(Model().graph())) {
    if (std::find(theirs.begin(), theirs.end(), id) == theirs.end()) only_ours = id;
  }
  ASSERT_NE(only_ours, 0u) << "every ResNet18 MAC layer id is one of SqueezeNet's too";
  ASSERT_TRUE(service_->SetAIoTMode(Mode(pb::MODE_INFERENCE, pb::TMR_PARTIAL, {only_ours})).ok());
  // The mode file cannot be replaced now: a directory stands where it goes.
  const std::string mode_file = options_.state_dir + "/mode.pb";
  ASSERT_TRUE(std::filesystem::remove(mode_file));
  std::filesystem::create_directories(mode_file + "/blocked");
  auto ack = service_->DeployModel(Whole(other));
  ASSERT_TRUE(ack.ok()) << ack.status().ToString();
  EXPECT_NE(ack->detail().find("TMR is now none"), std::string::npos) << ack->detail();
  EXPECT_EQ(ack->tmr(), pb::TMR_NONE);
  EXPECT_EQ(ack->protected_layers_size(), 0);
  EXPECT_EQ(ack->mode(), pb::MODE_INFERENCE);
  EXPECT_TRUE(service_->GetData(Request(pb::MODE_INFERENCE, {0, 1})).ok());
  auto restarted = MakeService();
  EXPECT_EQ(restarted->model_version(), 2u);
  auto after = restarted->DeployModel(Whole(other));  // already deployed: reports the state
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->tmr(), pb::TMR_NONE);
}

TEST_F(DeviceServiceTest, DeployWholeModelPersistsAndRedeployIsANoOp) {
  auto ack = service_->DeployModel(Whole(Model()));
  ASSERT_TRUE(ack.ok()) << ack.status().ToString();
  EXPECT_EQ(ack->model_version(), 1u);
  EXPECT_NE(ack->detail().find("deployed model version 1"), std::string::npos) << ack->detail();
  EXPECT_TRUE(std::filesystem::exists(options_.state_dir + "/model.pb"));
  const auto saved_at = std::filesystem::last_write_time(options_.state_dir + "/model.pb");

  ack = service_->DeployModel(Whole(Model()));
  ASSERT_TRUE(ack.ok()) << ack.status().ToString();
  EXPECT_NE(ack->detail().find("already deployed; nothing changed"), std::string::npos)
      << ack->detail();
  EXPECT_EQ(std::filesystem::last_write_time(options_.state_dir + "/model.pb"), saved_at);
  EXPECT_EQ(ack->requests_handled(), 2u);
}

TEST_F(DeviceServiceTest, BadModelsAreRejectedNamingTheProblem) {
  Deploy();
  pb::QuantizedModel corrupt = Model();
  corrupt.set_model_version(2);
  const uint32_t node = corrupt.layers(2).node_id();
  corrupt.mutable_layers(2)->mutable_weights()->pop_back();
  auto ack = service_->DeployModel(Whole(corrupt));
  ExpectError(ack.status(), Status::Code::kInvalidArgument,
              "layer " + std::to_string(node) + " '" + corrupt.graph().nodes(node).name() + "'");
  EXPECT_NE(ack.status().message().find("weights"), std::string::npos);

  pb::QuantizedModel unversioned = Model();
  unversioned.set_model_version(0);
  ExpectError(service_->DeployModel(Whole(unversioned)).status(), Status::Code::kInvalidArgument,
              "model_version must be >= 1");

  NetworkSpec rgb = DefaultNetworkSpec("resnet18").value();
  rgb.width = 0.125;
  rgb.input_chw = {3, 32, 32};
  pb::QuantizedModel cifar = accel::MakeRandomQuantizedModel(BuildNetwork(rgb).value(), 1).value();
  cifar.set_model_version(3);
  ExpectError(service_->DeployModel(Whole(cifar)).status(), Status::Code::kInvalidArgument,
              "expects images of 3x32x32");

  NetworkSpec five = DefaultNetworkSpec("resnet18").value();
  five.width = 0.125;
  five.num_classes = 5;  // Fashion-MNIST has ten
  pb::QuantizedModel few = accel::MakeRandomQuantizedModel(BuildNetwork(five).value(), 1).value();
  few.set_model_version(4);
  ExpectError(service_->DeployModel(Whole(few)).status(), Status::Code::kInvalidArgument,
              "it has 5 classes, the device's data set");

  ExpectError(service_->DeployModel(pb::DeployModelRequest()).status(),
              Status::Code::kInvalidArgument, "neither a model nor a delta");
  // None of them replaced the model deployed first, in memory or on disk.
  EXPECT_EQ(service_->model_version(), 1u);
  EXPECT_EQ(MakeService()->model_version(), 1u);

  DeviceServiceOptions small = options_;
  small.state_dir.clear();
  small.max_model_bytes = 1024;
  auto limited = DeviceService::Create(small, TrainData(), TestData()).value();
  ExpectError(limited->DeployModel(Whole(Model())).status(), Status::Code::kInvalidArgument,
              "limits.max_model_bytes");
}

TEST_F(DeviceServiceTest, WeightDeltaAppliesOnlyToItsBaseAndChecksTheCrc) {
  const pb::QuantizedModel v2 = testing::Retrained(Model(), 2);
  pb::DeployModelRequest delta;
  *delta.mutable_delta() = MakeWeightDelta(Model(), v2).value();
  ExpectError(service_->DeployModel(delta).status(), Status::Code::kInvalidArgument,
              "no model is deployed");

  Deploy();
  pb::DeployModelRequest wrong_base = delta;
  wrong_base.mutable_delta()->set_base_version(7);
  ExpectError(service_->DeployModel(wrong_base).status(), Status::Code::kInvalidArgument,
              "the device holds version 1");
  pb::DeployModelRequest bad_crc = delta;
  bad_crc.mutable_delta()->set_weights_crc32(delta.delta().weights_crc32() ^ 1);
  ExpectError(service_->DeployModel(bad_crc).status(), Status::Code::kCorruption, "CRC-32");
  EXPECT_EQ(service_->model_version(), 1u);

  auto ack = service_->DeployModel(delta);
  ASSERT_TRUE(ack.ok()) << ack.status().ToString();
  EXPECT_EQ(ack->model_version(), 2u);
  EXPECT_NE(ack->detail().find("applied weight delta 1 -> 2"), std::string::npos);
  ASSERT_NE(service_->deployed_model(), nullptr);
  EXPECT_EQ(service_->deployed_model()->SerializeAsString(), v2.SerializeAsString());
  // The same delta again (a retry after a lost reply) is a no-op, not a version mismatch.
  ack = service_->DeployModel(delta);
  ASSERT_TRUE(ack.ok()) << ack.status().ToString();
  EXPECT_NE(ack->detail().find("nothing changed"), std::string::npos) << ack->detail();
}

// A delta's result is built before it is saved: one the simulator refuses is refused naming the
// layer, and never reaches the state a restart reads. Deltas that apply are saved: a restart
// runs the last one.
TEST_F(DeviceServiceTest, ADeltaToAModelTheDeviceCannotRunIsRefusedAndNotSaved) {
  Deploy();
  const pb::QuantizedModel v2 = testing::Retrained(Model(), 2);
  pb::DeployModelRequest to_v2;
  *to_v2.mutable_delta() = MakeWeightDelta(Model(), v2).value();
  ASSERT_TRUE(service_->DeployModel(to_v2).ok());

  pb::QuantizedModel v3 = testing::Retrained(v2, 3);
  v3.mutable_layers(0)->set_bias(0, 2147483000);  // could overflow the int32 accumulator
  pb::DeployModelRequest to_v3;
  *to_v3.mutable_delta() = MakeWeightDelta(v2, v3).value();
  ExpectError(service_->DeployModel(to_v3).status(), Status::Code::kInvalidArgument,
              "model version 3 rejected");
  EXPECT_EQ(service_->model_version(), 2u);

  service_.reset();
  service_ = MakeService();
  EXPECT_EQ(service_->model_version(), 2u);
  ASSERT_NE(service_->deployed_model(), nullptr);
  EXPECT_EQ(service_->deployed_model()->SerializeAsString(), v2.SerializeAsString());
}

// Through Handle (the transport's path), a delta's Ack is held until its journal record is on
// disk (before_send), and the getData behind it runs on the new model meanwhile.
class DeferredSaveTest : public DeviceServiceTest {
 protected:
  static Message Req(pb::MessageKind kind, const std::string& payload) {
    Message m;
    m.kind = kind;
    m.payload = payload;
    return m;
  }
  // Deploys v1 whole, then hands Handle a delta to v2 and a getData: both replies hold a
  // before_send; the getData's ran on v2.
  void DeltaThenGetData(Message* ack, Message* data) {
    Deploy();
    pb::DeployModelRequest delta;
    *delta.mutable_delta() = MakeWeightDelta(Model(), testing::Retrained(Model(), 2)).value();
    auto a = service_->Handle(Req(pb::MSG_DEPLOY_MODEL, delta.SerializeAsString()));
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    auto d = service_->Handle(
        Req(pb::MSG_GET_DATA, Request(pb::MODE_INFERENCE, {0, 1}).SerializeAsString()));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    ASSERT_TRUE(a->before_send && d->before_send);
    pb::DataReply reply;
    ASSERT_TRUE(reply.ParseFromString(d->payload));
    EXPECT_EQ(reply.model_version(), 2u);
    *ack = std::move(a).value();
    *data = std::move(d).value();
  }
};

TEST_F(DeferredSaveTest, TheAckWaitsForTheSaveAndTheGetDataBehindItRunsOnTheNewModel) {
  Message ack, data;
  ASSERT_NO_FATAL_FAILURE(DeltaThenGetData(&ack, &data));
  EXPECT_TRUE(ack.before_send().ok());
  EXPECT_TRUE(data.before_send().ok());
  EXPECT_TRUE(ack.before_send().ok());  // idempotent
  service_ = MakeService();
  EXPECT_EQ(service_->model_version(), 2u);
  // Nothing pending afterwards: a setAIoTMode's reply goes out at once.
  auto mode =
      service_->Handle(Req(pb::MSG_SET_AIOT_MODE, Mode(pb::MODE_TRAINING).SerializeAsString()));
  ASSERT_TRUE(mode.ok()) << mode.status().ToString();
  EXPECT_FALSE(mode->before_send);
}

// When neither the journal nor the whole model can be written, the Ack becomes the error, the
// device goes back to the model it acknowledged before (the one a restart loads), and the
// getData that ran on the unsaved model answers with a retryable error.
TEST_F(DeferredSaveTest, ASaveThatFailsIsNotAcknowledgedAndTheDeviceGoesBack) {
  Deploy();
  // The journal's appends fail (no space), and so does the whole model's temporary file.
  const std::string journal = options_.state_dir + "/model.journal";
  const std::string tmp = options_.state_dir + "/model.pb.tmp." + std::to_string(::getpid());
  std::filesystem::create_symlink("/dev/full", journal);
  std::filesystem::create_directory(tmp);
  Message ack, data;
  ASSERT_NO_FATAL_FAILURE(DeltaThenGetData(&ack, &data));
  const Status acked = ack.before_send();
  ExpectError(acked, Status::Code::kIoError,
              "model version 2 could not be saved; the device runs version 1 again");
  EXPECT_NE(acked.message().find("No space left on device"), std::string::npos) << acked.ToString();
  ExpectError(data.before_send(), Status::Code::kUnavailable,
              "this reply came from model version 2, which was not saved");
  EXPECT_EQ(service_->model_version(), 1u);
  auto again = service_->GetData(Request(pb::MODE_INFERENCE, {0, 1}));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->model_version(), 1u);

  std::filesystem::remove(journal);
  std::filesystem::remove(tmp);
  service_ = MakeService();
  EXPECT_EQ(service_->model_version(), 1u);
}

TEST_F(DeviceServiceTest, GetDataErrorsNameTheProblem) {
  ExpectError(service_->GetData(Request(pb::MODE_INFERENCE, {0})).status(), Status::Code::kNotFound,
              "no model deployed");
  Deploy();
  ExpectError(service_->GetData(Request(pb::MODE_TRAINING, {0})).status(),
              Status::Code::kInvalidArgument, "the device is in inference mode");
  ExpectError(service_->GetData(Request(pb::MODE_INFERENCE, {})).status(),
              Status::Code::kInvalidArgument, "names no samples");
  ExpectError(service_->GetData(Request(pb::MODE_INFERENCE, {1, 5000})).status(),
              Status::Code::kInvalidArgument, "sample id 5000 is out of range");
  ExpectError(service_->GetData(Request(pb::MODE_INFERENCE, Range(0, 65))).status(),
              Status::Code::kInvalidArgument, "at most 64");
  ASSERT_TRUE(service_->SetAIoTMode(Mode(pb::MODE_TRAINING)).ok());
  pb::GetDataRequest bad_layers = Request(pb::MODE_TRAINING, {0});
  bad_layers.set_policy(pb::ENCODE_OFFLINE);
  bad_layers.add_increment_layers(0);
  ExpectError(service_->GetData(bad_layers).status(), Status::Code::kInvalidArgument,
              "increment layer 0 is not a MAC layer");
  pb::GetDataRequest bad_threshold = Request(pb::MODE_TRAINING, {0});
  bad_threshold.set_policy(pb::ENCODE_ADAPTIVE);
  bad_threshold.set_similarity_threshold(1.5);
  ExpectError(service_->GetData(bad_threshold).status(), Status::Code::kInvalidArgument,
              "similarity_threshold");
}

TEST_F(DeviceServiceTest, InferenceEqualsTheLocalAcceleratorAndReportsFaults) {
  Deploy();
  const std::vector<uint64_t> ids = {3, 1, 4, 1, 5, 9, 2, 6};
  pb::GetDataRequest req = Request(pb::MODE_INFERENCE, ids, 17);
  req.set_layer_similarity(true);
  auto reply = service_->GetData(req);
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();

  auto local = Local()->Infer(Batch(ids), options_.faults, {}, 17, false).value();
  EXPECT_EQ(reply->logits(), std::string(local.logits.data.begin(), local.logits.data.end()));
  EXPECT_EQ(reply->logits_frac(), local.logits.frac);
  EXPECT_EQ(reply->fp_cycles(), local.stats.total_cycles);
  EXPECT_EQ(reply->num_classes(), 10u);
  ASSERT_EQ(reply->labels().size(), ids.size());
  EXPECT_EQ(static_cast<uint8_t>(reply->labels()[2]), TestData().labels[4]);
  ASSERT_EQ(reply->reports_size(), static_cast<int>(local.stats.faults.size()));
  uint64_t flips = 0;
  bool some_layer_hit = false;
  for (const pb::LayerReport& r : reply->reports()) {
    ASSERT_EQ(r.flips_size(), accel::kNumFaultSites);
    for (uint64_t f : r.flips()) flips += f;
    EXPECT_GE(r.similarity_to_clean(), 0.0);
    EXPECT_LE(r.similarity_to_clean(), 1.0);
    some_layer_hit |= r.similarity_to_clean() < 1.0;
  }
  EXPECT_EQ(flips, local.stats.total_flips);
  EXPECT_GT(flips, 0u);
  EXPECT_TRUE(some_layer_hit);
  EXPECT_EQ(reply->model_version(), 1u);
  EXPECT_EQ(reply->clock_mhz(), options_.accelerator.clock_mhz);
}

// Decodes every layer of a training reply against the local LW-TMR reference and checks it
// against the local faulty chain: the device's encodings are lossless and chosen by the policy.
TEST_F(DeviceServiceTest, TrainingRepliesDecodeToTheFaultyOutputsUnderEachPolicy) {
  Deploy();
  const std::vector<uint32_t> macs = MacLayerIds(Model().graph());
  ASSERT_TRUE(service_->SetAIoTMode(Mode(pb::MODE_TRAINING, pb::TMR_PARTIAL, {macs[0]})).ok());
  const std::vector<uint64_t> ids = Range(20, 8);
  accel::TmrConfig tmr{accel::TmrMode::kPartial, {macs[0]}};
  auto local = Local()->RunTraining(Batch(ids), options_.faults, tmr, 9).value();

  for (pb::LayerEncodingPolicy policy : {pb::ENCODE_RAW, pb::ENCODE_OFFLINE, pb::ENCODE_ADAPTIVE}) {
    SCOPED_TRACE(pb::LayerEncodingPolicy_Name(policy));
    pb::GetDataRequest req = Request(pb::MODE_TRAINING, ids, 9);
    req.set_policy(policy);
    req.set_similarity_threshold(0.5);
    if (policy == pb::ENCODE_OFFLINE) req.add_increment_layers(macs[1]);
    auto reply = service_->GetData(req);
    ASSERT_TRUE(reply.ok()) << reply.status().ToString();
    EXPECT_EQ(reply->inputs(), std::string(pixels_.begin(), pixels_.end()));
    EXPECT_EQ(reply->logits(), std::string(local.logits.data.begin(), local.logits.data.end()));
    EXPECT_EQ(reply->fp_cycles(), local.faulty_stats.total_cycles);
    EXPECT_EQ(reply->tmr_cycles(),
              policy == pb::ENCODE_RAW ? 0 : local.reference_stats.total_cycles);
    ASSERT_EQ(reply->layers_size(), static_cast<int>(macs.size()));
    for (int l = 0; l < reply->layers_size(); ++l) {
      const pb::EncodedLayer& layer = reply->layers(l);
      const auto& y = local.faulty[l].data;
      const auto& v = local.reference[l].data;
      ASSERT_EQ(layer.node_id(), macs[l]);
      ASSERT_EQ(layer.elements(), y.size());
      const Encoding enc = static_cast<Encoding>(layer.encoding());
      const double sim = Similarity(y.data(), v.data(), y.size());
      if (policy == pb::ENCODE_RAW) {
        EXPECT_EQ(enc, Encoding::kRaw);
      } else if (policy == pb::ENCODE_OFFLINE) {
        EXPECT_EQ(IsIncrement(enc), macs[l] == macs[1]) << "layer " << macs[l];
        EXPECT_DOUBLE_EQ(layer.similarity(), sim);
      } else {
        EXPECT_DOUBLE_EQ(layer.similarity(), sim);
        if (sim < 0.5) {
          EXPECT_EQ(enc, Encoding::kRaw) << "layer " << macs[l];
        }
        // Smallest-wins: never larger than the raw form.
        EXPECT_LE(layer.data().size(), y.size());
      }
      const EncodedLayerView encoded = EncodedLayerOf(layer);
      std::vector<int8_t> out(y.size());
      ASSERT_TRUE(Decode(encoded, v.data(), out.data(), out.size()).ok()) << "layer " << macs[l];
      EXPECT_EQ(out, y) << "layer " << macs[l];
    }
  }
}

// The layer-local reference end to end: the device runs it when asked and says so, and the
// server's sequential reconstruction gives the device's faulty chain bit for bit, with far fewer
// bytes than the chain reference. Output flips only, so that no two replicas spoil the same bit
// and every vote is exact (checked; tests/accel_sim/local_reference_test.cc covers all sites).
TEST_F(DeviceServiceTest, LocalReferenceRepliesReconstructToTheFaultyChain) {
  options_.faults.ber = 1e-4;
  options_.faults.sites = {false, false, false, true};
  service_ = MakeService();
  Deploy();
  const std::vector<uint32_t> macs = MacLayerIds(Model().graph());
  ASSERT_TRUE(service_->SetAIoTMode(Mode(pb::MODE_TRAINING, pb::TMR_PARTIAL, {macs[0]})).ok());
  const std::vector<uint64_t> ids = Range(40, 8);
  accel::TmrConfig tmr{accel::TmrMode::kPartial, {macs[0]}};
  auto local =
      Local()->RunTraining(Batch(ids), options_.faults, tmr, 11, accel::TrainingReference::kLocal);
  ASSERT_TRUE(local.ok()) << local.status().ToString();
  // The premise: every local vote equals the layer's clean function of the faulty chain's input.
  auto server_model = Local();
  std::vector<std::vector<int8_t>> own(macs.size());
  accel::MacOutputHook replay = [&](size_t m, int8_t* out, int64_t n) {
    own[m].assign(out, out + n);
    std::copy(local->faulty[m].data.begin(), local->faulty[m].data.end(), out);
    return Status::Ok();
  };
  ASSERT_TRUE(server_model->InferWithOverrides(Batch(ids), replay, false).ok());
  int own_faults = 0;
  for (size_t m = 0; m < macs.size(); ++m) {
    ASSERT_EQ(local->reference[m].data, own[m]) << "vote not exact at layer " << macs[m];
    own_faults += own[m] != local->faulty[m].data;
  }
  ASSERT_GT(own_faults, 0);

  size_t bytes[2] = {0, 0};
  for (pb::IncrementReference reference : {pb::REFERENCE_CHAIN, pb::REFERENCE_LOCAL}) {
    SCOPED_TRACE(pb::IncrementReference_Name(reference));
    pb::GetDataRequest req = Request(pb::MODE_TRAINING, ids, 11);
    req.set_policy(pb::ENCODE_ADAPTIVE);
    req.set_similarity_threshold(0.0);  // every layer may go as an increment
    req.set_reference(reference);
    auto reply = service_->GetData(req);
    ASSERT_TRUE(reply.ok()) << reply.status().ToString();
    EXPECT_EQ(reply->reference(), reference);
    for (const pb::EncodedLayer& l : reply->layers()) bytes[reference] += l.data().size();
    auto recon = ReconstructLayers(*reply, *server_model);
    ASSERT_TRUE(recon.ok()) << recon.status().ToString();
    EXPECT_GT(recon->increment_layers, 0);
    if (reference == pb::REFERENCE_LOCAL) {
      for (size_t m = 0; m < macs.size(); ++m) {
        EXPECT_EQ(reply->layers(static_cast<int>(m)).similarity(),
                  Similarity(local->faulty[m].data.data(), local->reference[m].data.data(),
                             local->faulty[m].data.size()));
        EXPECT_EQ(recon->layers[m].data, local->faulty[m].data) << "layer " << macs[m];
      }
    }
  }
  EXPECT_LT(2 * bytes[pb::REFERENCE_LOCAL], bytes[pb::REFERENCE_CHAIN]);

  // A reply whose reference is unknown is refused, not decoded against a guess.
  pb::GetDataRequest req = Request(pb::MODE_TRAINING, ids, 11);
  req.set_policy(pb::ENCODE_ADAPTIVE);
  auto reply = service_->GetData(req);
  ASSERT_TRUE(reply.ok());
  reply->set_reference(static_cast<pb::IncrementReference>(7));
  EXPECT_FALSE(ReconstructLayers(*reply, *server_model).ok());
  req.set_reference(static_cast<pb::IncrementReference>(7));
  ExpectError(service_->GetData(req).status(), Status::Code::kInvalidArgument,
              "unknown increment reference");
}

// The exact reference through the real device code (LayerEncoder): with faults at every site
// the device patches where its replicas disagreed, says how much, adds each layer's checksum
// when asked, and the server's rebuild equals the device's faulty chain in every layer.
TEST_F(DeviceServiceTest, ExactReferenceRepliesRebuildTheFaultyChainAndPassTheirChecksums) {
  options_.faults.ber = 5e-5;
  service_ = MakeService();
  Deploy();
  ASSERT_TRUE(service_->SetAIoTMode(Mode(pb::MODE_TRAINING)).ok());
  const std::vector<uint64_t> ids = Range(8, 8);
  auto local = Local()->RunTraining(Batch(ids), options_.faults, accel::TmrConfig{}, 13,
                                    accel::TrainingReference::kLocalExact);
  ASSERT_TRUE(local.ok()) << local.status().ToString();
  pb::GetDataRequest req = Request(pb::MODE_TRAINING, ids, 13);
  req.set_policy(pb::ENCODE_ADAPTIVE);
  req.set_reference(pb::REFERENCE_LOCAL_EXACT);
  req.set_verify_rebuild(true);
  auto reply = service_->GetData(req);
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->reference(), pb::REFERENCE_LOCAL_EXACT);
  EXPECT_GT(reply->patched_elements(), 0u);
  EXPECT_GT(reply->disagreeing_layers(), 0u);
  uint64_t patched = 0;
  for (const pb::EncodedLayer& l : reply->layers()) {
    EXPECT_TRUE(l.has_output_crc32());
    patched += l.patched();
  }
  EXPECT_EQ(patched, reply->patched_elements());
  auto server_model = Local();
  auto recon = ReconstructLayers(*reply, *server_model);
  ASSERT_TRUE(recon.ok()) << recon.status().ToString();
  EXPECT_EQ(recon->mismatched_layers, 0);
  for (size_t m = 0; m < local->faulty.size(); ++m) {
    EXPECT_EQ(recon->layers[m].data, local->faulty[m].data) << "layer " << m;
  }
  // A checksum that does not match the rebuild is counted (as a rebuild gone wrong would be).
  reply->mutable_layers(2)->set_output_crc32(reply->layers(2).output_crc32() ^ 1);
  auto broken = ReconstructLayers(*reply, *server_model);
  ASSERT_TRUE(broken.ok()) << broken.status().ToString();
  EXPECT_EQ(broken->mismatched_layers, 1);
}

TEST_F(DeviceServiceTest, ARestartedDeviceKeepsItsModelAndMode) {
  Deploy();
  const std::vector<uint32_t> macs = MacLayerIds(Model().graph());
  ASSERT_TRUE(service_->SetAIoTMode(Mode(pb::MODE_TRAINING, pb::TMR_PARTIAL, {macs[2]})).ok());
  auto before = service_->GetData(Request(pb::MODE_TRAINING, {1, 2}));
  ASSERT_TRUE(before.ok()) << before.status().ToString();

  service_ = MakeService();
  EXPECT_EQ(service_->model_version(), 1u);
  EXPECT_EQ(service_->mode(), pb::MODE_TRAINING);
  auto after = service_->GetData(Request(pb::MODE_TRAINING, {1, 2}));
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  // Same request, same state: the same reply (wall times aside).
  EXPECT_EQ(after->logits(), before->logits());
  ASSERT_EQ(after->layers_size(), before->layers_size());
  for (int l = 0; l < after->layers_size(); ++l) {
    EXPECT_EQ(after->layers(l).data(), before->layers(l).data());
  }
  // A damaged saved model is ignored with a log line; the device starts empty.
  testing::WriteFile(options_.state_dir + "/model.pb", "\xff\xff garbage");
  service_ = MakeService();
  EXPECT_EQ(service_->model_version(), 0u);
}

TEST_F(DeviceServiceTest, HandleParsesDispatchesAndWrapsReplies) {
  Message req;
  req.kind = pb::MSG_DEPLOY_MODEL;
  req.payload = Whole(Model()).SerializeAsString();
  auto reply = service_->Handle(req);
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->kind, pb::MSG_ACK);
  pb::Ack ack;
  ASSERT_TRUE(ack.ParseFromString(reply->payload));
  EXPECT_EQ(ack.model_version(), 1u);
  EXPECT_EQ(ack.request_kind(), pb::MSG_DEPLOY_MODEL);

  req.kind = pb::MSG_GET_DATA;
  req.payload = Request(pb::MODE_INFERENCE, {0, 1}).SerializeAsString();
  reply = service_->Handle(req);
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->kind, pb::MSG_DATA);

  req.payload = std::string("\xff\xff\xff\x07garbage", 11);
  ExpectError(service_->Handle(req).status(), Status::Code::kInvalidArgument,
              "is not a valid GetDataRequest");
  req.kind = pb::MSG_ACK;
  ExpectError(service_->Handle(req).status(), Status::Code::kInvalidArgument,
              "not served by this device");
  // sendAck / sendData only wrap.
  EXPECT_EQ(sendAck(ack).kind, pb::MSG_ACK);
  EXPECT_EQ(sendAck(ack).payload, ack.SerializeAsString());
  EXPECT_EQ(sendData(pb::DataReply()).kind, pb::MSG_DATA);
}

}  // namespace
}  // namespace r2f
