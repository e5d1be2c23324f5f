#include "common/base/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <utility>

#include "common/base/config_scalar.h"

namespace r2f {
namespace {

using Path = std::vector<std::string>;

// yaml-cpp marks are 0-based; a node without a position (an absent value) gets `fallback`.
int LineOf(const YAML::Node& node, int fallback) {
  const YAML::Mark mark = node.Mark();
  return mark.is_null() ? fallback : mark.line + 1;
}

// A quoted scalar has the non-specific tag "!"; a plain one has "?".
bool IsQuoted(const YAML::Node& node) { return node.IsScalar() && node.Tag() == "!"; }

// How a wrong value reads in a message: "'abc'", "a list", "nothing".
std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "'" + Abbreviate(node.Scalar()) + "'" + (IsQuoted(node) ? " (a quoted string)" : "");
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

std::string JoinPath(const Path& path) {
  std::string out;
  for (const std::string& part : path) {
    if (!out.empty() && part[0] != '[') out += '.';
    out += part;
  }
  return out;
}

bool IsUnder(const Path& path, const Path& prefix) {
  return path.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), path.begin());
}

std::string Located(const std::string& origin, int line, const std::string& key_path,
                    const std::string& what) {
  std::string out = origin + ":" + std::to_string(line) + ": ";
  if (!key_path.empty()) out += "key '" + key_path + "': ";
  return out + what;
}

// Converters: "" on success, else the complaint about the value.
std::string ToString(const YAML::Node& node, std::string* out) {
  if (!node.IsScalar()) return "expected a string, got " + Describe(node);
  *out = node.Scalar();
  return "";
}

std::string ToInt(const YAML::Node& node, int64_t* out) {
  if (!node.IsScalar() || IsQuoted(node)) return "expected an integer, got " + Describe(node);
  switch (ParseDecimalInt(node.Scalar(), out)) {
    case ScalarParse::kOk:
      return "";
    case ScalarParse::kOutOfRange:
      return "integer out of range, got " + Describe(node);
    case ScalarParse::kBadSyntax:
      break;
  }
  return "expected an integer, got " + Describe(node);
}

std::string ToDouble(const YAML::Node& node, double* out) {
  if (!node.IsScalar() || IsQuoted(node)) return "expected a number, got " + Describe(node);
  switch (ParseDecimalDouble(node.Scalar(), out)) {
    case ScalarParse::kOk:
      return "";
    case ScalarParse::kOutOfRange:
      return "number out of range, got " + Describe(node);
    case ScalarParse::kBadSyntax:
      break;
  }
  return "expected a number, got " + Describe(node);
}

std::string ToBool(const YAML::Node& node, bool* out) {
  if (node.IsScalar() && !IsQuoted(node)) {
    if (node.Scalar() == "true") {
      *out = true;
      return "";
    }
    if (node.Scalar() == "false") {
      *out = false;
      return "";
    }
  }
  return "expected true or false, got " + Describe(node);
}

template <typename T>
std::string CheckRange(const YAML::Node& node, T value, T lo, T hi) {
  if (value >= lo && value <= hi) return "";
  return RangeText(lo, hi) + ", got " + Abbreviate(node.Scalar());
}

// Load-time checks yaml-cpp does not make: keys are strings and unique within a mapping.
Status CheckKeys(const YAML::Node& node, const Path& path, const std::string& origin) {
  if (node.IsMap()) {
    std::map<std::string, int> seen;  // key -> line
    for (auto it = node.begin(); it != node.end(); ++it) {
      const int line = LineOf(it->first, 1);
      if (!it->first.IsScalar()) {
        std::string where = path.empty() ? "" : " in '" + JoinPath(path) + "'";
        return Status::InvalidArgument(Located(
            origin, line, "", "keys must be strings" + where + ", got " + Describe(it->first)));
      }
      Path child = path;
      child.push_back(it->first.Scalar());
      auto [pos, inserted] = seen.emplace(it->first.Scalar(), line);
      if (!inserted) {
        return Status::InvalidArgument(
            Located(origin, line, JoinPath(child),
                    "duplicate key (first given on line " + std::to_string(pos->second) + ")"));
      }
      R2F_RETURN_IF_ERROR(CheckKeys(it->second, child, origin));
    }
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) {
      Path child = path;
      child.push_back("[" + std::to_string(i) + "]");
      R2F_RETURN_IF_ERROR(CheckKeys(node[i], child, origin));
    }
  }
  return Status::Ok();
}

}  // namespace

