// What a device keeps across restarts: the deployed model and the mode set by setAIoTMode, one
// file each under the state directory (model.pb, mode.pb), each replaced atomically
// (common/base/atomic_file.h). A device killed at any point restarts with either the old or the new
// version of each, never a torn file, so a retried deployModel finds a consistent state.
#pragma once

#include <cstdint>
#include <string>

#include "common/base/status.h"
#include "r2f.pb.h"

namespace r2f {

class DeviceStateStore {
 public:
  // `dir` empty: nothing is persisted (Save* succeed and do nothing, Load* find nothing).
  explicit DeviceStateStore(std::string dir) : dir_(std::move(dir)) {}

  Status SaveModel(const pb::QuantizedModel& model) const;
  Status SaveMode(const pb::SetAIoTModeRequest& mode) const;

  // NotFound when nothing was saved; Corruption naming the file when it does not parse;
  // ResourceExhausted when it is larger than `max_bytes`.
  Result<pb::QuantizedModel> LoadModel(uint64_t max_bytes) const;
  Result<pb::SetAIoTModeRequest> LoadMode() const;

  std::string model_path() const { return dir_ + "/model.pb"; }
  std::string mode_path() const { return dir_ + "/mode.pb"; }
  bool persistent() const { return !dir_.empty(); }

 private:
  std::string dir_;
};

}  // namespace r2f
