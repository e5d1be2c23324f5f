// Reading protobuf files from disk: the one loader of deployed models (pb::QuantizedModel) that
// r2f_sim, the device daemon, the server commands and the retraining checkpoints all use.
#pragma once

#include <cstdint>
#include <string>

#include "common/base/status.h"
#include "r2f.pb.h"

namespace google::protobuf {
class MessageLite;
}

namespace r2f {

// Largest model file read: far above any network of the zoo, low enough that a corrupt file
// fails cleanly.
inline constexpr uint64_t kMaxModelFileBytes = uint64_t{1} << 30;

// Parses the file at `path` (binary protobuf, optionally gzip-compressed) into *out; `what`
// names the message in errors ("model file", "saved mode"). Errors name the file: NotFound
// (missing), Corruption (damaged gzip, not a `what`, or empty unless `empty_is_valid`: a message
// whose fields all have their defaults serialises to nothing), ResourceExhausted (over
// max_bytes).
Status ReadProtoFile(const std::string& path, uint64_t max_bytes, const std::string& what,
                     google::protobuf::MessageLite* out, bool empty_is_valid = false);

// The model in `path`. The model itself is validated later, by accel::Accelerator::Create.
Result<pb::QuantizedModel> LoadQuantizedModelFile(const std::string& path,
                                                  uint64_t max_bytes = kMaxModelFileBytes);

}  // namespace r2f
