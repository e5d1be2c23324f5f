// YAML configuration with validation.
//
// Each config struct of R2F reads itself from a ConfigMap, one typed getter per key. The map
// remembers which keys were read, so Finish() can reject keys nobody asked for (typos). Every
// error names the file, the line and the key path:
//   configs/retrain/quick.yaml:12: key 'fault.ber': must be in [0, 1], got 3
//   configs/retrain/quick.yaml:3: key 'fualt': unknown key, did you mean 'fault'? (known: ...)
// Getters never throw; errors are kept and Finish() returns the first (unknown keys before the
// rest, see there); a getter that fails returns its default so that parsing code stays linear.
//
// Contracts for parsing code:
//  - Read every key the struct accepts, whatever the values of other keys are: a key that no
//    getter asked for is reported as unknown. Has() does not count as reading.
//  - Types are strict (YAML 1.2 core schema, minus the exotic forms): integers are plain
//    decimal ("12", "-3"); numbers may also be "0.5", "1e-4", ".5"; booleans are true/false;
//    a quoted scalar ("3") is a string, never a number. A key without a value (`key:`) is an
//    error for scalar and list getters and an empty mapping for Section().
//  - Duplicate keys and non-string keys are rejected when the text is loaded.
// A ConfigMap is not thread-safe; copies and sections share one error/usage record.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"

namespace r2f {

class ConfigMap {
 public:
  // Loads a YAML file whose top level must be a mapping (an empty file is an empty mapping).
  // NotFound "cannot read config file '<path>': <reason>" when the file cannot be read;
  // InvalidArgument "<path>:<line>: <yaml-cpp message>" for a syntax error.
  static Result<ConfigMap> LoadFile(const std::string& path);
  // Parses YAML text; `origin` stands in for the file name in messages.
  static Result<ConfigMap> LoadString(const std::string& yaml, const std::string& origin);

  ConfigMap(const ConfigMap&);
  ConfigMap& operator=(const ConfigMap&);
  ConfigMap(ConfigMap&&) noexcept;
  ConfigMap& operator=(ConfigMap&&) noexcept;
  ~ConfigMap();

  // True when the key is present (even without a value). Does not mark the key as known.
  bool Has(const std::string& key) const;
  // The keys of this mapping, in file order (for mappings keyed by name, such as a fleet's
  // per-device overrides). Does not mark them as known.
  std::vector<std::string> Keys() const;

  // Optional keys: the default when absent. Range and choice checks apply to present values;
  // ranges are inclusive. `def` is not checked (the caller's constant).
  std::string GetString(const std::string& key, const std::string& def);
  std::string GetChoice(const std::string& key, const std::string& def,
                        const std::vector<std::string>& allowed);
  int64_t GetInt(const std::string& key, int64_t def, int64_t min, int64_t max);
  double GetDouble(const std::string& key, double def, double min, double max);
  bool GetBool(const std::string& key, bool def);
  std::vector<int64_t> GetIntList(const std::string& key, const std::vector<int64_t>& def,
                                  int64_t min, int64_t max);
  std::vector<double> GetDoubleList(const std::string& key, const std::vector<double>& def,
                                    double min, double max);
  std::vector<std::string> GetStringList(const std::string& key,
                                         const std::vector<std::string>& def);

  // Required keys: an error when absent or empty.
  std::string RequireString(const std::string& key);

  // A nested mapping (an empty one when absent). Its keys are checked by the parent's Finish().
  // Asking for the same section twice gives views of the same mapping.
  ConfigMap Section(const std::string& key);

  // Records an error of the caller's own making (a cross-field check), located at `key` (its
  // line when present, else the line of this mapping).
  void Fail(const std::string& key, const std::string& what);

  // Checks for unknown keys (recursively over the sections handed out from this map) and
  // returns the first error under this map, if any. Unknown keys come first (ordered by line):
  // a misspelt section name is the likely cause of later "required key is missing" errors.
  // Idempotent.
  Status Finish();

  const std::string& origin() const;

 private:
  struct State;  // defined in config.cc: the YAML tree, the keys read per mapping, the errors
  ConfigMap(std::shared_ptr<State> root, std::vector<std::string> path);

  std::shared_ptr<State> root_;
  std::vector<std::string> path_;  // {"fault"} for a section named fault; empty for the root
};

}  // namespace r2f
