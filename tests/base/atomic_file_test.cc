// Atomic file replacement (common/base/atomic_file.h).
#include <gtest/gtest.h>

#include <filesystem>

#include "common/base/atomic_file.h"
#include "tests/support/test_util.h"

namespace r2f {
namespace {

TEST(AtomicFileTest, ReplacesWholeFilesAndCreatesDirectories) {
  testing::TempDir dir;
  const std::string path = dir.File("a/b/state.pb");
  ASSERT_TRUE(WriteFileAtomically(path, "first").ok());
  EXPECT_EQ(testing::ReadFile(path), "first");
  ASSERT_TRUE(WriteFileAtomically(path, std::string(100000, 'x')).ok());
  EXPECT_EQ(testing::ReadFile(path).size(), 100000u);
  // No temporary file is left behind.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.File("a/b"))) {
    files += entry.is_regular_file();
  }
  EXPECT_EQ(files, 1);
  Status st = WriteFileAtomically("/proc/r2f-no-such-dir/x", "y");
  EXPECT_EQ(st.code(), Status::Code::kIoError);
  EXPECT_NE(st.message().find("/proc/r2f-no-such-dir"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace r2f
