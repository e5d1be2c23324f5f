#include "server/retrain.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "accel_sim/cycle_model.h"
#include "common/atomic_file.h"
#include "common/config.h"
#include "common/graph.h"
#include "common/permutation.h"
#include "common/random.h"
#include "common/transport_message.h"
#include "server/critical_layers.h"
#include "server/reconstruct.h"
#include "server/remote_eval.h"

namespace r2f {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

// Execution tags name the device executions whose soft errors are drawn: training iteration i
// uses 1 + i; the offline threshold decision and the evaluations have tags of their own, and
// Base and retrained accuracy share one, so both face the same fault pattern (a paired
// comparison).
constexpr uint64_t kEvalTag = 1ull << 61;
constexpr uint64_t kThresholdProbeTag = 1ull << 62;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string FormatDuration(double s) {
  char buf[32];
  const int total = static_cast<int>(s + 0.5);
  if (total >= 3600) {
    std::snprintf(buf, sizeof buf, "%dh%02dm", total / 3600, total % 3600 / 60);
  } else {
    std::snprintf(buf, sizeof buf, "%dm%02ds", total / 60, total % 60);
  }
  return buf;
}

Result<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The iteration number at the start of a stages.jsonl line ({"iteration":N,...}), or -1.
int64_t LineIteration(const std::string& line) {
  static const std::string key = "{\"iteration\":";
  if (line.compare(0, key.size(), key) != 0) return -1;
  return std::atoll(line.c_str() + key.size());
}

// --- checkpoint state (a small YAML file, read back with ConfigMap) ---

struct CheckpointState {
  int64_t last_iteration = -1;  // the last iteration whose update is in the saved weights
  uint64_t model_version = 0;
  std::vector<uint32_t> increment_layers;
  bool increment_layers_decided = false;
  int64_t before_count = 0, before_top1 = 0, before_top5 = 0;
};

std::string CheckpointYaml(const CheckpointState& s) {
  std::ostringstream os;
  os << "last_iteration: " << s.last_iteration << "\nmodel_version: " << s.model_version
     << "\nincrement_layers_decided: " << (s.increment_layers_decided ? "true" : "false")
     << "\nincrement_layers: [";
  for (size_t i = 0; i < s.increment_layers.size(); ++i) {
    os << (i ? ", " : "") << s.increment_layers[i];
  }
  os << "]\nbefore_count: " << s.before_count << "\nbefore_top1: " << s.before_top1
     << "\nbefore_top5: " << s.before_top5 << "\n";
  return os.str();
}

Result<CheckpointState> ReadCheckpoint(const std::string& path) {
  R2F_ASSIGN_OR_RETURN(ConfigMap map, ConfigMap::LoadFile(path));
  CheckpointState s;
  s.last_iteration = map.GetInt("last_iteration", -1, -1, INT64_MAX);
  s.model_version = static_cast<uint64_t>(map.GetInt("model_version", 0, 0, INT64_MAX));
  s.increment_layers_decided = map.GetBool("increment_layers_decided", false);
  for (int64_t id : map.GetIntList("increment_layers", {}, 0, UINT32_MAX)) {
    s.increment_layers.push_back(static_cast<uint32_t>(id));
  }
  s.before_count = map.GetInt("before_count", 0, 0, INT64_MAX);
  s.before_top1 = map.GetInt("before_top1", 0, 0, INT64_MAX);
  s.before_top5 = map.GetInt("before_top5", 0, 0, INT64_MAX);
  R2F_RETURN_IF_ERROR(map.Finish());
  return s;
}

pb::LayerEncodingPolicy PolicyOf(const RetrainConfig& c) {
  if (c.method == RetrainMethod::kDrm) return pb::ENCODE_RAW;
  return c.policy == ThresholdPolicy::kOffline ? pb::ENCODE_OFFLINE : pb::ENCODE_ADAPTIVE;
}

EvalSettings EvalSettingsOf(const RetrainConfig& c) {
  EvalSettings e;
  e.split = pb::SPLIT_TEST;
  e.images = c.eval_images;
  e.batch_size = c.eval_batch_size;
  e.execution_tag = kEvalTag;
  e.tmr = c.session.tmr;
  e.deploy_as_delta = false;
  return e;
}

// The offline policy of the paper: one random training input, every layer's similarity
// between the faulty chain and the TMR reference; layers at or above the threshold are sent as
// increments for the whole run.
Result<std::vector<uint32_t>> DecideIncrementLayers(R2fServer& server, const RetrainConfig& c,
                                                    uint64_t train_samples) {
  pb::GetDataRequest probe;
  probe.set_mode(pb::MODE_TRAINING);
  probe.set_split(pb::SPLIT_TRAIN);
  Rng rng(MixKey({c.seed, 0x0FF1ull}));
  probe.add_sample_ids(rng.Below(train_samples));
  probe.set_execution_tag(kThresholdProbeTag);
  probe.set_policy(pb::ENCODE_ADAPTIVE);
  probe.set_similarity_threshold(0.0);
  probe.set_reference(c.reference);
  R2F_ASSIGN_OR_RETURN(pb::DataReply reply, server.getData(c.session.device_id, probe));
  std::vector<uint32_t> layers;
  std::ostringstream log;
  for (const pb::EncodedLayer& l : reply.layers()) {
    if (l.similarity() >= c.similarity_threshold) layers.push_back(l.node_id());
    log << " " << l.node_id() << ":" << static_cast<int>(100 * l.similarity() + 0.5) << "%";
  }
  spdlog::info("retrain: offline threshold {:.0f}%: {} of {} layers as increments; similarity{}",
               100 * c.similarity_threshold, layers.size(), reply.layers_size(), log.str());
  server.TakeRecords();  // the probe is set-up, not an iteration
  return layers;
}

std::string AccuracyJson(const Accuracy& a) {
  std::ostringstream os;
  os.precision(10);
  os << "{\"images\": " << a.count() << ", \"top1\": " << a.Top1()
     << ", \"top1_ci95\": " << a.Top1Ci95() << ", \"top5\": " << a.Top5() << "}";
  return os.str();
}

const char* ReferenceName(pb::IncrementReference r) {
  return r == pb::REFERENCE_LOCAL ? "local" : "chain";
}
const char* MethodName(RetrainMethod m) { return m == RetrainMethod::kDrm ? "drm" : "aprm"; }
const char* PolicyName(ThresholdPolicy p) {
  return p == ThresholdPolicy::kOffline ? "offline" : "adaptive";
}

std::string SummaryJson(const RetrainConfig& c, const RetrainResult& r) {
  std::ostringstream os;
  os.precision(10);
  os << "{\n  \"config\": \"" << c.source << "\",\n  \"device\": \"" << c.session.device_id
     << "\",\n  \"method\": \"" << MethodName(c.method) << "\",\n  \"threshold_policy\": \""
     << PolicyName(c.policy) << "\",\n  \"reference\": \"" << ReferenceName(c.reference)
     << "\",\n  \"similarity_threshold\": " << c.similarity_threshold << ",\n  \"link\": \""
     << c.session.link.spec.name << "\",\n  \"batch_size\": " << c.batch_size
     << ",\n  \"iterations\": " << r.iterations << ",\n  \"resumed_from\": " << r.resumed_from
     << ",\n  \"protected_layers\": [";
  for (size_t i = 0; i < c.session.tmr.protected_layers.size(); ++i) {
    os << (i ? ", " : "") << c.session.tmr.protected_layers[i];
  }
  os << "],\n  \"increment_layers\": [";
  for (size_t i = 0; i < r.increment_layers.size(); ++i)
    os << (i ? ", " : "") << r.increment_layers[i];
  os << "],\n  \"accuracy_before\": " << AccuracyJson(r.before)
     << ",\n  \"accuracy_after\": " << AccuracyJson(r.after) << ",\n  \"eval_device\": \""
     << (c.eval_device_id.empty() ? c.session.device_id : c.eval_device_id)
     << "\",\n  \"tmr_overhead\": " << r.tmr_overhead
     << ",\n  \"final_model_version\": " << r.final_model_version
     << ",\n  \"timing\": " << SummaryToJson(r.timing) << "\n}\n";
  return os.str();
}

}  // namespace

