// The daemons end to end: a real mosquitto, a real r2f_client process and the Table-I server
// API in-process. Remote results must equal a local run of the same accelerator with the same
// seed and tag; every Table-I call goes over the broker; bad input on the wire gets an error
// reply (or a logged rejection) and the daemon keeps serving.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <thread>

#include <sys/wait.h>

#include "accel_sim/evaluate.h"
#include "common/codec/increment_codec.h"
#include "common/ir/graph.h"
#include "common/net/chunker.h"
#include "common/net/transport_topics.h"
#include "server/api/remote_eval.h"
#include "server/retrain/reconstruct.h"
#include "tests/support/daemon_fixture.h"

namespace r2f {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::kDevice;

std::string AsString(const std::vector<int8_t>& v) { return std::string(v.begin(), v.end()); }

std::unique_ptr<accel::Accelerator> Local(const pb::QuantizedModel& model) {
  return accel::Accelerator::Create(model, accel::AcceleratorConfig{}).value();
}

pb::GetDataRequest DataRequest(pb::AIoTMode mode, uint64_t first, uint64_t count, uint64_t tag) {
  pb::GetDataRequest r;
  r.set_mode(mode);
  r.set_split(pb::SPLIT_TEST);
  r.set_execution_tag(tag);
  for (uint64_t id = first; id < first + count; ++id) r.add_sample_ids(id);
  return r;
}

class RemoteInferenceTest : public testing::DaemonTest,
                            public ::testing::WithParamInterface<double> {};

// 512 test images evaluated remotely through `r2f_server eval`'s code path give the same
// predictions (and fault counts) as EvaluateOnDevice on a local accelerator with the device's
// seed and the same execution tag, batched differently.
TEST_P(RemoteInferenceTest, PredictionsEqualLocalEvaluation) {
  const double ber = GetParam();
  ASSERT_NO_FATAL_FAILURE(StartDeviceAndServer(ber));
  const pb::QuantizedModel model = testing::TestModel();

  EvalSettings settings;
  settings.images = 512;
  settings.batch_size = 128;
  settings.execution_tag = 5;
  auto remote = RunRemoteEval(*server_, kDevice, model, settings);
  ASSERT_TRUE(remote.ok()) << remote.status().ToString();

  const Dataset test = LoadDataset(testing::TestSplit("test")).value();
  accel::DeviceEvalOptions local_opts;
  local_opts.batch_size = 64;
  local_opts.limit = 512;
  local_opts.execution_tag = 5;
  local_opts.faults.ber = ber;
  local_opts.faults.seed = device_options_.seed;
  auto local = accel::EvaluateOnDevice(*Local(model), test, local_opts);
  ASSERT_TRUE(local.ok()) << local.status().ToString();

  ASSERT_EQ(remote->predictions.size(), 512u);
  EXPECT_EQ(remote->predictions, local->predictions);
  // Stronger than predictions: every logit, from one local batch of all 512 images.
  accel::ImageBatch all{test.images.data(), 512, {}};
  for (uint64_t i = 0; i < 512; ++i) all.sample_ids.push_back(i);
  auto logits = Local(model)->Infer(all, local_opts.faults, {}, 5, false).value().logits;
  EXPECT_EQ(remote->logits, AsString(logits.data));
  EXPECT_EQ(remote->accuracy.top1_hits(), local->accuracy.top1_hits());
  uint64_t remote_flips = 0;
  for (uint64_t f : remote->flips) remote_flips += f;
  EXPECT_EQ(remote_flips, local->total_flips);

  if (ber > 0) {
    // The faults are real: bits flipped, and (usually) some predictions moved.
    EXPECT_GT(remote_flips, 0u);
    local_opts.faults.ber = 0;
    auto clean = accel::EvaluateOnDevice(*Local(model), test, local_opts).value();
    int changed = 0;
    for (size_t i = 0; i < clean.predictions.size(); ++i) {
      changed += clean.predictions[i] != remote->predictions[i];
    }
    std::cout << "BER " << ber << ": " << remote_flips << " flips, " << changed
              << " of 512 predictions differ from clean\n";
  } else {
    EXPECT_EQ(remote_flips, 0u);
  }
  // The run's traffic was accounted: the model went down, the logits came up.
  EXPECT_GT(remote->downlink_bytes, static_cast<uint64_t>(model.ByteSizeLong()));
  EXPECT_GT(remote->uplink_bytes, 512u * 10u);
  EXPECT_GT(remote->modelled_downlink_s, remote->downlink_bytes * 8 / 21.1e6);
  EXPECT_GT(remote->cycles, 0);
  const std::string report = FormatEvalReport(*remote);
  EXPECT_NE(report.find("top-1"), std::string::npos) << report;
  std::cout << report;
}

INSTANTIATE_TEST_SUITE_P(Ber, RemoteInferenceTest, ::testing::Values(0.0, 1e-4));

class TableIApiTest : public testing::DaemonTest {};

// setAIoTMode (partial TMR), deployModel (whole, unchanged, as a delta) and getData (inference,
// training with each policy) over the broker. Training layers are decoded against a locally
// recomputed reference, as the retraining server does.
TEST_F(TableIApiTest, EveryCallOverTheBroker) {
  ASSERT_NO_FATAL_FAILURE(StartDeviceAndServer(1e-4));
  const pb::QuantizedModel v1 = testing::TestModel();
  const pb::QuantizedModel v2 = testing::Retrained(v1, 2);
  const std::vector<uint32_t> macs = MacLayerIds(v1.graph());

  ASSERT_TRUE(server_->setAIoTMode(kDevice, pb::MODE_INFERENCE, {}).ok());
  EXPECT_EQ(server_->LastAck(kDevice)->model_version(), 0u);

  auto ack = server_->deployModel(kDevice, v1);
  ASSERT_TRUE(ack.ok()) << ack.status().ToString();
  EXPECT_EQ(ack->model_version(), 1u);
  ack = server_->deployModel(kDevice, v1);
  ASSERT_TRUE(ack.ok()) << ack.status().ToString();
  EXPECT_NE(ack->detail().find("nothing changed"), std::string::npos) << ack->detail();
  std::vector<CallRecord> records = server_->TakeRecords();
  ASSERT_EQ(records.size(), 3u);
  const uint64_t whole_bytes = records[1].downlink_bytes;
  {
    // The recorded bytes are those of the envelopes on the wire, to a few bytes per chunk.
    Message sent;
    sent.kind = pb::MSG_DEPLOY_MODEL;
    sent.job_id = "test-job";
    sent.request_id = records[1].request_id;
    sent.device_id = kDevice;
    pb::DeployModelRequest whole;
    *whole.mutable_model() = v1;
    sent.payload = whole.SerializeAsString();
    uint64_t wire = 0, chunks = 0;
    const std::vector<pb::Envelope> envelopes = SplitIntoChunks(sent, kDefaultChunkBytes).value();
    for (const pb::Envelope& e : envelopes) {
      wire += e.ByteSizeLong();
      ++chunks;
    }
    EXPECT_GE(whole_bytes, wire);
    EXPECT_LE(whole_bytes, wire + 16 * chunks);
  }

  ack = server_->deployModel(kDevice, v2, /*as_delta_if_possible=*/true);
  ASSERT_TRUE(ack.ok()) << ack.status().ToString();
  EXPECT_EQ(ack->model_version(), 2u);
  EXPECT_NE(ack->detail().find("applied weight delta 1 -> 2"), std::string::npos) << ack->detail();
  records = server_->TakeRecords();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_LT(records[0].downlink_bytes * 4, whole_bytes) << "the delta should be much smaller";
  EXPECT_GT(records[0].modelled_downlink_s, 0.0);
  EXPECT_GT(records[0].measured_s, 0.0);

  accel::TmrConfig partial{accel::TmrMode::kPartial, {macs[1], macs[4]}};
  ASSERT_TRUE(server_->setAIoTMode(kDevice, pb::MODE_INFERENCE, partial).ok());
  EXPECT_EQ(server_->LastAck(kDevice)->tmr(), pb::TMR_PARTIAL);
  EXPECT_EQ(server_->LastAck(kDevice)->protected_layers_size(), 2);

  // Inference with partial TMR equals the local accelerator running v2 the same way.
  const Dataset test = LoadDataset(testing::TestSplit("test")).value();
  const uint64_t first = 40, count = 16;
  const accel::ImageBatch images{test.image(first), static_cast<int>(count),
                                 std::vector<uint64_t>()};
  accel::ImageBatch ids_batch = images;
  for (uint64_t i = 0; i < count; ++i) ids_batch.sample_ids.push_back(first + i);
  accel::FaultConfig faults;
  faults.ber = device_options_.ber;
  faults.seed = device_options_.seed;
  auto data = server_->getData(kDevice, DataRequest(pb::MODE_INFERENCE, first, count, 8));
  ASSERT_TRUE(data.ok()) << data.status().ToString();
  auto local_v2 = Local(v2);
  auto expected = local_v2->Infer(ids_batch, faults, partial, 8, false).value();
  EXPECT_EQ(data->logits(), AsString(expected.logits.data));
  EXPECT_EQ(data->model_version(), 2u);

  // Training: each policy. The server side recomputes the clean outputs (BER 0) from the
  // inputs it received and adds the increments back.
  ASSERT_TRUE(server_->setAIoTMode(kDevice, pb::MODE_TRAINING, partial).ok());
  auto local_run = local_v2->RunTraining(ids_batch, faults, partial, 9).value();
  for (pb::LayerEncodingPolicy policy : {pb::ENCODE_RAW, pb::ENCODE_OFFLINE, pb::ENCODE_ADAPTIVE}) {
    SCOPED_TRACE(pb::LayerEncodingPolicy_Name(policy));
    pb::GetDataRequest req = DataRequest(pb::MODE_TRAINING, first, count, 9);
    req.set_policy(policy);
    req.set_similarity_threshold(0.6);
    req.set_lz4_raw(policy == pb::ENCODE_RAW);
    if (policy == pb::ENCODE_OFFLINE) {
      for (size_t l = 0; l < macs.size(); l += 2) req.add_increment_layers(macs[l]);
    }
    auto reply = server_->getData(kDevice, req);
    ASSERT_TRUE(reply.ok()) << reply.status().ToString();
    ASSERT_EQ(reply->inputs().size(), count * test.image_bytes());
    ASSERT_EQ(reply->labels().size(), count);
    EXPECT_EQ(reply->logits(), AsString(local_run.logits.data));
    accel::ImageBatch received{reinterpret_cast<const uint8_t*>(reply->inputs().data()),
                               static_cast<int>(count), ids_batch.sample_ids};
    auto clean = local_v2->Infer(received, accel::FaultConfig{}, {}, 0, true).value();
    ASSERT_EQ(reply->layers_size(), static_cast<int>(macs.size()));
    int increments = 0;
    for (int l = 0; l < reply->layers_size(); ++l) {
      const pb::EncodedLayer& layer = reply->layers(l);
      const std::vector<int8_t>& g = clean.layer_outputs[l].data;
      const std::vector<int8_t>& y = local_run.faulty[l].data;
      const std::vector<int8_t>& v = local_run.reference[l].data;
      ASSERT_EQ(layer.elements(), g.size()) << "layer " << layer.node_id();
      const Encoding enc = static_cast<Encoding>(layer.encoding());
      increments += IsIncrement(enc);
      if (policy == pb::ENCODE_RAW) {
        EXPECT_EQ(enc, Encoding::kRawLz4);
      }
      const EncodedLayerView encoded = EncodedLayerOf(layer);
      std::vector<int8_t> out(g.size());
      ASSERT_TRUE(Decode(encoded, g.data(), out.data(), out.size()).ok());
      // Raw layers are the faulty outputs; increments are exact wherever the TMR reference
      // equals the clean recomputation (everywhere, unless TMR itself failed).
      EXPECT_LE(CountDifferences(out.data(), y.data(), y.size()),
                CountDifferences(g.data(), v.data(), v.size()))
          << "layer " << layer.node_id();
    }
    if (policy == pb::ENCODE_OFFLINE) {
      EXPECT_EQ(increments, req.increment_layers_size());
    } else if (policy == pb::ENCODE_ADAPTIVE) {
      EXPECT_GT(increments, 0);
    }
    EXPECT_EQ(reply->tmr_cycles(),
              policy == pb::ENCODE_RAW ? 0 : local_run.reference_stats.total_cycles);
  }
}

// deployModelThenGetData: the getData request goes out behind the deploy's, and the data is
// the new model's. When another server replaced the model in between, the device refuses the
// weight delta and the whole model follows, so the getData request overtakes it and is answered
// by the other model: no data is returned, and a getData asked now gets the new model's.
TEST_F(TableIApiTest, GetDataBehindADeployRunsOnTheDeployedModel) {
  ASSERT_NO_FATAL_FAILURE(StartDeviceAndServer(1e-4));
  const pb::QuantizedModel v1 = testing::TestModel();
  ASSERT_TRUE(server_->setAIoTMode(kDevice, pb::MODE_INFERENCE, {}).ok());
  ASSERT_TRUE(server_->deployModel(kDevice, v1).ok());
  server_->TakeRecords();

  const Dataset test = LoadDataset(testing::TestSplit("test")).value();
  const uint64_t first = 8, count = 16;
  accel::ImageBatch batch{test.image(first), static_cast<int>(count), {}};
  for (uint64_t i = 0; i < count; ++i) batch.sample_ids.push_back(first + i);
  accel::FaultConfig faults;
  faults.ber = device_options_.ber;
  faults.seed = device_options_.seed;
  auto logits_of = [&](const pb::QuantizedModel& m, uint64_t tag) {
    return AsString(Local(m)->Infer(batch, faults, {}, tag, false).value().logits.data);
  };

  const pb::QuantizedModel v2 = testing::Retrained(v1, 2);
  auto both = server_->deployModelThenGetData(kDevice, v2, true,
                                              DataRequest(pb::MODE_INFERENCE, first, count, 3));
  ASSERT_TRUE(both.ok()) << both.status().ToString();
  EXPECT_EQ(both->ack.model_version(), 2u);
  EXPECT_NE(both->ack.detail().find("applied weight delta 1 -> 2"), std::string::npos);
  ASSERT_TRUE(both->data.has_value());
  EXPECT_EQ(both->data->model_version(), 2u);
  EXPECT_EQ(both->data->logits(), logits_of(v2, 3));
  EXPECT_NE(both->data->logits(), logits_of(v1, 3)) << "v1 and v2 must answer differently";
  std::vector<CallRecord> records = server_->TakeRecords();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].kind + records[1].kind, pb::MSG_DEPLOY_MODEL + pb::MSG_GET_DATA);

  {  // Another server deploys a model of its own.
    R2fServerOptions other = ServerOptions();
    other.transport.client_id = "other-server";
    auto second = R2fServer::Connect(other);
    ASSERT_TRUE(second.ok()) << second.status().ToString();
    ASSERT_TRUE((*second)->deployModel(kDevice, testing::Retrained(v1, 7), false).ok());
  }
  const pb::QuantizedModel v3 = testing::Retrained(v1, 3);
  // The device is paused while the delta and the getData request go out, so that both reach it
  // before the whole model that follows the refusal (on a loaded machine the getData request
  // could otherwise leave after it).
  client_->Pause();
  auto pipelined = std::async(std::launch::async, [&] {
    return server_->deployModelThenGetData(kDevice, v3, true,
                                           DataRequest(pb::MODE_INFERENCE, first, count, 4));
  });
  std::this_thread::sleep_for(std::chrono::seconds(1));
  client_->Resume();
  both = pipelined.get();
  ASSERT_TRUE(both.ok()) << both.status().ToString();
  EXPECT_EQ(both->ack.model_version(), 3u);
  EXPECT_FALSE(both->data.has_value()) << "data of version " << both->data->model_version();
  // The refused delta, the whole model, and the getData answered by version 7.
  records = server_->TakeRecords();
  int get_data = 0;
  for (const CallRecord& r : records) get_data += r.kind == pb::MSG_GET_DATA;
  EXPECT_EQ(get_data, 1);
  EXPECT_EQ(records.size(), 3u);
  auto again = server_->getData(kDevice, DataRequest(pb::MODE_INFERENCE, first, count, 4));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->model_version(), 3u);
  EXPECT_EQ(again->logits(), logits_of(v3, 4));
}

