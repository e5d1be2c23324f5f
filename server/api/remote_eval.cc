#include "server/api/remote_eval.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "accel_sim/cycle_model.h"
#include "common/base/compressed_file.h"
#include "common/base/config.h"
#include "common/base/logging.h"
#include "common/net/broker_config.h"

namespace r2f {
namespace {

void ParseEval(ConfigMap e, EvalSettings* out) {
  out->split =
      e.GetChoice("split", "test", {"train", "test"}) == "train" ? pb::SPLIT_TRAIN : pb::SPLIT_TEST;
  out->images = e.GetInt("images", out->images, 0, std::numeric_limits<int32_t>::max());
  out->batch_size = static_cast<int>(e.GetInt("batch_size", out->batch_size, 1, 1 << 16));
  out->execution_tag =
      static_cast<uint64_t>(e.GetInt("execution_tag", 0, 0, std::numeric_limits<int64_t>::max()));
  out->layer_similarity = e.GetBool("layer_similarity", out->layer_similarity);
}

}  // namespace

Status CheckEvalImages(const std::string& device, int64_t images, uint64_t available,
                       const std::string& split) {
  if (images <= 0 || static_cast<uint64_t>(images) <= available) return Status::Ok();
  return Status::InvalidArgument("eval.images is " + std::to_string(images) + ", but the " + split +
                                 " split of device '" + device + "' has " +
                                 std::to_string(available) + " samples");
}

namespace {

// One batch's reply: accuracy, predictions, logits, flips, similarities, cycles.
void AddBatch(const pb::DataReply& reply, uint64_t count, RemoteEvalResult* result,
              std::vector<double>* similarity_sum) {
  ++result->batches;
  const int classes = static_cast<int>(reply.num_classes());
  const auto* logits = reinterpret_cast<const int8_t*>(reply.logits().data());
  for (uint64_t b = 0; b < count; ++b) {
    const int8_t* row = logits + b * classes;
    result->accuracy.AddInt8(row, classes, static_cast<uint8_t>(reply.labels()[b]));
    result->labels.push_back(static_cast<uint8_t>(reply.labels()[b]));
    result->predictions.push_back(
        static_cast<uint32_t>(std::max_element(row, row + classes) - row));
  }
  result->logits += reply.logits();
  similarity_sum->resize(static_cast<size_t>(reply.reports_size()), 0.0);
  result->layer_ids.resize(similarity_sum->size());
  for (int l = 0; l < reply.reports_size(); ++l) {
    const pb::LayerReport& r = reply.reports(l);
    for (int s = 0; s < accel::kNumFaultSites && s < r.flips_size(); ++s) {
      result->flips[s] += r.flips(s);
      result->exposed_bits[s] += s < r.exposed_bits_size() ? r.exposed_bits(s) : 0;
    }
    result->layer_ids[l] = r.node_id();
    (*similarity_sum)[l] += r.similarity_to_clean() * static_cast<double>(count);
  }
  result->cycles += reply.fp_cycles();
  result->clock_mhz = reply.clock_mhz();
}

// The link traffic of every call of the run.
void AddLinkRecords(const std::vector<CallRecord>& records, RemoteEvalResult* result) {
  for (const CallRecord& rec : records) {
    result->downlink_bytes += rec.downlink_bytes;
    result->uplink_bytes += rec.uplink_bytes;
    result->modelled_downlink_s += rec.modelled_downlink_s;
    result->modelled_uplink_s += rec.modelled_uplink_s;
    result->measured_s += rec.measured_s;
    result->throttle_s += rec.throttle_s;
  }
}

std::string Megabytes(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f MB", bytes / 1e6);
  return buf;
}

}  // namespace

Result<EvalConfig> LoadEvalConfig(const std::string& path) {
  R2F_ASSIGN_OR_RETURN(ConfigMap map, ConfigMap::LoadFile(path));
  EvalConfig cfg;
  cfg.source = path;
  ParseRemoteSession(map, "eval", &cfg.session);
  ParseEval(map.Section("eval"), &cfg.eval);
  cfg.eval.tmr = cfg.session.tmr;
  cfg.eval.deploy_as_delta = cfg.session.deploy_as_delta;
  R2F_RETURN_IF_ERROR(map.Finish());
  return cfg;
}

Result<RemoteEvalResult> RunRemoteEval(R2fServer& server, const std::string& device,
                                       const pb::QuantizedModel& model,
                                       const EvalSettings& settings) {
  const auto start = std::chrono::steady_clock::now();
  if (settings.batch_size <= 0) return Status::InvalidArgument("eval.batch_size must be >= 1");
  server.TakeRecords(device);
  RemoteEvalResult result;
  result.device_id = device;
  result.link = server.DeviceLink(device);
  if (settings.deploy) {
    R2F_ASSIGN_OR_RETURN(pb::Ack deployed,
                         server.deployModel(device, model, settings.deploy_as_delta));
    result.deploy_detail = deployed.detail();
  }
  R2F_RETURN_IF_ERROR(server.setAIoTMode(device, pb::MODE_INFERENCE, settings.tmr));
  R2F_ASSIGN_OR_RETURN(pb::Ack ack, server.LastAck(device));
  if (ack.model_version() != model.model_version()) {
    return Status::InvalidArgument("device '" + device + "' runs model version " +
                                   std::to_string(ack.model_version()) + ", expected " +
                                   std::to_string(model.model_version()) + " (deploy it first)");
  }
  result.model_version = ack.model_version();

  const bool train = settings.split == pb::SPLIT_TRAIN;
  result.split_name = train ? "train" : "test";
  const uint64_t available = train ? ack.train_samples() : ack.test_samples();
  if (available == 0) {
    return Status::InvalidArgument("device '" + device + "' has no " + result.split_name +
                                   " samples");
  }
  std::vector<uint64_t> ids = settings.sample_ids;
  if (ids.empty()) {
    R2F_RETURN_IF_ERROR(CheckEvalImages(device, settings.images, available, result.split_name));
    const uint64_t n = settings.images > 0 ? static_cast<uint64_t>(settings.images) : available;
    for (uint64_t id = 0; id < n; ++id) ids.push_back(id);
  }
  const uint64_t n = ids.size();
  result.images = static_cast<int64_t>(n);

  std::vector<double> similarity_sum;
  for (uint64_t first = 0; first < n; first += static_cast<uint64_t>(settings.batch_size)) {
    const uint64_t count =
        std::min<uint64_t>(static_cast<uint64_t>(settings.batch_size), n - first);
    pb::GetDataRequest request;
    request.set_mode(pb::MODE_INFERENCE);
    request.set_split(settings.split);
    request.set_execution_tag(settings.execution_tag);
    request.set_layer_similarity(settings.layer_similarity);
    for (uint64_t i = first; i < first + count; ++i) request.add_sample_ids(ids[i]);
    R2F_ASSIGN_OR_RETURN(pb::DataReply reply, server.getData(device, request));
    AddBatch(reply, count, &result, &similarity_sum);
  }
  if (settings.layer_similarity) {
    for (double s : similarity_sum) result.layer_similarity.push_back(s / static_cast<double>(n));
  } else {
    result.layer_ids.clear();
  }
  if (result.clock_mhz > 0) {
    accel::AcceleratorConfig clock;
    clock.clock_mhz = result.clock_mhz;
    result.accel_seconds = accel::CyclesToSeconds(clock, result.cycles);
  }
  AddLinkRecords(server.TakeRecords(device), &result);
  result.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

std::string FormatEvalReport(const RemoteEvalResult& r) {
  std::string out;
  auto line = [&out](const char* label, const std::string& text) {
    char buf[24];
    std::snprintf(buf, sizeof(buf), "%-13s", label);
    out += buf + text + "\n";
  };
  line("device", r.device_id + ", model version " + std::to_string(r.model_version) + " (" +
                     r.deploy_detail + ")");
  line("evaluated", std::to_string(r.images) + " images of the " + r.split_name + " split in " +
                        std::to_string(r.batches) + " batches");
  line("accuracy", r.accuracy.ToString());
  std::string flips;
  uint64_t total_flips = 0, total_bits = 0;
  for (int s = 0; s < accel::kNumFaultSites; ++s) {
    flips += std::string(s ? ", " : "") + accel::FaultSiteName(static_cast<accel::FaultSite>(s)) +
             " " + std::to_string(r.flips[s]);
    total_flips += r.flips[s];
    total_bits += r.exposed_bits[s];
  }
  char ber[64];
  std::snprintf(ber, sizeof(ber), "; observed BER %.3g",
                total_bits ? double(total_flips) / total_bits : 0.0);
  line("bit flips", flips + " (total " + std::to_string(total_flips) + ber + ")");
  char accel_line[128];
  std::snprintf(accel_line, sizeof(accel_line), "%lld cycles = %.4f s modelled at %g MHz",
                static_cast<long long>(r.cycles), r.accel_seconds, r.clock_mhz);
  line("accelerator", accel_line);
  char link_line[256];
  std::snprintf(link_line, sizeof(link_line),
                "downlink %s (modelled %.3f s), uplink %s (modelled %.3f s); measured MQTT %.3f s",
                Megabytes(r.downlink_bytes).c_str(), r.modelled_downlink_s,
                Megabytes(r.uplink_bytes).c_str(), r.modelled_uplink_s, r.measured_s);
  line(("link " + r.link.name).c_str(), link_line);
  if (r.throttle_s > 0) {
    char t[64];
    std::snprintf(t, sizeof(t), "%.3f s waiting for the link's bit rate", r.throttle_s);
    line("throttle", t);
  }
  for (size_t l = 0; l < r.layer_similarity.size(); ++l) {
    char s[96];
    std::snprintf(s, sizeof(s), "layer %u: %.4f%% of outputs equal to clean", r.layer_ids[l],
                  100.0 * r.layer_similarity[l]);
    line(l == 0 ? "similarity" : "", s);
  }
  char wall[64];
  std::snprintf(wall, sizeof(wall), "%.2f s", r.wall_seconds);
  line("wall time", wall);
  return out;
}

}  // namespace r2f
