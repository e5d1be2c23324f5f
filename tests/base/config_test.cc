#include "common/base/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <limits>

#include "common/base/config_scalar.h"
#include "tests/support/test_util.h"

namespace r2f {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr int64_t kIntMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kIntMax = std::numeric_limits<int64_t>::max();

ConfigMap Load(const std::string& yaml) {
  Result<ConfigMap> map = ConfigMap::LoadString(yaml, "t.yaml");
  EXPECT_TRUE(map.ok()) << map.status().ToString();
  return std::move(map).value();
}

// The error Finish() reports for `yaml` after `read` has asked for its keys.
template <typename Read>
std::string FinishError(const std::string& yaml, Read read) {
  ConfigMap map = Load(yaml);
  read(map);
  Status st = map.Finish();
  EXPECT_FALSE(st.ok()) << "no error for:\n" << yaml;
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  return st.message();
}

TEST(ConfigTest, ValidConfigParsesToTheGivenValues) {
  ConfigMap map = Load(
      "name: dev-7\n"
      "threads: 4\n"
      "verbose: true\n"
      "quiet: false\n"
      "fault:\n"
      "  ber: 1e-4\n"
      "  model: bitflip\n"
      "  rates: [0.5, 2, 1.5e-3]\n"
      "  layers:\n"
      "    - 3\n"
      "    - -1\n"
      "  names: [conv1, \"fc\"]\n"
      "  nested:\n"
      "    depth: 2\n");
  EXPECT_EQ(map.GetString("name", ""), "dev-7");
  EXPECT_EQ(map.GetInt("threads", 1, 1, 64), 4);
  EXPECT_TRUE(map.GetBool("verbose", false));
  EXPECT_FALSE(map.GetBool("quiet", true));
  ConfigMap fault = map.Section("fault");
  EXPECT_DOUBLE_EQ(fault.GetDouble("ber", 0, 0, 1), 1e-4);
  EXPECT_EQ(fault.GetChoice("model", "none", {"none", "bitflip"}), "bitflip");
  EXPECT_EQ(fault.GetDoubleList("rates", {}, 0, 10), (std::vector<double>{0.5, 2, 1.5e-3}));
  EXPECT_EQ(fault.GetIntList("layers", {}, -1, 100), (std::vector<int64_t>{3, -1}));
  EXPECT_EQ(fault.GetStringList("names", {}), (std::vector<std::string>{"conv1", "fc"}));
  EXPECT_EQ(fault.Section("nested").GetInt("depth", 0, 0, 9), 2);
  EXPECT_TRUE(map.Finish().ok()) << map.Finish().ToString();
}

TEST(ConfigTest, AbsentKeysGiveDefaultsAndHasDoesNotCountAsReading) {
  ConfigMap map = Load("present: 1\n");
  EXPECT_TRUE(map.Has("present"));
  EXPECT_FALSE(map.Has("absent"));
  EXPECT_EQ(map.GetInt("absent", 42, 0, 100), 42);
  EXPECT_DOUBLE_EQ(map.GetDouble("absent_d", 0.25, 0, 1), 0.25);
  EXPECT_EQ(map.GetString("absent_s", "dflt"), "dflt");
  EXPECT_EQ(map.GetIntList("absent_l", {1, 2}, 0, 9), (std::vector<int64_t>{1, 2}));
  ConfigMap missing = map.Section("absent_section");
  EXPECT_EQ(missing.GetInt("x", 7, 0, 9), 7);
  // 'present' was only tested with Has(): still unknown.
  Status st = map.Finish();
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.message(), StartsWith("t.yaml:1: key 'present': unknown key"));
  map.GetInt("present", 0, 0, 9);
  EXPECT_TRUE(map.Finish().ok());
}

TEST(ConfigTest, EmptyTextIsAnEmptyMapping) {
  for (const char* text : {"", "# only a comment\n", "---\n"}) {
    Result<ConfigMap> map = ConfigMap::LoadString(text, "e.yaml");
    ASSERT_TRUE(map.ok()) << text << ": " << map.status().ToString();
    EXPECT_EQ(map->GetInt("k", 5, 0, 9), 5);
    EXPECT_TRUE(map->Finish().ok());
  }
}