// With link.throttle the calls take as long as their bytes need on the link: a 180 KB model on
// a 800 kbit/s downlink (100 kB/s) waits about 1.6 s beyond the 16 KiB burst.
TEST_F(TableIApiTest, ThrottleHoldsCallsToTheLinkRate) {
  ASSERT_NO_FATAL_FAILURE(StartClient({}));
  R2fServerOptions options = ServerOptions();
  options.link = LinkPreset("ieee802154g").value();
  options.throttle = true;
  options.throttle_burst_bytes = 16 * 1024;
  ASSERT_NO_FATAL_FAILURE(ConnectServer(options));
  const pb::QuantizedModel model = testing::TestModel();
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(server_->deployModel(kDevice, model).ok());
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<CallRecord> records = server_->TakeRecords();
  ASSERT_EQ(records.size(), 1u);
  const double expected = (records[0].downlink_bytes - 16.0 * 1024) / (800e3 / 8);
  EXPECT_NEAR(records[0].throttle_s, expected, 0.25) << "downlink " << records[0].downlink_bytes;
  EXPECT_GE(wall, records[0].throttle_s);
  // The link model itself is independent of the throttle: bytes * 8 / rate + latency.
  EXPECT_DOUBLE_EQ(records[0].modelled_downlink_s, records[0].downlink_bytes * 8 / 800e3 + 0.05);
}

