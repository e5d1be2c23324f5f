// The Table-I names of the conversion APIs (server/r2f_server_api.h). Kept in their own file so
// that only this translation unit pays for LibTorch's headers.
#include "server/quantize.h"
#include "server/r2f_server_api.h"

namespace r2f {

Result<pb::QuantizedModel> convertFloat2Int(GraphModule& folded, const QuantFormat& format,
                                            const InputNormalization& norm,
                                            uint64_t model_version) {
  return ConvertFloat2Int(folded, format, norm, model_version);
}

Result<FloatModel> convertInt2Float(const pb::QuantizedModel& model) {
  return ConvertInt2Float(model);
}

}  // namespace r2f
