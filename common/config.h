// YAML configuration with validation.
//
// Each config struct of R2F reads itself from a ConfigMap, one typed getter per key. The map
// remembers which keys were read, so Finish() can reject keys nobody asked for (typos). Every
// error names the key path, the file and the line:
//   configs/retrain/quick.yaml:12: key 'fault.ber': must be in [0, 1], got 3
// Getters never throw; the first error is kept and returned by Finish() (later getters return
// their defaults so that parsing code stays linear).
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"

namespace YAML {
class Node;
}

namespace r2f {

class ConfigMap {
 public:
  // Loads a YAML file whose top level must be a mapping.
  static Result<ConfigMap> LoadFile(const std::string& path);
  // Parses YAML text; `origin` stands in for the file name in messages.
  static Result<ConfigMap> LoadString(const std::string& yaml, const std::string& origin);

  ConfigMap(const ConfigMap&);
  ConfigMap& operator=(const ConfigMap&);
  ConfigMap(ConfigMap&&) noexcept;
  ConfigMap& operator=(ConfigMap&&) noexcept;
  ~ConfigMap();

  bool Has(const std::string& key) const;

  // Optional keys: the default when absent. Range and choice checks apply to present values.
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

  // Required keys: an error when absent.
  std::string RequireString(const std::string& key);

  // A nested mapping (an empty one when absent). Its keys are checked by the parent's Finish().
  ConfigMap Section(const std::string& key);

  // Records an error of the caller's own making (a cross-field check), located at `key`.
  void Fail(const std::string& key, const std::string& what);

  // Checks for unknown keys (recursively over the sections handed out) and returns the first
  // error seen, if any.
  Status Finish();

  const std::string& origin() const;

 private:
  struct State;
  ConfigMap(std::shared_ptr<State> root, std::unique_ptr<YAML::Node> node, std::string prefix);
  std::shared_ptr<State> root_;
  std::unique_ptr<YAML::Node> node_;
  std::string prefix_;  // "fault." for a section named fault
};

}  // namespace r2f