TEST_F(TableIApiTest, ApiLevelBadInputGetsClearErrors) {
  ASSERT_NO_FATAL_FAILURE(StartClient({}));
  ASSERT_NO_FATAL_FAILURE(ConnectServer());
  const pb::QuantizedModel v1 = testing::TestModel();

  // getData before any model; then a corrupt model (wrong weight count) names the layer.
  auto no_model = server_->getData(kDevice, DataRequest(pb::MODE_INFERENCE, 0, 4, 0));
  EXPECT_EQ(no_model.status().code(), Status::Code::kNotFound) << no_model.status().ToString();
  pb::QuantizedModel corrupt = v1;
  const uint32_t node = corrupt.layers(3).node_id();
  corrupt.mutable_layers(3)->mutable_weights()->append("xyz");
  auto bad = server_->deployModel(kDevice, corrupt);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("layer " + std::to_string(node) + " '"), std::string::npos)
      << bad.status().ToString();

  ASSERT_TRUE(server_->deployModel(kDevice, v1).ok());
  ASSERT_TRUE(server_->setAIoTMode(kDevice, pb::MODE_INFERENCE, {}).ok());
  auto wrong_mode = server_->getData(kDevice, DataRequest(pb::MODE_TRAINING, 0, 4, 0));
  EXPECT_NE(wrong_mode.status().message().find("the device is in inference mode"),
            std::string::npos)
      << wrong_mode.status().ToString();
  auto out_of_range =
      server_->getData(kDevice, DataRequest(pb::MODE_INFERENCE, testing::kTestLimit - 1, 2, 0));
  EXPECT_NE(out_of_range.status().message().find("sample id 1024 is out of range"),
            std::string::npos)
      << out_of_range.status().ToString();
  accel::TmrConfig bad_set{accel::TmrMode::kPartial, {0}};
  Status st = server_->setAIoTMode(kDevice, pb::MODE_INFERENCE, bad_set);
  EXPECT_NE(st.message().find("protected layer 0 is not a MAC layer"), std::string::npos)
      << st.ToString();
  // Errors changed nothing and the device still serves.
  auto ok = server_->getData(kDevice, DataRequest(pb::MODE_INFERENCE, 0, 4, 0));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->model_version(), 1u);
}

