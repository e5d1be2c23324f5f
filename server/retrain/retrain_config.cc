#include "server/retrain/retrain_config.h"

#include <cstdio>
#include <map>

#include "common/base/config.h"
#include "common/net/transport_message.h"

namespace r2f {

const char* RetrainMethodName(RetrainMethod method) {
  return method == RetrainMethod::kDrm ? "drm" : "aprm";
}

const char* ThresholdPolicyName(ThresholdPolicy policy) {
  return policy == ThresholdPolicy::kOffline ? "offline" : "adaptive";
}

void ParseRetrainSections(ConfigMap& map, RetrainConfig* out) {
  RetrainConfig& c = *out;
  ConfigMap m = map.Section("method");
  c.method = m.GetChoice("mode", RetrainMethodName(c.method), {"drm", "aprm"}) == "drm"
                 ? RetrainMethod::kDrm
                 : RetrainMethod::kAprm;
  c.policy = m.GetChoice("threshold_policy", ThresholdPolicyName(c.policy),
                         {"offline", "adaptive"}) == "offline"
                 ? ThresholdPolicy::kOffline
                 : ThresholdPolicy::kAdaptive;
  c.similarity_threshold = m.GetDouble("similarity_threshold", c.similarity_threshold, 0.0, 1.0);
  c.lz4_raw = m.GetBool("lz4_raw", c.lz4_raw);
  const std::string reference_name = m.GetChoice(
      "reference", accel::TrainingReferenceName(accel::TrainingReferenceFromProto(c.reference)),
      {"chain", "local", "exact"});
  if (Result<accel::TrainingReference> reference = accel::ParseTrainingReference(reference_name);
      reference.ok()) {
    c.reference = accel::TrainingReferenceToProto(reference.value());
  }
  // DRM runs no reference, so only APRM needs the single deployed chain of the local ones.
  if (c.method == RetrainMethod::kAprm && c.reference != pb::REFERENCE_CHAIN &&
      c.session.tmr.mode == accel::TmrMode::kNetworkWise) {
    m.Fail("reference",
           reference_name + " needs a single deployed chain, not tmr.mode network_wise");
  }

  c.verify_rebuild = m.GetBool("verify_rebuild", c.verify_rebuild);

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
  c.eval_device_id = e.GetString("device_id", c.eval_device_id);
  if (!c.eval_device_id.empty()) {
    if (Status st = ValidateDeviceId(c.eval_device_id); !st.ok()) e.Fail("device_id", st.message());
  }

  ConfigMap v = map.Section("validation");
  c.validation.enabled = v.GetBool("enabled", c.validation.enabled);
  c.validation.images = v.GetInt("images", c.validation.images, 1, INT32_MAX);
  c.validation.every = static_cast<int>(v.GetInt("every", c.validation.every, 1, INT32_MAX));
  c.validation.batch_size =
      static_cast<int>(v.GetInt("batch_size", c.validation.batch_size, 1, 1 << 16));

  ConfigMap r = map.Section("run");
  c.run_dir = r.GetString("dir", c.run_dir);
  if (c.run_dir.empty()) r.Fail("dir", "must not be empty");
  c.checkpoint_every =
      static_cast<int>(r.GetInt("checkpoint_every", c.checkpoint_every, 0, INT32_MAX));
  c.pipeline = r.GetBool("pipeline", c.pipeline);
}

Result<RetrainConfig> LoadRetrainConfig(const std::string& path) {
  R2F_ASSIGN_OR_RETURN(ConfigMap map, ConfigMap::LoadFile(path));
  RetrainConfig c;
  c.source = path;
  ParseRemoteSession(map, "retrain", &c.session);
  ParseRetrainSections(map, &c);
  R2F_RETURN_IF_ERROR(map.Finish());
  return c;
}

namespace {

std::string Number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

}  // namespace

RunSettings RunDefiningSettings(const RetrainConfig& c) {
  std::string protected_layers;
  for (uint32_t id : c.session.tmr.protected_layers) {
    protected_layers += (protected_layers.empty() ? "" : ",") + std::to_string(id);
  }
  return {
      {"device_id", c.session.device_id},
      {"model.path", c.session.model_path},
      {"model.pretrain_config", c.session.pretrain_config},
      {"tmr.mode", accel::TmrModeName(c.session.tmr.mode)},
      {"tmr.protected_layers", protected_layers},
      {"method.mode", RetrainMethodName(c.method)},
      {"method.reference",
       accel::TrainingReferenceName(accel::TrainingReferenceFromProto(c.reference))},
      {"method.threshold_policy", ThresholdPolicyName(c.policy)},
      {"method.similarity_threshold", Number(c.similarity_threshold)},
      {"train.samples", std::to_string(c.samples)},
      {"train.batch_size", std::to_string(c.batch_size)},
      {"train.epochs", std::to_string(c.epochs)},
      {"train.seed", std::to_string(c.seed)},
      {"train.lr", Number(c.hil.lr)},
      {"train.momentum", Number(c.hil.momentum)},
      {"train.weight_decay", Number(c.hil.weight_decay)},
  };
}

Status CheckResumeSettings(const std::string& run_dir, const RunSettings& recorded,
                           const RunSettings& now) {
  std::map<std::string, std::string> then(recorded.begin(), recorded.end());
  std::string differences;
  auto add = [&](const std::string& key, const std::string& was, const std::string& is) {
    differences +=
        (differences.empty() ? "" : "; ") + key + " was '" + was + "', is now '" + is + "'";
  };
  for (const auto& [key, value] : now) {
    auto it = then.find(key);
    if (it == then.end()) {
      add(key, "(not recorded)", value);
      continue;
    }
    if (it->second != value) add(key, it->second, value);
    then.erase(it);
  }
  for (const auto& [key, value] : then) add(key, value, "(not a setting now)");
  if (differences.empty()) return Status::Ok();
  return Status::FailedPrecondition("cannot resume the run in " + run_dir +
                                    " under other settings than it started with: " + differences +
                                    ". Restore them, or start the run afresh (without --resume)");
}

}  // namespace r2f
