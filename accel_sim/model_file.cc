#include "accel_sim/model_file.h"

#include <cstdint>
#include <vector>

#include "common/compressed_file.h"

namespace r2f::accel {

Result<pb::QuantizedModel> LoadQuantizedModelFile(const std::string& path) {
  constexpr size_t kMaxModelBytes = size_t{1} << 30;
  R2F_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadFileMaybeGzip(path, kMaxModelBytes));
  // An empty file parses as an empty message: say what is wrong instead of a format error.
  if (bytes.empty()) return Status::Corruption("model file '" + path + "' is empty");
  pb::QuantizedModel model;
  if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Status::Corruption("model file '" + path + "' is not a QuantizedModel protobuf");
  }
  return model;
}

}  // namespace r2f::accel