Result<RetrainConfig> LoadRetrainConfig(const std::string& path) {
  R2F_ASSIGN_OR_RETURN(ConfigMap map, ConfigMap::LoadFile(path));
  RetrainConfig c;
  c.source = path;
  ParseRemoteSession(map, "retrain", &c.session);
  ConfigMap m = map.Section("method");
  c.method = m.GetChoice("mode", "aprm", {"drm", "aprm"}) == "drm" ? RetrainMethod::kDrm
                                                                   : RetrainMethod::kAprm;
  c.policy = m.GetChoice("threshold_policy", "offline", {"offline", "adaptive"}) == "offline"
                 ? ThresholdPolicy::kOffline
                 : ThresholdPolicy::kAdaptive;
  c.similarity_threshold = m.GetDouble("similarity_threshold", c.similarity_threshold, 0.0, 1.0);
  c.lz4_raw = m.GetBool("lz4_raw", c.lz4_raw);
  c.reference = m.GetChoice("reference", "chain", {"chain", "local"}) == "local"
                    ? pb::REFERENCE_LOCAL
                    : pb::REFERENCE_CHAIN;
  if (c.reference == pb::REFERENCE_LOCAL && c.session.tmr.mode == accel::TmrMode::kNetworkWise) {
    m.Fail("reference", "local needs a single deployed chain, not tmr.mode network_wise");
  }

  ConfigMap t = map.Section("train");
  c.samples = t.GetInt("samples", c.samples, 0, INT32_MAX);
  c.batch_size = static_cast<int>(t.GetInt("batch_size", c.batch_size, 1, 4096));
  c.epochs = static_cast<int>(t.GetInt("epochs", c.epochs, 1, 1000));
  c.seed = static_cast<uint64_t>(t.GetInt("seed", static_cast<int64_t>(c.seed), 0, INT64_MAX));
  c.hil.lr = t.GetDouble("lr", c.hil.lr, 1e-8, 10.0);
  c.hil.momentum = t.GetDouble("momentum", c.hil.momentum, 0.0, 0.999);
  c.hil.weight_decay = t.GetDouble("weight_decay", c.hil.weight_decay, 0.0, 0.1);
  c.max_iterations = t.GetInt("max_iterations", c.max_iterations, 0, INT64_MAX);

  ConfigMap e = map.Section("eval");
  c.eval_images = e.GetInt("images", c.eval_images, 1, INT32_MAX);
  c.eval_batch_size = static_cast<int>(e.GetInt("batch_size", c.eval_batch_size, 1, 1 << 16));
  c.eval_before = e.GetBool("before", c.eval_before);
  c.eval_device_id = e.GetString("device_id", "");
  if (!c.eval_device_id.empty()) {
    if (Status st = ValidateDeviceId(c.eval_device_id); !st.ok()) e.Fail("device_id", st.message());
  }

  ConfigMap r = map.Section("run");
  c.run_dir = r.GetString("dir", c.run_dir);
  if (c.run_dir.empty()) r.Fail("dir", "must not be empty");
  c.checkpoint_every =
      static_cast<int>(r.GetInt("checkpoint_every", c.checkpoint_every, 0, INT32_MAX));
  R2F_RETURN_IF_ERROR(map.Finish());
  return c;
}

