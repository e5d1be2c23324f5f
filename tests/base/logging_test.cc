#include "common/base/logging.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/test_util.h"

namespace r2f {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class LoggingTest : public ::testing::Test {
 protected:
  // Later tests in this binary expect the default set-up.
  void TearDown() override { ASSERT_TRUE(InitLogging("info", "").ok()); }
};

TEST_F(LoggingTest, RejectsUnknownLevel) {
  Status st = InitLogging("verbose", "");
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("'verbose'"));
}

TEST_F(LoggingTest, WritesComponentAndLevelToTheFile) {
  r2f::testing::TempDir dir;
  const std::string path = dir.File("logs/r2f.log");  // the directory is created
  auto early = GetLogger("early");  // obtained before InitLogging: must follow the new sinks
  ASSERT_TRUE(InitLogging("debug", path).ok());
  early->info("hello {}", 42);
  GetLogger("mqtt")->debug("connected");
  GetLogger("mqtt")->trace("too detailed");
  spdlog::warn("through the default logger");
  std::string text = r2f::testing::ReadFile(path);
  EXPECT_THAT(text, HasSubstr("[info] [early] hello 42"));
  EXPECT_THAT(text, HasSubstr("[debug] [mqtt] connected"));
  EXPECT_THAT(text, HasSubstr("[warning] [r2f] through the default logger"));
  EXPECT_THAT(text, Not(HasSubstr("too detailed")));

  ASSERT_TRUE(InitLogging("error", path).ok());
  GetLogger("mqtt")->warn("filtered out");
  EXPECT_THAT(r2f::testing::ReadFile(path), Not(HasSubstr("filtered out")));
}

TEST_F(LoggingTest, UnopenableFileIsAnError) {
  r2f::testing::TempDir dir;
  r2f::testing::WriteFile(dir.File("plain"), "x");
  Status st = InitLogging("info", dir.File("plain") + "/sub/log.txt");  // parent is a file
  EXPECT_EQ(st.code(), Status::Code::kIoError);
}

TEST(RedactSecretTest, HidesValueAndLength) {
  EXPECT_EQ(RedactSecret("hunter2"), "***");
  EXPECT_EQ(RedactSecret("a-much-longer-secret-token"), "***");
  EXPECT_EQ(RedactSecret(""), "");
}

}  // namespace
}  // namespace r2f