class DaemonLifecycleTest : public testing::DaemonTest {};

// `r2f_server eval` as users run it: a config file, a model file, the device daemon.
TEST_F(DaemonLifecycleTest, EvalCommandPrintsAccuracyFaultsCyclesAndLink) {
  const std::string server_bin = testing::BinDir() + "/r2f_server";
  ASSERT_TRUE(std::filesystem::exists(server_bin)) << server_bin << " is not built";
  testing::DeviceYamlOptions o;
  o.ber = 1e-4;
  ASSERT_NO_FATAL_FAILURE(StartClient(o));
  testing::WriteFile(dir_.File("model.pb"), testing::TestModel().SerializeAsString());
  testing::WriteFile(dir_.File("eval.yaml"),
                     "device_id: dev-1\n"
                     "broker: {uri: '" +
                         broker_.uri() +
                         "', client_id: test-eval}\n"
                         "link: {preset: ieee802154g}\n"
                         "model: {path: '" +
                         dir_.File("model.pb") +
                         "'}\n"
                         "tmr: {mode: layer_wise}\n"
                         "eval: {images: 200, batch_size: 64, layer_similarity: true}\n");
  const std::string out_file = dir_.File("eval.out");
  const int rc = std::system(
      (server_bin + " eval --config " + dir_.File("eval.yaml") + " > " + out_file + " 2>&1")
          .c_str());
  const std::string out = testing::ReadFile(out_file);
  ASSERT_EQ(rc, 0) << out;
  for (const char* text : {"top-1", "top-5", "(n=200)", "200 images of the test split in 4 batches",
                           "bit flips    weights", "observed BER", "cycles =", "MHz",
                           "link ieee802154g", "modelled", "similarity", "downlink"}) {
    EXPECT_NE(out.find(text), std::string::npos) << "'" << text << "' missing in:\n" << out;
  }

  // A config error names the file, the line and the key, and nothing is sent.
  testing::WriteFile(dir_.File("bad_eval.yaml"),
                     "device_id: dev-1\nlink: {preset: wifi}\n"
                     "model: {path: x}\n");
  const int bad_rc = std::system(
      (server_bin + " eval --config " + dir_.File("bad_eval.yaml") + " > " + out_file + " 2>&1")
          .c_str());
  EXPECT_NE(bad_rc, 0);
  EXPECT_NE(testing::ReadFile(out_file).find("bad_eval.yaml:2: key 'link.preset': must be one of"),
            std::string::npos)
      << testing::ReadFile(out_file);
}