struct ConfigMap::State {
  // One mapping handed out (the root or a section). Nodes are only ever copy-constructed:
  // assigning to a yaml-cpp Node that refers into a tree rewrites the tree.
  struct Tracked {
    YAML::Node node;                // a Map, or Null for an absent/empty/ill-typed section
    int line;                       // where "missing key" errors in this mapping point
    std::vector<std::string> read;  // keys asked for, in order of first request
  };
  struct Error {
    Path path;  // the mapping's path plus the key (and "[i]" for a list element)
    std::string message;
  };
  struct Entry {
    YAML::Node value;
    int key_line;
  };

  std::string origin;
  std::map<Path, Tracked> maps;
  std::vector<Error> errors;  // in order of occurrence

  Tracked& At(const Path& path) { return maps.at(path); }

  std::optional<Entry> Find(const Path& path, const std::string& key, bool mark_read) {
    Tracked& t = At(path);
    if (mark_read && std::find(t.read.begin(), t.read.end(), key) == t.read.end()) {
      t.read.push_back(key);
    }
    const YAML::Node& node = t.node;
    if (!node.IsMap()) return std::nullopt;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (it->first.Scalar() == key) return Entry{it->second, LineOf(it->first, t.line)};
    }
    return std::nullopt;
  }

  void Fail(const Path& path, const std::string& key, int index, int line,
            const std::string& what) {
    Path where = path;
    where.push_back(key);
    if (index >= 0) where.push_back("[" + std::to_string(index) + "]");
    errors.push_back(Error{where, Located(origin, line, JoinPath(where), what)});
  }

  // Reads `key` with `convert`, then `check`s it; the default on any error.
  template <typename T, typename Convert, typename Check>
  T Get(const Path& path, const std::string& key, T def, Convert convert, Check check) {
    std::optional<Entry> e = Find(path, key, true);
    if (!e) return def;
    T value{};
    std::string what = convert(e->value, &value);
    if (what.empty()) what = check(e->value, value);
    if (!what.empty()) {
      Fail(path, key, -1, e->key_line, what);
      return def;
    }
    return value;
  }

  // Reads a list of `key` elements with `convert` and `check` per element.
  template <typename T, typename Convert, typename Check>
  std::vector<T> GetList(const Path& path, const std::string& key, const std::vector<T>& def,
                         const char* noun, Convert convert, Check check) {
    std::optional<Entry> e = Find(path, key, true);
    if (!e) return def;
    if (!e->value.IsSequence()) {
      Fail(path, key, -1, e->key_line,
           std::string("expected a list of ") + noun + ", got " + Describe(e->value));
      return def;
    }
    const YAML::Node& list = e->value;  // const: operator[] must not insert
    std::vector<T> out;
    for (size_t i = 0; i < list.size(); ++i) {
      const YAML::Node element = list[i];
      T value{};
      std::string what = convert(element, &value);
      if (what.empty()) what = check(element, value);
      if (!what.empty()) {
        Fail(path, key, static_cast<int>(i), LineOf(element, e->key_line), what);
        return def;
      }
      out.push_back(value);
    }
    return out;
  }
};

ConfigMap::ConfigMap(std::shared_ptr<State> root, std::vector<std::string> path)
    : root_(std::move(root)), path_(std::move(path)) {}