TEST(ConfigTest, IntegersAndExponentsAreFineForDoubles) {
  ConfigMap map = Load("a: 3\nb: 1e-4\nc: -.5\nd: +2.5E+2\n");
  EXPECT_DOUBLE_EQ(map.GetDouble("a", 0, -10, 10), 3);
  EXPECT_DOUBLE_EQ(map.GetDouble("b", 0, -10, 10), 1e-4);
  EXPECT_DOUBLE_EQ(map.GetDouble("c", 0, -10, 10), -0.5);
  EXPECT_DOUBLE_EQ(map.GetDouble("d", 0, -1000, 1000), 250);
  EXPECT_TRUE(map.Finish().ok());
}

TEST(ConfigTest, UnknownTopLevelKeyNamesLineAndKnownKeys) {
  std::string msg = FinishError("model: resnet18\n\nfualt:\n  ber: 0.1\n", [](ConfigMap& m) {
    m.GetString("model", "");
    m.Section("fault").GetDouble("ber", 0, 0, 1);
  });
  EXPECT_EQ(msg, "t.yaml:3: key 'fualt': unknown key, did you mean 'fault'? (known: fault, model)");
}

TEST(ConfigTest, UnknownNestedKeyHasDottedPath) {
  std::string msg = FinishError("fault:\n  ber: 0.1\n  modle: x\n", [](ConfigMap& m) {
    ConfigMap f = m.Section("fault");
    f.GetDouble("ber", 0, 0, 1);
    f.GetString("model", "");
  });
  EXPECT_EQ(msg,
            "t.yaml:3: key 'fault.modle': unknown key, did you mean 'model'? (known: ber, model)");
}

TEST(ConfigTest, UnknownKeyTwoLevelsDownWithoutSuggestion) {
  std::string msg = FinishError("a:\n  b:\n    c: 1\n    zzzzzz: 2\n", [](ConfigMap& m) {
    m.Section("a").Section("b").GetInt("c", 0, 0, 9);
  });
  EXPECT_EQ(msg, "t.yaml:4: key 'a.b.zzzzzz': unknown key (known: c)");
}

TEST(ConfigTest, UnknownKeysAreReportedBeforeOtherErrorsAndInLineOrder) {
  std::string msg = FinishError("x: abc\nfualt: 1\nbad: 2\n", [](ConfigMap& m) {
    m.GetInt("x", 0, 0, 9);
    m.RequireString("fault");
  });
  EXPECT_THAT(msg, StartsWith("t.yaml:2: key 'fualt': unknown key"));
}

