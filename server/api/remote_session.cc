#include "server/api/remote_session.h"

#include <filesystem>
#include <limits>

#include "common/base/json.h"
#include "common/ir/model_file.h"
#include "common/net/broker_config.h"
#include "server/model/pretrain_config.h"

namespace r2f {
namespace {

// The protection set of a search.json (`r2f_server search`): its protected_layers, a list of
// layer ids. Anything else is an error naming the file: a set read as empty would run the job
// silently without protection.
Result<std::vector<uint32_t>> ReadProtectedLayers(const std::string& path) {
  R2F_ASSIGN_OR_RETURN(Json doc, ReadJsonFile(path));
  if (!doc.is_object() || !doc.contains("protected_layers")) {
    return Status::InvalidArgument(path + " has no protected_layers (not a search.json?)");
  }
  const Json& layers = doc["protected_layers"];
  if (!layers.is_array()) {
    return Status::InvalidArgument(path + ": protected_layers must be a list of layer ids, got " +
                                   DumpJson(layers));
  }
  std::vector<uint32_t> ids;
  for (const Json& id : layers) {
    if (!id.is_number_unsigned() || id.get<uint64_t>() > UINT32_MAX) {
      return Status::InvalidArgument(path + ": protected_layers must hold layer ids, got " +
                                     DumpJson(id));
    }
    ids.push_back(static_cast<uint32_t>(id.get<uint64_t>()));
  }
  return ids;
}

}  // namespace

void ParseTmrSection(ConfigMap t, accel::TmrConfig* out) {
  const std::string mode = t.GetChoice(
      "mode", accel::TmrModeName(accel::TmrMode::kNone),
      {accel::TmrModeName(accel::TmrMode::kNone), accel::TmrModeName(accel::TmrMode::kPartial),
       accel::TmrModeName(accel::TmrMode::kLayerWise),
       accel::TmrModeName(accel::TmrMode::kNetworkWise)});
  Result<accel::TmrMode> parsed = accel::ParseTmrMode(mode);  // GetChoice has checked the name
  out->mode = parsed.ok() ? *parsed : accel::TmrMode::kNone;
  out->protected_layers.clear();
  for (int64_t id : t.GetIntList("protected_layers", {}, 0, std::numeric_limits<uint32_t>::max())) {
    out->protected_layers.push_back(static_cast<uint32_t>(id));
  }
  // TCLP: the protection set found by `r2f_server search` (its search.json).
  const std::string from_search = t.GetString("search_result", "");
  if (!from_search.empty()) {
    if (mode != "partial") t.Fail("search_result", "needs mode partial, the mode is " + mode);
    if (!out->protected_layers.empty()) {
      t.Fail("search_result", "give either protected_layers or search_result, not both");
    }
    Result<std::vector<uint32_t>> found = ReadProtectedLayers(from_search);
    if (found.ok()) {
      out->protected_layers = *found;
    } else {
      t.Fail("search_result", found.status().message());
    }
  }
  if (out->mode != accel::TmrMode::kPartial && !out->protected_layers.empty()) {
    t.Fail("protected_layers", "only used with mode partial, the mode is " + mode);
  }
}

void ApplyLinkSection(ConfigMap link, RemoteSessionConfig* out) {
  if (ParseLinkConfig(link, &out->link).ok()) {
    out->server.link = out->link.spec;
    out->server.throttle = out->link.throttle;
    out->server.throttle_burst_bytes = out->link.throttle_burst_bytes;
  }
}

void ParseRemoteSession(ConfigMap& map, const std::string& default_job, RemoteSessionConfig* out,
                        bool one_device) {
  if (one_device) {
    out->device_id = map.RequireString("device_id");
    if (!out->device_id.empty()) {
      if (Status st = ValidateDeviceId(out->device_id); !st.ok()) {
        map.Fail("device_id", st.message());
      }
    }
  } else if (map.Has("device_id")) {
    map.GetString("device_id", "");
    map.Fail("device_id", "a fleet names its devices in fleet.devices");
  }
  out->server.job_id = map.GetString("job_id", default_job);
  if (out->server.job_id.empty()) map.Fail("job_id", "must not be empty");
  ConfigMap broker = map.Section("broker");
  ParseBrokerConfig(broker, &out->server.transport);
  ApplyLinkSection(map.Section("link"), out);

  ConfigMap model = map.Section("model");
  const bool has_path = model.Has("path"), has_pretrain = model.Has("pretrain_config");
  out->model_path = model.GetString("path", "");
  out->pretrain_config = model.GetString("pretrain_config", "");
  out->deploy_as_delta = model.GetBool("deploy_as_delta", out->deploy_as_delta);
  if (has_path == has_pretrain) {
    model.Fail(has_path ? "pretrain_config" : "path",
               "give exactly one of model.path and model.pretrain_config");
  }
  ParseTmrSection(map.Section("tmr"), &out->tmr);

  ConfigMap call = map.Section("call");
  out->server.call_timeout = std::chrono::milliseconds(
      static_cast<int64_t>(1000 * call.GetDouble("timeout_s", 120.0, 0.1, 86400.0)));
  out->server.attempts = static_cast<int>(call.GetInt("attempts", 3, 1, 100));
}

Result<pb::QuantizedModel> LoadSessionModel(const RemoteSessionConfig& session) {
  std::string path = session.model_path;
  if (!session.pretrain_config.empty()) {
    R2F_ASSIGN_OR_RETURN(PretrainConfig pretrain, LoadPretrainConfig(session.pretrain_config));
    path = PretrainRunDir(pretrain) + "/model.pb";
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      return Status::NotFound("the model of " + session.pretrain_config +
                              " is not pre-trained yet (" + path +
                              " does not exist): run `r2f_server pretrain --config " +
                              session.pretrain_config + "` first");
    }
  }
  return LoadQuantizedModelFile(path);
}

}  // namespace r2f