std::string FormatStageTable(const TimingTotals& t) {
  std::ostringstream os;
  char line[160];
  std::snprintf(line, sizeof line, "%-10s %14s %8s %14s %12s\n", "stage", "modelled [s]", "share",
                "measured [s]", "per iter [s]");
  os << line;
  const StageArray shares = t.Shares();
  for (Stage s : AllStages()) {
    const size_t i = StageIndex(s);
    std::snprintf(line, sizeof line, "%-10s %14.3f %7.1f%% %14.3f %12.4f\n", StageName(s),
                  t.modelled_s[i], 100 * shares[i], t.measured_s[i],
                  t.iterations ? t.modelled_s[i] / t.iterations : 0.0);
    os << line;
  }
  std::snprintf(line, sizeof line, "%-10s %14.3f %7.1f%% %14.3f %12.4f\n", "total",
                t.ModelledTotal(), 100.0, t.MeasuredTotal(),
                t.iterations ? t.ModelledTotal() / t.iterations : 0.0);
  os << line;
  std::snprintf(line, sizeof line, "uplink %.3f MB, downlink %.3f MB over %lld iterations\n",
                t.uplink_bytes / 1e6, t.downlink_bytes / 1e6, static_cast<long long>(t.iterations));
  os << line;
  return os.str();
}