TEST(ConfigTest, WrongTypeMessages) {
  struct Case {
    std::string yaml;
    std::function<void(ConfigMap&)> read;
    std::string expected;
  };
  std::vector<Case> cases = {
      {"n: abc\n", [](ConfigMap& m) { m.GetDouble("n", 0, 0, 1); },
       "t.yaml:1: key 'n': expected a number, got 'abc'"},
      {"n: 0.5\n", [](ConfigMap& m) { m.GetInt("n", 0, 0, 9); },
       "t.yaml:1: key 'n': expected an integer, got '0.5'"},
      {"n: 1e3\n", [](ConfigMap& m) { m.GetInt("n", 0, 0, 9999); },
       "t.yaml:1: key 'n': expected an integer, got '1e3'"},
      {"n: \"3\"\n", [](ConfigMap& m) { m.GetInt("n", 0, 0, 9); },
       "t.yaml:1: key 'n': expected an integer, got '3' (a quoted string)"},
      {"n: .inf\n", [](ConfigMap& m) { m.GetDouble("n", 0, 0, 1); },
       "t.yaml:1: key 'n': expected a number, got '.inf'"},
      {"n: 99999999999999999999\n", [](ConfigMap& m) { m.GetInt("n", 0, kIntMin, kIntMax); },
       "t.yaml:1: key 'n': integer out of range, got '99999999999999999999'"},
      {"b: yes\n", [](ConfigMap& m) { m.GetBool("b", false); },
       "t.yaml:1: key 'b': expected true or false, got 'yes'"},
      {"b: True\n", [](ConfigMap& m) { m.GetBool("b", false); },
       "t.yaml:1: key 'b': expected true or false, got 'True'"},
      {"s:\n  x: 1\n", [](ConfigMap& m) { m.GetString("s", ""); },
       "t.yaml:1: key 's': expected a string, got a mapping"},
      {"s:\n", [](ConfigMap& m) { m.GetString("s", ""); },
       "t.yaml:1: key 's': expected a string, got nothing"},
      {"sec: 3\n", [](ConfigMap& m) { m.Section("sec"); },
       "t.yaml:1: key 'sec': expected a mapping, got '3'"},
      {"l: 3\n", [](ConfigMap& m) { m.GetIntList("l", {}, 0, 9); },
       "t.yaml:1: key 'l': expected a list of integers, got '3'"},
      {"l:\n  - 1\n  - x\n", [](ConfigMap& m) { m.GetDoubleList("l", {}, 0, 9); },
       "t.yaml:3: key 'l[1]': expected a number, got 'x'"},
      {"l: [a, [b]]\n", [](ConfigMap& m) { m.GetStringList("l", {}); },
       "t.yaml:1: key 'l[1]': expected a string, got a list"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(FinishError(c.yaml, c.read), c.expected) << c.yaml;
  }
}

TEST(ConfigTest, OutOfRangeMessages) {
  EXPECT_EQ(FinishError("fault:\n  model: x\n  ber: 3\n",
                        [](ConfigMap& m) {
                          ConfigMap f = m.Section("fault");
                          f.GetString("model", "");
                          f.GetDouble("ber", 0, 0, 1);
                        }),
            "t.yaml:3: key 'fault.ber': must be in [0, 1], got 3");
  EXPECT_EQ(FinishError("n: 0\n", [](ConfigMap& m) { m.GetInt("n", 1, 1, 64); }),
            "t.yaml:1: key 'n': must be in [1, 64], got 0");
  EXPECT_EQ(FinishError("n: -1\n", [](ConfigMap& m) { m.GetInt("n", 0, 0, kIntMax); }),
            "t.yaml:1: key 'n': must be >= 0, got -1");
  EXPECT_EQ(FinishError("x: 1e-7\n", [](ConfigMap& m) { m.GetDouble("x", 1, 1e-6, 10); }),
            "t.yaml:1: key 'x': must be in [1e-06, 10], got 1e-7");
  EXPECT_EQ(FinishError("l: [1, 2,\n  300]\n", [](ConfigMap& m) { m.GetIntList("l", {}, 0, 255); }),
            "t.yaml:2: key 'l[2]': must be in [0, 255], got 300");
}

TEST(ConfigTest, BadChoiceListsTheChoices) {
  EXPECT_EQ(FinishError("fmt: cifar\n",
                        [](ConfigMap& m) {
                          m.GetChoice("fmt", "idx", {"idx", "cifar10"});
                        }),
            "t.yaml:1: key 'fmt': must be one of {idx, cifar10}, got 'cifar'; did you mean "
            "'cifar10'?");
  EXPECT_EQ(FinishError("fmt: png\n",
                        [](ConfigMap& m) {
                          m.GetChoice("fmt", "idx", {"idx", "cifar10"});
                        }),
            "t.yaml:1: key 'fmt': must be one of {idx, cifar10}, got 'png'");
}

TEST(ConfigTest, MissingRequiredKeyPointsAtItsMapping) {
  EXPECT_EQ(FinishError("a: 1\n",
                        [](ConfigMap& m) {
                          m.GetInt("a", 0, 0, 9);
                          m.RequireString("device_id");
                        }),
            "t.yaml:1: key 'device_id': required key is missing");
  EXPECT_EQ(FinishError("a: 1\nbroker:\n  port: 1883\n",
                        [](ConfigMap& m) {
                          m.GetInt("a", 0, 0, 9);
                          ConfigMap b = m.Section("broker");
                          b.GetInt("port", 0, 1, 65535);
                          b.RequireString("host");
                        }),
            "t.yaml:2: key 'broker.host': required key is missing");
  EXPECT_EQ(FinishError("id: \"\"\n", [](ConfigMap& m) { m.RequireString("id"); }),
            "t.yaml:1: key 'id': must not be empty");
  ConfigMap ok = Load("id: dev-1\n");
  EXPECT_EQ(ok.RequireString("id"), "dev-1");
  EXPECT_TRUE(ok.Finish().ok());
}

TEST(ConfigTest, FirstErrorIsKeptAndLaterGettersReturnDefaults) {
  ConfigMap map = Load("a: x\nb: y\nc: 5\n");
  EXPECT_EQ(map.GetInt("a", 11, 0, 99), 11);
  EXPECT_EQ(map.GetInt("b", 22, 0, 99), 22);
  EXPECT_EQ(map.GetInt("c", 33, 0, 99), 5);
  Status st = map.Finish();
  EXPECT_EQ(st.message(), "t.yaml:1: key 'a': expected an integer, got 'x'");
  EXPECT_EQ(map.Finish().message(), st.message());  // idempotent
}

TEST(ConfigTest, FailRecordsCrossFieldErrorsAtTheKey) {
  ConfigMap map = Load("lo: 5\nhi: 2\n");
  int64_t lo = map.GetInt("lo", 0, 0, 9), hi = map.GetInt("hi", 0, 0, 9);
  if (lo > hi) map.Fail("hi", "must be >= lo (5)");
  EXPECT_EQ(map.Finish().message(), "t.yaml:2: key 'hi': must be >= lo (5)");
}

TEST(ConfigTest, SectionFinishReportsOnlyItsOwnErrors) {
  ConfigMap map = Load("top: x\nsec:\n  a: 1\n  b: 2\n");
  map.GetInt("top", 0, 0, 9);  // an error outside the section
  ConfigMap sec = map.Section("sec");
  sec.GetInt("a", 0, 0, 9);
  sec.GetInt("b", 0, 0, 9);
  EXPECT_TRUE(sec.Finish().ok()) << sec.Finish().ToString();
  EXPECT_FALSE(map.Finish().ok());
}

TEST(ConfigTest, SectionAskedTwiceSharesTheKnownKeys) {
  ConfigMap map = Load("s:\n  a: 1\n  b: 2\n");
  map.Section("s").GetInt("a", 0, 0, 9);
  map.Section("s").GetInt("b", 0, 0, 9);
  EXPECT_TRUE(map.Finish().ok()) << map.Finish().ToString();
}

TEST(ConfigTest, DuplicateKeyIsRejectedAtLoad) {
  Result<ConfigMap> map = ConfigMap::LoadString("a: 1\ns:\n  x: 1\n  y: 2\n  x: 3\n", "d.yaml");
  ASSERT_FALSE(map.ok());
  EXPECT_EQ(map.status().message(), "d.yaml:5: key 's.x': duplicate key (first given on line 3)");
}

TEST(ConfigTest, TopLevelMustBeAMapping) {
  Result<ConfigMap> map = ConfigMap::LoadString("- a\n- b\n", "l.yaml");
  ASSERT_FALSE(map.ok());
  EXPECT_THAT(map.status().message(), StartsWith("l.yaml:1: the top level must be a mapping"));
  EXPECT_THAT(map.status().message(), HasSubstr("got a list"));
}

TEST(ConfigTest, SeveralDocumentsAreRejected) {
  Result<ConfigMap> map = ConfigMap::LoadString("a: 1\n---\nb: 2\n", "m.yaml");
  ASSERT_FALSE(map.ok());
  EXPECT_EQ(map.status().message(), "m.yaml:3: holds 2 YAML documents; expected one");
}

TEST(ConfigTest, SyntaxErrorNamesFileAndLine) {
  Result<ConfigMap> map = ConfigMap::LoadString("a: 1\nb: [1, 2\nc: 3\n", "s.yaml");
  ASSERT_FALSE(map.ok());
  EXPECT_EQ(map.status().code(), Status::Code::kInvalidArgument);
  // yaml-cpp's own words follow the position; the line is where the parser gave up.
  EXPECT_THAT(map.status().message(), ::testing::MatchesRegex("s\\.yaml:[34]: .+"));
  EXPECT_THAT(map.status().message(), HasSubstr("flow"));

  Result<ConfigMap> indent = ConfigMap::LoadString("a: 1\n b: 2\n", "i.yaml");
  ASSERT_FALSE(indent.ok());
  EXPECT_EQ(indent.status().message(), "i.yaml:2: illegal map value");
}

TEST(ConfigTest, MissingFile) {
  r2f::testing::TempDir dir;
  const std::string path = dir.File("nope.yaml");
  Result<ConfigMap> map = ConfigMap::LoadFile(path);
  ASSERT_FALSE(map.ok());
  EXPECT_EQ(map.status().code(), Status::Code::kNotFound);
  EXPECT_THAT(map.status().message(), StartsWith("cannot read config file '" + path + "'"));
}

TEST(ConfigTest, LoadFileUsesThePathInMessages) {
  r2f::testing::TempDir dir;
  const std::string path = dir.File("x.yaml");
  r2f::testing::WriteFile(path, "# header\nfault:\n  ber: 3\n");
  Result<ConfigMap> map = ConfigMap::LoadFile(path);
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  EXPECT_EQ(map->origin(), path);
  EXPECT_DOUBLE_EQ(map->Section("fault").GetDouble("ber", 0.5, 0, 1), 0.5);
  EXPECT_EQ(map->Finish().message(), path + ":3: key 'fault.ber': must be in [0, 1], got 3");
}

TEST(ConfigTest, CopiesShareTheRecordOfReadKeys) {
  ConfigMap map = Load("a: 1\nb: 2\n");
  ConfigMap copy = map;
  copy.GetInt("a", 0, 0, 9);
  map.GetInt("b", 0, 0, 9);
  EXPECT_TRUE(map.Finish().ok());
  EXPECT_TRUE(copy.Finish().ok());
}

TEST(ConfigScalarTest, ParseDecimalInt) {
  int64_t v = 0;
  EXPECT_EQ(ParseDecimalInt("-42", &v), ScalarParse::kOk);
  EXPECT_EQ(v, -42);
  EXPECT_EQ(ParseDecimalInt("+7", &v), ScalarParse::kOk);
  EXPECT_EQ(v, 7);
  EXPECT_EQ(ParseDecimalInt("9223372036854775807", &v), ScalarParse::kOk);
  EXPECT_EQ(v, kIntMax);
  EXPECT_EQ(ParseDecimalInt("9223372036854775808", &v), ScalarParse::kOutOfRange);
  for (const char* bad : {"", "-", "1.0", " 1", "1 ", "0x10", "1e3", "1_000"}) {
    EXPECT_EQ(ParseDecimalInt(bad, &v), ScalarParse::kBadSyntax) << bad;
  }
}

TEST(ConfigScalarTest, ParseDecimalDouble) {
  double v = 0;
  EXPECT_EQ(ParseDecimalDouble("1e-4", &v), ScalarParse::kOk);
  EXPECT_DOUBLE_EQ(v, 1e-4);
  EXPECT_EQ(ParseDecimalDouble("5.", &v), ScalarParse::kOk);
  EXPECT_DOUBLE_EQ(v, 5);
  EXPECT_EQ(ParseDecimalDouble("1e999", &v), ScalarParse::kOutOfRange);
  for (const char* bad : {"", ".", "e5", "1e", "inf", "nan", ".nan", "0x1p3", "1,5", "- 1"}) {
    EXPECT_EQ(ParseDecimalDouble(bad, &v), ScalarParse::kBadSyntax) << bad;
  }
}

TEST(ConfigScalarTest, RangeTextAndSuggestions) {
  EXPECT_EQ(RangeText(int64_t{1}, int64_t{5}), "must be in [1, 5]");
  EXPECT_EQ(RangeText(kIntMin, int64_t{5}), "must be <= 5");
  EXPECT_EQ(RangeText(kIntMin, kIntMax), "");
  EXPECT_EQ(RangeText(0.0, std::numeric_limits<double>::infinity()), "must be >= 0");
  EXPECT_EQ(ClosestMatch("fualt", {"model", "fault"}), "fault");
  EXPECT_EQ(ClosestMatch("bre", {"ber"}), "ber");
  EXPECT_EQ(ClosestMatch("xyz", {"fault", "model"}), "");
  EXPECT_EQ(ClosestMatch("a", {"b"}), "");  // a 1-letter word is not a typo of another
  EXPECT_EQ(Abbreviate(std::string(100, 'x'), 10), "xxxxxxx...");
  EXPECT_EQ(Abbreviate("line1\nline2", 40), "line1...");
}

}  // namespace
}  // namespace r2f
