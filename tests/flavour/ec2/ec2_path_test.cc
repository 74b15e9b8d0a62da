#include "flavour/ec2/ec2_path.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace openimds::flavour::ec2 {
namespace {

struct PathCase {
  std::string path;
  bool ok;
  std::vector<std::string_view> segments;
  bool trailing_slash = false;
};

TEST(Ec2PathTest, Splits) {
  const std::vector<PathCase> cases = {
      {"/", true, {}, false},
      {"//", true, {}, true},
      {"/latest", true, {"latest"}, false},
      {"/latest/", true, {"latest"}, true},
      {"/latest//meta-data/reservation-id", true, {"latest", "meta-data", "reservation-id"}},
      {"///latest///meta-data///", true, {"latest", "meta-data"}, true},
      {"/latest/meta-data/instance-id/", true, {"latest", "meta-data", "instance-id"}, true},
      {"/a/...", true, {"a", "..."}, false},  // not traversal, just a name
      {"/a/.b", true, {"a", ".b"}, false},
      {"", false, {}},
      {"latest/meta-data", false, {}},
      {"/latest/../meta-data", false, {}},
      {"/latest/./meta-data", false, {}},
      {"/..", false, {}},
      {"/latest/..", false, {}},
      {"/latest/meta-data/.", false, {}},
      {"/latest/%2e%2e/", false, {}},
      {"/latest%2fmeta-data", false, {}},
      {"/latest/meta-data%", false, {}},
  };
  for (const auto& c : cases) {
    Ec2Path p;
    EXPECT_EQ(ParseEc2Path(c.path, 64, p), c.ok) << c.path;
    if (!c.ok) continue;
    EXPECT_EQ(std::vector<std::string_view>(p.segments().begin(), p.segments().end()), c.segments)
        << c.path;
    EXPECT_EQ(p.trailing_slash, c.trailing_slash) << c.path;
  }
}

TEST(Ec2PathTest, Limits) {
  Ec2Path p;
  EXPECT_TRUE(ParseEc2Path("/" + std::string(63, 'a'), 64, p));
  EXPECT_FALSE(ParseEc2Path("/" + std::string(64, 'a'), 64, p));
  std::string deep;
  for (size_t i = 0; i < kMaxSegments; ++i) deep += "/a";
  EXPECT_TRUE(ParseEc2Path(deep, 1024, p));
  EXPECT_EQ(p.size, kMaxSegments);
  EXPECT_FALSE(ParseEc2Path(deep + "/a", 1024, p));
  // Empty segments do not count toward the depth.
  EXPECT_TRUE(ParseEc2Path(deep + "//////", 1024, p));
}

}  // namespace
}  // namespace openimds::flavour::ec2