// The model named by a pretrain config that was never run: the error says what to run.
TEST(EvalConfigTest, MissingPretrainedModelSaysWhichCommandToRun) {
  testing::TempDir dir;
  const std::string pretrain = dir.File("pretrain.yaml");
  testing::WriteFile(pretrain, "network: {name: resnet18, width: 0.25}\noutput: {dir: '" +
                                   dir.File("models") + "'}\n");
  testing::WriteFile(dir.File("eval.yaml"),
                     "device_id: dev-1\nlink: {preset: lora}\n"
                     "model: {pretrain_config: '" +
                         pretrain + "'}\n");
  auto config = LoadEvalConfig(dir.File("eval.yaml"));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->session.server.link.name, "lora");
  auto model = LoadSessionModel(config->session);
  EXPECT_EQ(model.status().code(), Status::Code::kNotFound);
  EXPECT_NE(model.status().message().find("run `r2f_server pretrain --config " + pretrain + "`"),
            std::string::npos)
      << model.status().ToString();

  testing::WriteFile(dir.File("both.yaml"),
                     "device_id: dev-1\nlink: {preset: lora}\n"
                     "model: {path: a.pb, pretrain_config: b.yaml}\n");
  auto both = LoadEvalConfig(dir.File("both.yaml"));
  EXPECT_NE(both.status().message().find("exactly one of model.path and model.pretrain_config"),
            std::string::npos)
      << both.status().ToString();
}

