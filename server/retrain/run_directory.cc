#include "server/retrain/run_directory.h"

#include <filesystem>
#include <sstream>

#include "common/base/atomic_file.h"
#include "common/base/config.h"
#include "common/base/json.h"
#include "common/ir/model_file.h"

namespace r2f {
namespace fs = std::filesystem;
namespace {

template <typename T>
std::string YamlList(const std::vector<T>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + std::to_string(values[i]);
  return out + "]";
}

// A YAML double-quoted scalar.
std::string Quoted(const std::string& text) {
  std::string out = "\"";
  for (char ch : text) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "\"";
}

// The checkpoint state as a small YAML file, read back with ConfigMap.
std::string StateYaml(const CheckpointState& s) {
  std::ostringstream os;
  os << "last_iteration: " << s.last_iteration << "\nmodel_version: " << s.model_version
     << "\nincrement_layers_decided: " << (s.increment_layers_decided ? "true" : "false")
     << "\nincrement_layers: " << YamlList(s.increment_layers)
     << "\nbefore_count: " << s.before_count << "\nbefore_top1: " << s.before_top1
     << "\nbefore_top5: " << s.before_top5 << "\nvalidation_count: " << s.validation_count
     << "\nvalidated_iterations: " << YamlList(s.validated_iterations)
     << "\nvalidated_hits: " << YamlList(s.validated_hits)
     << "\nkept_iteration: " << s.kept_iteration << "\nkept_hits: " << s.kept_hits
     << "\nkept_model_version: " << s.kept_model_version
     << "\npatched_elements: " << s.patched_elements
     << "\ndisagreeing_layers: " << s.disagreeing_layers
     << "\nmismatched_layers: " << s.mismatched_layers << "\nprefetched: " << s.prefetched
     << "\novertaken: " << s.overtaken << "\nvalidation_held_out: " << s.validation_held_out
     << "\n";
  if (!s.settings.empty()) {
    os << "settings:\n";
    for (const auto& [key, value] : s.settings) os << "  " << key << ": " << Quoted(value) << "\n";
  }
  return os.str();
}

Result<CheckpointState> ReadState(const std::string& path) {
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
  s.validation_count = map.GetInt("validation_count", 0, 0, INT64_MAX);
  s.validated_iterations = map.GetIntList("validated_iterations", {}, -1, INT64_MAX);
  s.validated_hits = map.GetIntList("validated_hits", {}, 0, INT64_MAX);
  if (s.validated_iterations.size() != s.validated_hits.size()) {
    map.Fail("validated_hits", "must have one entry per validated iteration");
  }
  s.kept_iteration = map.GetInt("kept_iteration", -1, -1, INT64_MAX);
  s.kept_hits = map.GetInt("kept_hits", 0, 0, INT64_MAX);
  s.kept_model_version = static_cast<uint64_t>(map.GetInt("kept_model_version", 0, 0, INT64_MAX));
  s.patched_elements = map.GetInt("patched_elements", 0, 0, INT64_MAX);
  s.disagreeing_layers = map.GetInt("disagreeing_layers", 0, 0, INT64_MAX);
  s.mismatched_layers = map.GetInt("mismatched_layers", 0, 0, INT64_MAX);
  s.prefetched = map.GetInt("prefetched", 0, 0, INT64_MAX);
  s.overtaken = map.GetInt("overtaken", 0, 0, INT64_MAX);
  s.validation_held_out = map.GetInt("validation_held_out", 0, 0, INT64_MAX);
  ConfigMap settings = map.Section("settings");
  for (const std::string& key : settings.Keys()) {
    s.settings.emplace_back(key, settings.GetString(key, ""));
  }
  R2F_RETURN_IF_ERROR(map.Finish());
  return s;
}

// The iteration of a stages.jsonl line, or -1 for a line that is not one of ours (a torn last
// line of a killed run).
int64_t LineIteration(const std::string& line) {
  Result<Json> json = ParseJson(line, "stage line");
  if (!json.ok() || !json->is_object() || !json->contains("iteration") ||
      !(*json)["iteration"].is_number_integer()) {
    return -1;
  }
  return (*json)["iteration"].get<int64_t>();
}

}  // namespace

Status RunDirectory::StartFresh() {
  std::error_code ec;
  fs::remove_all(checkpoint_dir(), ec);
  for (const char* old : {"model.pb", "last_model.pb", "summary.json"})
    fs::remove(dir_ + "/" + old, ec);
  fs::create_directories(checkpoint_dir(), ec);
  if (ec) return Status::IoError("cannot create run directory " + dir_ + ": " + ec.message());
  return WriteFileAtomically(stages_path(), "");
}

Result<CheckpointState> RunDirectory::Resume(
    pb::QuantizedModel* model, pb::QuantizedModel* kept,
    const std::function<Status(const CheckpointState&)>& accept) {
  if (!fs::exists(state_path())) {
    return Status::NotFound("--resume: no checkpoint in " + checkpoint_dir() +
                            " (run without --resume to start)");
  }
  R2F_ASSIGN_OR_RETURN(CheckpointState state, ReadState(state_path()));
  if (accept) R2F_RETURN_IF_ERROR(accept(state));
  std::string model_file = VersionedFile("model", state.model_version);
  std::error_code ec;
  if (!fs::exists(model_file, ec) && fs::exists(checkpoint_dir() + "/model.pb", ec)) {
    model_file = checkpoint_dir() + "/model.pb";  // a checkpoint before versioned files
  }
  R2F_ASSIGN_OR_RETURN(*model, LoadQuantizedModelFile(model_file));
  if (model->model_version() != state.model_version) {
    return Status::Corruption("checkpoint model has version " +
                              std::to_string(model->model_version()) + ", state says " +
                              std::to_string(state.model_version));
  }
  if (state.kept_iteration >= 0) {
    R2F_ASSIGN_OR_RETURN(*kept,
                         LoadQuantizedModelFile(VersionedFile("kept", state.kept_model_version)));
    if (kept->model_version() != state.kept_model_version) {
      return Status::Corruption("checkpoint kept model has version " +
                                std::to_string(kept->model_version()) + ", state says " +
                                std::to_string(state.kept_model_version));
    }
  }
  // Keep the stage lines of the iterations the checkpoint holds; later ones are redone.
  std::ifstream in(stages_path());
  std::string kept_lines, line;
  while (std::getline(in, line)) {
    const int64_t it = LineIteration(line);
    if (it >= 0 && it <= state.last_iteration) kept_lines += line + "\n";
  }
  R2F_RETURN_IF_ERROR(WriteFileAtomically(stages_path(), kept_lines));
  return state;
}

Result<TimingTotals> RunDirectory::ReplayStages() const {
  TimingTotals totals;
  std::ifstream in(stages_path());
  std::string line;
  while (std::getline(in, line)) {
    if (LineIteration(line) < 0) continue;
    R2F_ASSIGN_OR_RETURN(IterationTiming kept, IterationTimingFromJson(line));
    totals.Add(kept);
  }
  return totals;
}

Status RunDirectory::AppendStage(const IterationTiming& timing,
                                 const std::map<std::string, double>& extra) {
  if (!stages_.is_open()) stages_.open(stages_path(), std::ios::app);
  stages_ << ToJsonLine(timing, extra) << "\n";
  stages_.flush();
  if (!stages_) return Status::IoError("cannot append to " + stages_path());
  return Status::Ok();
}

Status RunDirectory::SaveCheckpoint(const CheckpointState& state, const pb::QuantizedModel& model,
                                    const pb::QuantizedModel* kept) const {
  R2F_RETURN_IF_ERROR(
      WriteFileAtomically(VersionedFile("model", state.model_version), model.SerializeAsString()));
  if (kept != nullptr) {
    R2F_RETURN_IF_ERROR(WriteFileAtomically(VersionedFile("kept", state.kept_model_version),
                                            kept->SerializeAsString()));
  }
  R2F_RETURN_IF_ERROR(WriteFileAtomically(state_path(), StateYaml(state)));
  // The state now names these files: the earlier checkpoint's go.
  const std::string keep[] = {
      fs::path(VersionedFile("model", state.model_version)).filename().string(),
      fs::path(VersionedFile("kept", state.kept_model_version)).filename().string(),
      fs::path(trainer_prefix(state.model_version)).filename().string() + ".", "state.yaml"};
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(checkpoint_dir(), ec)) {
    const std::string name = e.path().filename().string();
    bool needed = false;
    for (const std::string& k : keep)
      needed |= name == k || (k.back() == '.' && name.rfind(k, 0) == 0);
    if (!needed && name.find(".tmp") == std::string::npos) fs::remove(e.path(), ec);
  }
  return Status::Ok();
}

Status RunDirectory::WriteFinalModel(const pb::QuantizedModel& model) const {
  return WriteFileAtomically(final_model_path(), model.SerializeAsString());
}

std::string RunDirectory::VersionedFile(const char* what, uint64_t version) const {
  return checkpoint_dir() + "/" + what + "-" + std::to_string(version) + ".pb";
}

std::string RunDirectory::trainer_prefix(uint64_t model_version) const {
  const std::string versioned = checkpoint_dir() + "/trainer-" + std::to_string(model_version);
  const std::string old = checkpoint_dir() + "/trainer";  // checkpoints before versioned files
  std::error_code ec;
  return !fs::exists(versioned + ".weights.pt", ec) && fs::exists(old + ".weights.pt", ec)
             ? old
             : versioned;
}

Status RunDirectory::WriteLastModel(const pb::QuantizedModel& model) const {
  return WriteFileAtomically(dir_ + "/last_model.pb", model.SerializeAsString());
}

Status RunDirectory::WriteSummary(const std::string& json) const {
  return WriteFileAtomically(dir_ + "/summary.json", json);
}

}  // namespace r2f
