// Small helpers shared by the tests.
#pragma once

#include <string>
#include <vector>

namespace r2f::testing {

// A fresh directory under $TMPDIR that is removed with the object.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& contents);
// The lines of a file that are not empty (a missing file has none).
std::vector<std::string> NonEmptyLines(const std::string& path);
// Replaces every `from` in *s by `to`; how many were replaced.
size_t ReplaceAll(std::string* s, const std::string& from, const std::string& to);
std::string ReadFile(const std::string& path);
// The last `bytes` of `text` ("..." first when cut): a log's end in a failure message.
inline std::string Tail(const std::string& text, size_t bytes) {
  return text.size() <= bytes ? text : "..." + text.substr(text.size() - bytes);
}

inline std::string SourceDir() { return R2F_SOURCE_DIR; }
inline std::string BinDir() { return R2F_BIN_DIR; }

}  // namespace r2f::testing
