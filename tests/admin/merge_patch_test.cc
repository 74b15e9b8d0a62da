#include "admin/merge_patch.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <string>

namespace openimds::admin {
namespace {

struct Case {
  const char* target;
  const char* patch;
  const char* expected;
};

// RFC 7396 Appendix A ("Example Test Cases"), plus nested cases of our own.
const Case kCases[] = {
    {R"({"a":"b"})", R"({"a":"c"})", R"({"a":"c"})"},
    {R"({"a":"b"})", R"({"b":"c"})", R"({"a":"b","b":"c"})"},
    {R"({"a":"b"})", R"({"a":null})", R"({})"},
    {R"({"a":"b","b":"c"})", R"({"a":null})", R"({"b":"c"})"},
    {R"({"a":["b"]})", R"({"a":"c"})", R"({"a":"c"})"},
    {R"({"a":"c"})", R"({"a":["b"]})", R"({"a":["b"]})"},
    {R"({"a":{"b":"c"}})", R"({"a":{"b":"d","c":null}})", R"({"a":{"b":"d"}})"},
    {R"({"a":[{"b":"c"}]})", R"({"a":[1]})", R"({"a":[1]})"},
    {R"(["a","b"])", R"(["c","d"])", R"(["c","d"])"},
    {R"({"a":"b"})", R"(["c"])", R"(["c"])"},
    {R"({"a":"foo"})", R"(null)", R"(null)"},
    {R"({"a":"foo"})", R"("bar")", R"("bar")"},
    {R"({"e":null})", R"({"a":1})", R"({"e":null,"a":1})"},
    {R"([1,2])", R"({"a":"b","c":null})", R"({"a":"b"})"},
    {R"({})", R"({"a":{"bb":{"ccc":null}}})", R"({"a":{"bb":{}}})"},
    // Ours: deep merge keeps siblings; deleting an absent key is a no-op;
    // an empty patch changes nothing.
    {R"({"m":{"x":1,"y":{"z":2,"w":3}}})", R"({"m":{"y":{"z":9}}})",
     R"({"m":{"x":1,"y":{"z":9,"w":3}}})"},
    {R"({"a":1})", R"({"gone":null})", R"({"a":1})"},
    {R"({"a":1,"b":[1,2]})", R"({})", R"({"a":1,"b":[1,2]})"},
};

class MergePatchTest : public ::testing::TestWithParam<Case> {};

TEST_P(MergePatchTest, MatchesExpected) {
  const Case& c = GetParam();
  boost::json::value result = MergePatch(boost::json::parse(c.target), boost::json::parse(c.patch));
  EXPECT_EQ(result, boost::json::parse(c.expected))
      << "target " << c.target << " patch " << c.patch << " got " << boost::json::serialize(result);
}

INSTANTIATE_TEST_SUITE_P(Rfc7396, MergePatchTest, ::testing::ValuesIn(kCases));

TEST(MergePatch, DoesNotAliasThePatch) {
  boost::json::value patch = boost::json::parse(R"({"a":{"b":[1]}})");
  boost::json::value result = MergePatch(boost::json::parse("{}"), patch);
  result.as_object()["a"].as_object()["b"].as_array().push_back(2);
  EXPECT_EQ(patch, boost::json::parse(R"({"a":{"b":[1]}})"));
}

}  // namespace
}  // namespace openimds::admin
