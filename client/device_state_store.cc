#include "client/device_state_store.h"

#include <filesystem>

#include "common/base/atomic_file.h"
#include "common/ir/model_file.h"

namespace r2f {
namespace {

template <typename Proto>
Result<Proto> LoadProto(const std::string& path, uint64_t max_bytes, const std::string& what) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Status::NotFound("no " + what);
  Proto proto;
  R2F_RETURN_IF_ERROR(ReadProtoFile(path, max_bytes, what, &proto, /*empty_is_valid=*/true));
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
  return LoadProto<pb::QuantizedModel>(model_path(), max_bytes, "saved model");
}

Result<pb::SetAIoTModeRequest> DeviceStateStore::LoadMode() const {
  if (!persistent()) return Status::NotFound("no state directory");
  return LoadProto<pb::SetAIoTModeRequest>(mode_path(), 1 << 20, "saved mode");
}

}  // namespace r2f