TEST_F(DaemonLifecycleTest, StatusOnlineThenOfflineAfterSigterm) {
  ASSERT_NO_FATAL_FAILURE(StartClient({}));
  ASSERT_NO_FATAL_FAILURE(ConnectServer());
  EXPECT_EQ(DeviceStatus(), "online");
  EXPECT_EQ(client_->Terminate(), 0) << client_->Log();
  EXPECT_TRUE(testing::WaitUntil([&] { return DeviceStatus() == "offline"; }, seconds(5)))
      << DeviceStatus();
  EXPECT_NE(client_->Log().find("going offline"), std::string::npos);
}

TEST_F(DaemonLifecycleTest, BadConfigIsRejectedWithFileLineAndKey) {
  auto run_with = [&](const std::string& yaml) {
    testing::WriteFile(dir_.File("bad.yaml"), yaml);
    client_ = std::make_unique<testing::ClientProcess>(dir_.File("bad.yaml"), dir_.File("bad.log"));
    EXPECT_TRUE(client_->Start());
    return client_->Wait(seconds(10));
  };
  EXPECT_EQ(run_with("device_id: dev-1\nfualt: {ber: 0.1}\n"), 1);
  EXPECT_NE(client_->Log().find("bad.yaml:2: key 'fualt': unknown key, did you mean 'fault'?"),
            std::string::npos)
      << client_->Log();
  EXPECT_EQ(run_with("device_id: dev-1\nfault: {ber: 3}\n"), 1);
  EXPECT_NE(client_->Log().find("key 'fault.ber': must be in [0, 1], got 3"), std::string::npos)
      << client_->Log();
  EXPECT_EQ(run_with("device_id: a/b\n"), 1);
  EXPECT_NE(client_->Log().find("key 'device_id'"), std::string::npos) << client_->Log();
}