ConfigMap::ConfigMap(const ConfigMap&) = default;
ConfigMap& ConfigMap::operator=(const ConfigMap&) = default;
ConfigMap::ConfigMap(ConfigMap&&) noexcept = default;
ConfigMap& ConfigMap::operator=(ConfigMap&&) noexcept = default;
ConfigMap::~ConfigMap() = default;

Result<ConfigMap> ConfigMap::LoadFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return Status::NotFound("cannot read config file '" + path + "': " + std::strerror(errno));
  }
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (failed) {
    return Status::NotFound("cannot read config file '" + path + "': " + std::strerror(err));
  }
  return LoadString(text, path);
}

Result<ConfigMap> ConfigMap::LoadString(const std::string& yaml, const std::string& origin) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(yaml);
  } catch (const YAML::Exception& e) {
    // e.msg is yaml-cpp's bare message; e.what() would repeat the position in its own words.
    if (e.mark.is_null()) return Status::InvalidArgument(origin + ": " + e.msg);
    return Status::InvalidArgument(Located(origin, e.mark.line + 1, "", e.msg));
  } catch (const std::exception& e) {
    return Status::InvalidArgument(origin + ": cannot parse YAML: " + e.what());
  }
  if (docs.size() > 1) {
    return Status::InvalidArgument(
        Located(origin, LineOf(docs[1], 1), "",
                "holds " + std::to_string(docs.size()) + " YAML documents; expected one"));
  }
  const YAML::Node root = docs.empty() ? YAML::Node() : docs[0];
  if (!root.IsMap() && !root.IsNull()) {
    const std::string what =
        "the top level must be a mapping (key: value lines), got " + Describe(root);
    return Status::InvalidArgument(Located(origin, LineOf(root, 1), "", what));
  }
  R2F_RETURN_IF_ERROR(CheckKeys(root, {}, origin));

  auto state = std::make_shared<State>();
  state->origin = origin;
  state->maps.emplace(Path{}, State::Tracked{root, 1, {}});
  return ConfigMap(std::move(state), {});
}

bool ConfigMap::Has(const std::string& key) const {
  return root_->Find(path_, key, false).has_value();
}

std::string ConfigMap::GetString(const std::string& key, const std::string& def) {
  return root_->Get<std::string>(path_, key, def, ToString,
                                 [](const YAML::Node&, const std::string&) { return ""; });
}

std::string ConfigMap::GetChoice(const std::string& key, const std::string& def,
                                 const std::vector<std::string>& allowed) {
  auto check = [&allowed](const YAML::Node& node, const std::string& value) -> std::string {
    if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return "";
    std::string what = "must be one of {" + JoinComma(allowed) + "}, got " + Describe(node);
    std::string guess = ClosestMatch(value, allowed);
    if (!guess.empty()) what += "; did you mean '" + guess + "'?";
    return what;
  };
  return root_->Get<std::string>(path_, key, def, ToString, check);
}

int64_t ConfigMap::GetInt(const std::string& key, int64_t def, int64_t min, int64_t max) {
  return root_->Get<int64_t>(path_, key, def, ToInt, [&](const YAML::Node& node, int64_t v) {
    return CheckRange(node, v, min, max);
  });
}

double ConfigMap::GetDouble(const std::string& key, double def, double min, double max) {
  return root_->Get<double>(path_, key, def, ToDouble, [&](const YAML::Node& node, double v) {
    return CheckRange(node, v, min, max);
  });
}

bool ConfigMap::GetBool(const std::string& key, bool def) {
  return root_->Get<bool>(path_, key, def, ToBool,
                          [](const YAML::Node&, bool) { return std::string(); });
}

std::vector<int64_t> ConfigMap::GetIntList(const std::string& key, const std::vector<int64_t>& def,
                                           int64_t min, int64_t max) {
  return root_->GetList<int64_t>(
      path_, key, def, "integers", ToInt,
      [&](const YAML::Node& node, int64_t v) { return CheckRange(node, v, min, max); });
}

