// Reading a deployed model (pb::QuantizedModel) from a file, as r2f_sim and the device do.
#pragma once

#include <string>

#include "common/status.h"
#include "r2f.pb.h"

namespace r2f::accel {

// The model in `path` (binary protobuf, optionally gzip-compressed). Errors name the file:
// NotFound (missing), Corruption (empty, damaged gzip, or not a QuantizedModel protobuf),
// ResourceExhausted (over 1 GiB). The model itself is validated later, by Accelerator::Create.
Result<pb::QuantizedModel> LoadQuantizedModelFile(const std::string& path);

}  // namespace r2f::accel