// --broker is checked like broker.uri when the command line is parsed: a typo ends the command
// at once with the flag named, not in a connect timeout later.
TEST_F(DaemonLifecycleTest, BadBrokerFlagIsRejectedAtOnce) {
  const std::pair<const char*, const char*> cases[] = {
      {"tcp//127.0.0.1:1883", "--broker: expected scheme://host:port, got 'tcp//127.0.0.1:1883'"},
      {"tcp://a:1883, mqtt://b:1883", "--broker: scheme must be tcp, ssl, ws or wss, got 'mqtt'"},
      {"tcp://a:99999", "--broker: port must be in [1, 65535], got '99999'"},
  };
  for (const auto& [uri, text] : cases) {
    const std::string log = dir_.File("broker-flag.log");
    std::filesystem::remove(log);
    const pid_t pid = testing::SpawnServerCommand(
        {"eval", "--config", std::string(R2F_SOURCE_DIR) + "/configs/eval.yaml", "--broker", uri},
        log);
    ASSERT_GT(pid, 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << uri;
    EXPECT_NE(testing::ReadFile(log).find(text), std::string::npos) << testing::ReadFile(log);
  }
}

// Hand-made wire messages, published with mosquitto_pub, against the real daemon: each gets an
// MSG_ERROR reply naming the fault, or (when it is not even an envelope, or is addressed to
// another device) a logged rejection; a valid call afterwards succeeds and the handler ran only
// for valid requests.
TEST_F(DaemonLifecycleTest, MalformedWireInputIsRejectedAndServingGoesOn) {
  ASSERT_NO_FATAL_FAILURE(StartClient({}));
  ASSERT_NO_FATAL_FAILURE(ConnectServer());
  ASSERT_TRUE(server_->deployModel(kDevice, testing::TestModel()).ok());
  ASSERT_TRUE(server_->setAIoTMode(kDevice, pb::MODE_INFERENCE, {}).ok());
  const uint64_t handled = RequestsHandled();
  testing::RawSubscriber watch(broker_.uri(), "test-watch");
  watch.Subscribe(DeviceTopic("r2f/v1", kDevice, TopicLeaf::kAck));
  watch.Subscribe(DeviceTopic("r2f/v1", kDevice, TopicLeaf::kData));
  const std::string cmd = DeviceTopic("r2f/v1", kDevice, TopicLeaf::kCmd);
  const std::string scratch = dir_.File("pub.bin");
  auto valid_call_works = [&] {
    return server_->getData(kDevice, DataRequest(pb::MODE_INFERENCE, 0, 2, 0)).ok();
  };

  // Not an envelope at all: nobody to answer, so it is logged and dropped.
  ASSERT_TRUE(
      testing::MosquittoPub(broker_.port(), cmd, std::string("\xff\x01garbage\x00", 10), scratch));
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return client_->CountInLog("dropped message on " + cmd) >= 1; }, seconds(5)))
      << client_->Log();
  EXPECT_TRUE(valid_call_works());
  // Addressed to another device's topic: dev-1 never sees it and keeps serving.
  ASSERT_TRUE(testing::MosquittoPub(
      broker_.port(), DeviceTopic("r2f/v1", "dev-2", TopicLeaf::kCmd),
      testing::OneChunkEnvelope(pb::MSG_GET_DATA, "dev-2", "j", 2000, "").SerializeAsString(),
      scratch));
  EXPECT_FALSE(watch.Await(2000, milliseconds(500)).has_value());
  EXPECT_TRUE(valid_call_works());

  const std::string good_get = DataRequest(pb::MODE_INFERENCE, 0, 2, 0).SerializeAsString();
  struct Case {
    uint64_t id;
    pb::MessageKind kind;
    std::string payload;
    std::function<void(pb::Envelope&)> damage;
    Status::Code code;
    std::string text;
  };
  const std::vector<Case> cases = {
      {2001, pb::MSG_GET_DATA, "\x0a\xff\xff\xff\xff\x0f", [](pb::Envelope&) {},
       Status::Code::kInvalidArgument, "is not a valid GetDataRequest"},
      {2002, pb::MSG_GET_DATA, good_get, [](pb::Envelope& e) { e.set_protocol_version(99); },
       Status::Code::kInvalidArgument, "protocol version 99"},
      {2003, pb::MSG_GET_DATA, good_get, [](pb::Envelope& e) { e.set_device_id("dev-2"); },
       Status::Code::kInvalidArgument, "arrived at device 'dev-1'"},
      {2004, pb::MSG_DEPLOY_MODEL, "x",
       [](pb::Envelope& e) { e.set_payload_size(uint64_t{1} << 40); },
       Status::Code::kInvalidArgument, "exceeds the limit"},
      {2005, pb::MSG_GET_DATA, good_get, [](pb::Envelope& e) { e.set_chunk_index(7); },
       Status::Code::kInvalidArgument, "chunk_index 7 out of range"},
      {2006, pb::MSG_GET_DATA, good_get,
       [](pb::Envelope& e) { e.set_chunk_crc32(e.chunk_crc32() ^ 0x5a); },
       Status::Code::kCorruption, "chunk CRC-32"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    pb::Envelope env = testing::OneChunkEnvelope(c.kind, kDevice, "bad-input", c.id, c.payload);
    c.damage(env);
    ASSERT_TRUE(testing::MosquittoPub(broker_.port(), cmd, env.SerializeAsString(), scratch));
    auto reply = watch.Await(c.id, seconds(5));
    ASSERT_TRUE(reply.has_value()) << "no error reply\n" << client_->Log();
    EXPECT_EQ(reply->kind, pb::MSG_ERROR);
    const Status carried = DecodeErrorReply(reply->payload);
    EXPECT_EQ(carried.code(), c.code) << carried.ToString();
    EXPECT_NE(carried.message().find(c.text), std::string::npos) << carried.ToString();
    EXPECT_TRUE(valid_call_works());
  }
  // Nothing but the valid calls was executed (2 above, one per case, and this one): damaged
  // envelopes never reach the handler, and the handler refused the bad payload unparsed.
  ASSERT_TRUE(server_->setAIoTMode(kDevice, pb::MODE_INFERENCE, {}).ok());
  EXPECT_EQ(RequestsHandled(), handled + 2 + cases.size() + 1);
}

}  // namespace
}  // namespace r2f