std::vector<double> ConfigMap::GetDoubleList(const std::string& key, const std::vector<double>& def,
                                             double min, double max) {
  return root_->GetList<double>(
      path_, key, def, "numbers", ToDouble,
      [&](const YAML::Node& node, double v) { return CheckRange(node, v, min, max); });
}

std::vector<std::string> ConfigMap::GetStringList(const std::string& key,
                                                  const std::vector<std::string>& def) {
  return root_->GetList<std::string>(
      path_, key, def, "strings", ToString,
      [](const YAML::Node&, const std::string&) { return std::string(); });
}

std::string ConfigMap::RequireString(const std::string& key) {
  if (!root_->Find(path_, key, true)) {
    root_->Fail(path_, key, -1, root_->At(path_).line, "required key is missing");
    return "";
  }
  return root_->Get<std::string>(
      path_, key, "", ToString,
      [](const YAML::Node&, const std::string& v) { return v.empty() ? "must not be empty" : ""; });
}

ConfigMap ConfigMap::Section(const std::string& key) {
  Path child = path_;
  child.push_back(key);
  std::optional<State::Entry> e = root_->Find(path_, key, true);
  if (root_->maps.count(child) == 0) {
    const bool is_map = e && e->value.IsMap();
    if (e && !is_map && !e->value.IsNull()) {
      root_->Fail(path_, key, -1, e->key_line, "expected a mapping, got " + Describe(e->value));
    }
    const int line = e ? e->key_line : root_->At(path_).line;
    root_->maps.emplace(child, State::Tracked{is_map ? e->value : YAML::Node(), line, {}});
  }
  return ConfigMap(root_, std::move(child));
}

void ConfigMap::Fail(const std::string& key, const std::string& what) {
  std::optional<State::Entry> e = root_->Find(path_, key, false);
  root_->Fail(path_, key, -1, e ? e->key_line : root_->At(path_).line, what);
}

Status ConfigMap::Finish() {
  struct Unknown {
    int line;
    std::string message;
  };
  std::vector<Unknown> unknown;
  for (const auto& [path, tracked] : root_->maps) {
    if (!IsUnder(path, path_) || !tracked.node.IsMap()) continue;
    std::vector<std::string> known = tracked.read;
    std::sort(known.begin(), known.end());
    for (auto it = tracked.node.begin(); it != tracked.node.end(); ++it) {
      const std::string& key = it->first.Scalar();
      if (std::find(known.begin(), known.end(), key) != known.end()) continue;
      std::string what = "unknown key";
      std::string guess = ClosestMatch(key, known);
      if (!guess.empty()) what += ", did you mean '" + guess + "'?";
      what +=
          known.empty() ? " (this mapping takes no keys)" : " (known: " + JoinComma(known) + ")";
      Path where = path;
      where.push_back(key);
      const int line = LineOf(it->first, tracked.line);
      unknown.push_back(Unknown{line, Located(root_->origin, line, JoinPath(where), what)});
    }
  }
  if (!unknown.empty()) {
    std::stable_sort(unknown.begin(), unknown.end(),
                     [](const Unknown& a, const Unknown& b) { return a.line < b.line; });
    return Status::InvalidArgument(unknown.front().message);
  }
  for (const State::Error& e : root_->errors) {
    if (IsUnder(e.path, path_)) return Status::InvalidArgument(e.message);
  }
  return Status::Ok();
}

std::vector<std::string> ConfigMap::Keys() const {
  std::vector<std::string> keys;
  const YAML::Node& node = root_->At(path_).node;
  if (!node.IsMap()) return keys;
  for (auto it = node.begin(); it != node.end(); ++it) keys.push_back(it->first.Scalar());
  return keys;
}

const std::string& ConfigMap::origin() const { return root_->origin; }

}  // namespace r2f
