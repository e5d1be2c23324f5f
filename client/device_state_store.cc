#include "client/device_state_store.h"

#include <filesystem>

#include "common/atomic_file.h"
#include "common/compressed_file.h"

namespace r2f {
namespace {

template <typename Proto>
Result<Proto> LoadProto(const std::string& path, uint64_t max_bytes, const char* what) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Status::NotFound("no saved " + std::string(what));
  R2F_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadFileMaybeGzip(path, max_bytes));
  Proto proto;
  if (!proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Status::Corruption("saved " + std::string(what) + " '" + path +
                              "' is not a valid protobuf (" + std::to_string(bytes.size()) +
                              " bytes)");
  }
  return proto;
}

}  // namespace

Status DeviceStateStore::SaveModel(const pb::QuantizedModel& model) const {
  if (!persistent()) return Status::Ok();
  return WriteFileAtomically(model_path(), model.SerializeAsString());
}

Status DeviceStateStore::SaveMode(const pb::SetAIoTModeRequest& mode) const {
  if (!persistent()) return Status::Ok();
  return WriteFileAtomically(mode_path(), mode.SerializeAsString());
}

Result<pb::QuantizedModel> DeviceStateStore::LoadModel(uint64_t max_bytes) const {
  if (!persistent()) return Status::NotFound("no state directory");
  return LoadProto<pb::QuantizedModel>(model_path(), max_bytes, "model");
}

Result<pb::SetAIoTModeRequest> DeviceStateStore::LoadMode() const {
  if (!persistent()) return Status::NotFound("no state directory");
  return LoadProto<pb::SetAIoTModeRequest>(mode_path(), 1 << 20, "mode");
}

}  // namespace r2f
