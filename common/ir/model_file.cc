#include "common/ir/model_file.h"

#include <google/protobuf/message_lite.h>

#include <vector>

#include "common/base/compressed_file.h"

namespace r2f {

Status ReadProtoFile(const std::string& path, uint64_t max_bytes, const std::string& what,
                     google::protobuf::MessageLite* out, bool empty_is_valid) {
  R2F_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadFileMaybeGzip(path, max_bytes));
  // An empty file parses as an empty message: unless that is a valid value, say what is wrong
  // instead of a format error.
  if (bytes.empty() && !empty_is_valid)
    return Status::Corruption(what + " '" + path + "' is empty");
  if (!out->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    std::string type = out->GetTypeName();  // "r2f.pb.QuantizedModel": the message name is enough
    type = type.substr(type.rfind('.') + 1);
    return Status::Corruption(what + " '" + path + "' is not a " + type + " protobuf (" +
                              std::to_string(bytes.size()) + " bytes)");
  }
  return Status::Ok();
}

Result<pb::QuantizedModel> LoadQuantizedModelFile(const std::string& path, uint64_t max_bytes) {
  pb::QuantizedModel model;
  R2F_RETURN_IF_ERROR(ReadProtoFile(path, max_bytes, "model file", &model));
  return model;
}

}  // namespace r2f
