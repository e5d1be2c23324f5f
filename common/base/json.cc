#include "common/base/json.h"

#include <vector>

#include "common/base/compressed_file.h"

namespace r2f {

std::string DumpJson(const Json& value, int indent) {
  return value.dump(indent, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

Result<Json> ParseJson(std::string_view text, const std::string& what) {
  // nlohmann reports the position and the reason only through its exception; it stays here.
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    return Status::Corruption(what + " is not valid JSON: " + e.what());
  }
}

Result<Json> ReadJsonFile(const std::string& path, size_t max_bytes) {
  R2F_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadFileMaybeGzip(path, max_bytes));
  return ParseJson(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                   "'" + path + "'");
}

}  // namespace r2f