Result<RetrainResult> RunRetrain(const RetrainConfig& c, bool resume) {
  RetrainResult result;
  result.run_dir = c.run_dir;
  std::error_code ec;
  fs::create_directories(c.run_dir + "/checkpoint", ec);
  if (ec) return Status::IoError("cannot create run directory " + c.run_dir + ": " + ec.message());
  const std::string stages_path = c.run_dir + "/stages.jsonl";
  const std::string ckpt_dir = c.run_dir + "/checkpoint";
  const std::string ckpt_state = ckpt_dir + "/state.yaml";

  R2F_ASSIGN_OR_RETURN(pb::QuantizedModel model, LoadSessionModel(c.session));
  R2F_ASSIGN_OR_RETURN(std::unique_ptr<HilTrainer> trainer, HilTrainer::Create(model, c.hil));
  CheckpointState state;
  state.model_version = model.model_version();

  if (resume) {
    if (!fs::exists(ckpt_state)) {
      return Status::NotFound("--resume: no checkpoint in " + ckpt_dir +
                              " (run without --resume to start)");
    }
    R2F_ASSIGN_OR_RETURN(state, ReadCheckpoint(ckpt_state));
    R2F_RETURN_IF_ERROR(trainer->Load(ckpt_dir + "/trainer"));
    R2F_ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(ckpt_dir + "/model.pb"));
    if (!model.ParseFromString(bytes)) {
      return Status::Corruption("checkpoint model " + ckpt_dir +
                                "/model.pb is not a QuantizedModel");
    }
    if (model.model_version() != state.model_version) {
      return Status::Corruption("checkpoint model has version " +
                                std::to_string(model.model_version()) + ", state says " +
                                std::to_string(state.model_version));
    }
    result.resumed_from = state.last_iteration;
    // Keep the stage lines of the iterations the checkpoint holds; later ones are redone.
    std::ifstream in(stages_path);
    std::string kept, line;
    while (std::getline(in, line)) {
      int64_t it = LineIteration(line);
      if (it >= 0 && it <= state.last_iteration) kept += line + "\n";
    }
    R2F_RETURN_IF_ERROR(WriteFileAtomically(stages_path, kept));
    spdlog::info("retrain: resuming after iteration {} (model version {})", state.last_iteration,
                 state.model_version);
  } else {
    fs::remove_all(ckpt_dir, ec);
    fs::create_directories(ckpt_dir, ec);
    R2F_RETURN_IF_ERROR(WriteFileAtomically(stages_path, ""));
  }

  R2F_ASSIGN_OR_RETURN(std::unique_ptr<R2fServer> server, R2fServer::Connect(c.session.server));
  const std::string& device = c.session.device_id;
  const std::string& eval_device = c.eval_device_id.empty() ? device : c.eval_device_id;

  // Base accuracy on the faulty device, before any retraining.
  if (c.eval_before && state.before_count == 0) {
    R2F_ASSIGN_OR_RETURN(RemoteEvalResult before,
                         RunRemoteEval(*server, eval_device, model, EvalSettingsOf(c)));
    result.before = before.accuracy;
    state.before_count = before.accuracy.count();
    state.before_top1 = before.accuracy.top1_hits();
    state.before_top5 = before.accuracy.top5_hits();
    spdlog::info("retrain: Base (before) {}", result.before.ToString());
  } else {
    result.before = Accuracy::FromCounts(state.before_count, state.before_top1, state.before_top5);
  }

  // The device runs the model of the checkpoint (or the pre-trained one) in training mode.
  R2F_ASSIGN_OR_RETURN(pb::Ack deployed, server->deployModel(device, model, false));
  R2F_RETURN_IF_ERROR(server->setAIoTMode(device, pb::MODE_TRAINING, c.session.tmr));
  R2F_ASSIGN_OR_RETURN(pb::Ack ack, server->LastAck(device));
  const uint64_t available = ack.train_samples();
  if (available == 0)
    return Status::InvalidArgument("device '" + device + "' has no training data");
  const uint64_t samples = c.samples > 0 ? std::min<uint64_t>(c.samples, available) : available;
  const int64_t per_epoch = static_cast<int64_t>(samples / c.batch_size);
  if (per_epoch == 0) {
    return Status::InvalidArgument("train.samples " + std::to_string(samples) +
                                   " is smaller than one batch of " + std::to_string(c.batch_size));
  }
  int64_t total = per_epoch * c.epochs;
  if (c.max_iterations > 0) total = std::min(total, c.max_iterations);

  if (c.method == RetrainMethod::kAprm && c.policy == ThresholdPolicy::kOffline &&
      !state.increment_layers_decided) {
    R2F_ASSIGN_OR_RETURN(state.increment_layers, DecideIncrementLayers(*server, c, available));
    state.increment_layers_decided = true;
  }
  result.increment_layers = state.increment_layers;
  {
    pb::Graph graph = model.graph();
    R2F_RETURN_IF_ERROR(InferShapes(&graph));
    std::vector<uint32_t> layers;
    std::vector<double> cost;
    for (const accel::LayerCycleReport& l :
         accel::ModelNetwork(accel::AcceleratorConfig{}, graph, c.batch_size)) {
      layers.push_back(l.node_id);
      cost.push_back(static_cast<double>(l.TotalCycles()));
    }
    std::vector<uint32_t> protect = c.session.tmr.protected_layers;
    if (c.session.tmr.mode == accel::TmrMode::kLayerWise) protect = layers;
    result.tmr_overhead = RedundantOverhead(layers, cost, protect);
  }
  server->TakeRecords();

  // Replays the timings of the iterations a resumed run keeps.
  {
    std::ifstream in(stages_path);
    std::string line;
    while (std::getline(in, line)) {
      if (LineIteration(line) < 0) continue;
      R2F_ASSIGN_OR_RETURN(IterationTiming kept, IterationTimingFromJson(line));
      result.timing.Add(kept);
    }
  }
  R2F_ASSIGN_OR_RETURN(std::unique_ptr<accel::Accelerator> local,
                       accel::Accelerator::Create(model, accel::AcceleratorConfig{}));
  std::ofstream stages(stages_path, std::ios::app);
  const auto start = Clock::now();
  auto last_report = start;
  double loss_avg = -1;
  int64_t hits = 0, seen = 0;
  std::vector<uint32_t> order;
  int order_epoch = -1;
  for (int64_t it = state.last_iteration + 1; it < total; ++it) {
    const int epoch = static_cast<int>(it / per_epoch);
    if (epoch != order_epoch) {
      order = SeededPermutation(samples, MixKey({c.seed, static_cast<uint64_t>(epoch)}));
      order_epoch = epoch;
    }
    IterationTiming t;
    t.iteration = it;
    pb::GetDataRequest req;
    req.set_mode(pb::MODE_TRAINING);
    req.set_split(pb::SPLIT_TRAIN);
    const int64_t first = (it % per_epoch) * c.batch_size;
    for (int i = 0; i < c.batch_size; ++i) req.add_sample_ids(order[first + i]);
    req.set_execution_tag(1 + static_cast<uint64_t>(it));
    req.set_policy(PolicyOf(c));
    req.set_similarity_threshold(c.similarity_threshold);
    for (uint32_t id : state.increment_layers) req.add_increment_layers(id);
    req.set_lz4_raw(c.lz4_raw);
    req.set_reference(c.reference);

    R2F_ASSIGN_OR_RETURN(pb::DataReply reply, server->getData(device, req));
    // A device that predates the layer-local reference ignores the field and runs the chain;
    // the reconstruction would still be right, but the run would not be what was asked for.
    if (c.method == RetrainMethod::kAprm && reply.reference() != c.reference) {
      return Status::InvalidArgument("retrain: device " + device + " ran the " +
                                     ReferenceName(reply.reference()) +
                                     " reference, the run asks for " + ReferenceName(c.reference) +
                                     " (a device without support for method.reference: local?)");
    }
    const double clock_hz = reply.clock_mhz() * 1e6;
    t.modelled(Stage::kFp) = clock_hz > 0 ? reply.fp_cycles() / clock_hz : 0;
    t.measured(Stage::kFp) = reply.fp_wall_seconds();
    t.modelled(Stage::kTmr) = clock_hz > 0 ? reply.tmr_cycles() / clock_hz : 0;
    t.modelled(Stage::kIncrement) = t.measured(Stage::kIncrement) = reply.increment_seconds();
    t.modelled(Stage::kCodec) = t.measured(Stage::kCodec) = reply.codec_seconds();

    // Decompression on the server: the clean recompute and the decoding (DESIGN §5 step 4).
    R2F_ASSIGN_OR_RETURN(Reconstruction recon, ReconstructLayers(reply, *local));
    const double server_codec = recon.recompute_seconds + recon.decode_seconds;
    t.modelled(Stage::kCodec) += server_codec;
    t.measured(Stage::kCodec) += server_codec;

    pb::QuantizedModel next;
    HilStepResult step;
    {
      ScopedStageTimer bp(&t, Stage::kBp, ScopedStageTimer::Target::kMeasuredAndModelled);
      R2F_ASSIGN_OR_RETURN(step, trainer->Step(reply.inputs(), reply.labels(), recon.layers));
      R2F_ASSIGN_OR_RETURN(next, trainer->Export(model.model_version() + 1));
    }
    R2F_ASSIGN_OR_RETURN(pb::Ack ack_next,
                         server->deployModel(device, next, c.session.deploy_as_delta));
    (void)ack_next;
    for (const CallRecord& r : server->TakeRecords()) {
      t.uplink_bytes += r.uplink_bytes;
      t.downlink_bytes += r.downlink_bytes;
      t.modelled(Stage::kUplink) += r.modelled_uplink_s;
      t.modelled(Stage::kDownlink) += r.modelled_downlink_s;
      // A call's wall time covers both directions; it is logged with the direction that carries
      // its payload (the data reply up, the model down).
      t.measured(r.kind == pb::MSG_GET_DATA ? Stage::kUplink : Stage::kDownlink) += r.measured_s;
    }
    model = std::move(next);
    R2F_ASSIGN_OR_RETURN(local, accel::Accelerator::Create(model, accel::AcceleratorConfig{}));
    result.timing.Add(t);

    std::map<std::string, double> extra{{"loss", step.loss},
                                        {"batch_top1", double(step.top1_hits) / step.samples},
                                        {"increment_layers", double(recon.increment_layers)},
                                        {"model_version", double(model.model_version())}};
    stages << ToJsonLine(t, extra) << "\n";
    stages.flush();

    loss_avg = loss_avg < 0 ? step.loss : 0.95 * loss_avg + 0.05 * step.loss;
    hits += step.top1_hits;
    seen += step.samples;
    state.last_iteration = it;
    state.model_version = model.model_version();
    const bool last = it + 1 == total;
    if ((c.checkpoint_every > 0 && (it + 1) % c.checkpoint_every == 0) || last) {
      R2F_RETURN_IF_ERROR(trainer->Save(ckpt_dir + "/trainer"));
      R2F_RETURN_IF_ERROR(WriteFileAtomically(ckpt_dir + "/model.pb", model.SerializeAsString()));
      R2F_RETURN_IF_ERROR(WriteFileAtomically(ckpt_state, CheckpointYaml(state)));
    }
    if (Since(last_report) > 10 || last) {
      last_report = Clock::now();
      const double done = static_cast<double>(it - result.resumed_from);
      const double eta = Since(start) / done * (total - it - 1);
      spdlog::info("retrain it {}/{} loss {:.4f} running-acc {:.1f}% up {:.2f} MB/it ETA {}",
                   it + 1, total, loss_avg, seen ? 100.0 * hits / seen : 0.0, t.uplink_bytes / 1e6,
                   FormatDuration(eta));
      hits = seen = 0;
    }
  }
  result.iterations = total;
  result.final_model_version = model.model_version();
  result.final_model_path = c.run_dir + "/model.pb";
  R2F_RETURN_IF_ERROR(WriteFileAtomically(result.final_model_path, model.SerializeAsString()));

  // Retrained accuracy on the same faulty device and the same fault pattern as Base.
  R2F_ASSIGN_OR_RETURN(RemoteEvalResult after,
                       RunRemoteEval(*server, eval_device, model, EvalSettingsOf(c)));
  result.after = after.accuracy;
  spdlog::info("retrain: retrained (after) {}", result.after.ToString());
  R2F_RETURN_IF_ERROR(WriteFileAtomically(c.run_dir + "/summary.json", SummaryJson(c, result)));
  return result;
}

}  // namespace r2f
