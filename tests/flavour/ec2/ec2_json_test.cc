#include "flavour/ec2/ec2_json.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

namespace openimds::flavour::ec2 {
namespace {

TEST(Ec2JsonTest, Ec2Style) {
  std::string out = "prefix:";
  Ec2JsonObject(out).String("Code", "Success").Null("kernelId").StringOrNull("a", "").Close();
  EXPECT_EQ(out,
            "prefix:{\n"
            "  \"Code\" : \"Success\",\n"
            "  \"kernelId\" : null,\n"
            "  \"a\" : null\n"
            "}");
}

TEST(Ec2JsonTest, EmptyObject) {
  std::string out;
  Ec2JsonObject(out).Close();
  EXPECT_EQ(out, "{}");
}

TEST(Ec2JsonTest, EscapesAndRoundTrips) {
  const std::vector<std::string> values = {
      "",
      "plain",
      "quote\"d",
      "back\\slash",
      "line\nbreak",
      "tab\there",
      "cr\r",
      std::string("nul\0byte", 8),
      "\x01\x1f",
      "utf-8 \xc3\xa9\xe2\x82\xac",
      "</script>",
  };
  for (const auto& v : values) {
    std::string out;
    Ec2JsonObject(out).String("k", v).Close();
    const boost::json::value parsed = boost::json::parse(out);
    EXPECT_EQ(parsed.at("k").as_string(), v) << out;
  }
  std::string out;
  AppendJsonString(std::string("\x01", 1), out);
  EXPECT_EQ(out, "\"\\u0001\"");
}

}  // namespace
}  // namespace openimds::flavour::ec2
