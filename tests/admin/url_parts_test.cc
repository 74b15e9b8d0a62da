#include "admin/url_parts.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace openimds::admin {
namespace {

struct DecodeCase {
  std::string input;
  bool plus_is_space;
  std::optional<std::string> expected;
};

TEST(PercentDecode, Table) {
  const DecodeCase cases[] = {
      {"plain", false, "plain"},
      {"", false, ""},
      {"%2Flatest%2fmeta-data", false, "/latest/meta-data"},
      {"a%3Ab", false, "a:b"},
      {"a+b", false, "a+b"},
      {"a+b", true, "a b"},
      {"%2B", true, "+"},
      {"%", false, std::nullopt},
      {"%4", false, std::nullopt},
      {"ab%4", false, std::nullopt},
      {"%zz", false, std::nullopt},
      {"%00", false, std::nullopt},
      {"%C3%A9", false, "\xC3\xA9"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(PercentDecode(c.input, c.plus_is_space), c.expected) << c.input;
  }
}

TEST(ParseQuery, SplitsAndDecodes) {
  auto params = ParseQuery("network=tenant-a&&address=fd00%3A%3A1&flag&path=%2Fa%3Fb%3D1");
  ASSERT_TRUE(params.ok()) << params.status().ToString();
  ASSERT_EQ(params->size(), 4u);
  EXPECT_EQ((*params)[0], QueryParam("network", "tenant-a"));
  EXPECT_EQ((*params)[1], QueryParam("address", "fd00::1"));
  EXPECT_EQ((*params)[2], QueryParam("flag", ""));
  EXPECT_EQ((*params)[3], QueryParam("path", "/a?b=1"));
}

TEST(ParseQuery, EmptyQueryHasNoParams) {
  auto params = ParseQuery("");
  ASSERT_TRUE(params.ok());
  EXPECT_TRUE(params->empty());
}

TEST(ParseQuery, BadEscapeNamesTheParameter) {
  auto params = ParseQuery("limit=%G1");
  ASSERT_FALSE(params.ok());
  EXPECT_EQ(params.status().code(), common::Code::kInvalidArgument);
  EXPECT_NE(params.status().message().find("limit"), std::string::npos);
}

}  // namespace
}  // namespace openimds::admin
