// JSON for every file and line R2F writes or reads (summary.json, stages.jsonl, search.json,
// pretrain.json, fleet.json, r2f_sim --json): nlohmann::json, one library for all of them
// (docs/libraries.md says why). Include this in .cc files only: the header is large, and the
// public headers that mention JSON use <nlohmann/json_fwd.hpp>.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/base/status.h"

namespace r2f {

// Objects keep their keys in the order they were written, so files read like their code.
using Json = nlohmann::ordered_json;

// The text of `value`: one line (indent < 0) or indented. Strings are escaped; bytes that are
// not UTF-8 (a config path or device id can hold any byte) become U+FFFD instead of an error, so
// the output is always valid JSON. Non-finite numbers become null.
std::string DumpJson(const Json& value, int indent = -1);

// Parses `text`; Corruption naming `what` (a file, "stage line 3") and the parser's complaint.
Result<Json> ParseJson(std::string_view text, const std::string& what);

// Reads and parses the file at `path` (at most max_bytes); NotFound if it does not exist.
Result<Json> ReadJsonFile(const std::string& path, size_t max_bytes = 64u << 20);

}  // namespace r2f
