#include "flavour/ec2/ec2_tree.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/clock.h"
#include "flavour/ec2/ec2_test_instance.h"
#include "flavour/ec2/ec2_versions.h"

namespace openimds::flavour::ec2 {
namespace {

TEST(Ec2VersionsTest, Index) {
  EXPECT_EQ(VersionIndex("1.0"), 0);
  EXPECT_EQ(VersionIndex("2009-04-04"), 8);
  EXPECT_EQ(VersionIndex("2021-07-15"), kLatestVersion - 1);
  EXPECT_EQ(VersionIndex("latest"), kLatestVersion);
  for (std::string_view bad : {"", "2009-04-05", "1", "Latest", "latest/", "2021-07-16"}) {
    EXPECT_EQ(VersionIndex(bad), -1) << bad;
  }
  for (size_t i = 0; i < kVersions.size(); ++i) {
    EXPECT_EQ(VersionIndex(kVersions[i]), static_cast<int>(i));
  }
}

void Value(const RenderContext&, std::string& out) { out += "v"; }
void Empty(const RenderContext&, std::string&) {}

// A small table exercising the machinery independently of EC2's categories.
const NodeSpec kSmall[] = {
    {"b/leaf", "1.0", Value},
    {"b/new", "2011-01-01", Value},
    {"a", "1.0", Value},
    {"c/empty", "1.0", Empty},
    {"d/*", "1.0", nullptr, KeySource::kNicMac},
    {"d/*/x", "1.0", Value},
};

class Ec2TreeTest : public ::testing::Test {
 protected:
  RenderContext Ctx(std::string_view version) {
    RenderContext ctx;
    ctx.instance = &instance_;
    ctx.clock = &clock_;
    ctx.version = VersionIndex(version);
    return ctx;
  }
  std::string Listing(const std::vector<std::string_view>& path, std::string_view version) {
    RenderContext ctx = Ctx(version);
    const Ec2Tree::Node* node = tree_.Find(path, ctx);
    std::string out;
    if (node == nullptr || !tree_.AppendListing(*node, ctx, out)) return "<absent>";
    return out;
  }

  model::Instance instance_ = test_support::TestInstance();
  common::FakeClock clock_{test_support::At("2024-05-01T13:00:00Z")};
  Ec2Tree tree_{kSmall};
};

TEST_F(Ec2TreeTest, ListingsAreDerivedSortedAndGated) {
  // Root: no slashes; "c" holds only an empty leaf and is absent.
  EXPECT_EQ(Listing({}, "latest"), "a\nb\nd");
  EXPECT_EQ(Listing({"b"}, "latest"), "leaf\nnew");
  EXPECT_EQ(Listing({"b"}, "2009-04-04"), "leaf");
  EXPECT_EQ(Listing({"c"}, "latest"), "<absent>");
  EXPECT_EQ(Listing({"d"}, "latest"), "02:1a:2b:3c:4d:5e/\n0e:49:61:0f:c3:11/");
  EXPECT_EQ(Listing({"d", "0e:49:61:0f:c3:11"}, "latest"), "x");
  instance_.nics.clear();
  EXPECT_EQ(Listing({}, "latest"), "a\nb");
}

TEST_F(Ec2TreeTest, FindBindsKeys) {
  RenderContext ctx = Ctx("latest");
  const std::vector<std::string_view> path = {"d", "02:1a:2b:3c:4d:5e", "x"};
  const Ec2Tree::Node* node = tree_.Find(path, ctx);
  ASSERT_NE(node, nullptr);
  EXPECT_FALSE(node->is_directory());
  ASSERT_NE(ctx.nic, nullptr);
  EXPECT_EQ(ctx.nic->device_number, 1);
  RenderContext miss = Ctx("latest");
  const std::vector<std::string_view> unknown = {"d", "ff:ff:ff:ff:ff:ff", "x"};
  EXPECT_EQ(tree_.Find(unknown, miss), nullptr);
  const std::vector<std::string_view> below_leaf = {"a", "x"};
  EXPECT_EQ(tree_.Find(below_leaf, miss), nullptr);
  RenderContext old = Ctx("1.0");
  const std::vector<std::string_view> gated = {"b", "new"};
  EXPECT_EQ(tree_.Find(gated, old), nullptr);
}

TEST_F(Ec2TreeTest, DefaultCategoriesBuild) {
  Ec2Tree tree(Ec2Categories());
  RenderContext ctx = Ctx("latest");
  std::string out;
  ASSERT_TRUE(tree.AppendListing(tree.root(), ctx, out));
  EXPECT_EQ(out, "dynamic\nmeta-data\nuser-data");
}

TEST(Ec2TreeDeathTest, MalformedTablesAbort) {
  const NodeSpec bad_version[] = {{"a", "2009-13-01", Value}};
  EXPECT_DEATH(Ec2Tree{bad_version}, "unknown version");
  const NodeSpec duplicate[] = {{"a", "1.0", Value}, {"a", "1.0", Value}};
  EXPECT_DEATH(Ec2Tree{duplicate}, "duplicate path");
  const NodeSpec undeclared_star[] = {{"d/*/x", "1.0", Value}};
  EXPECT_DEATH(Ec2Tree{undeclared_star}, "'\\*' directory used before its row");
  const NodeSpec star_beside_named[] = {{"d/y", "1.0", Value},
                                        {"d/*", "1.0", nullptr, KeySource::kNicMac}};
  EXPECT_DEATH(Ec2Tree{star_beside_named}, "only child");
  const NodeSpec star_without_source[] = {{"d/*", "1.0", Value}};
  EXPECT_DEATH(Ec2Tree{star_without_source}, "key source");
  const NodeSpec under_leaf[] = {{"a", "1.0", Value}, {"a/b", "1.0", Value}};
  EXPECT_DEATH(Ec2Tree{under_leaf}, "child of a leaf");
}

TEST(Ec2TagKeyTest, ImdsSafeKeys) {
  for (std::string_view ok : {"Name", "aws:cloudformation:stack-name", "a+b=c,d@e_f.g", "..."}) {
    EXPECT_TRUE(IsImdsTagKey(ok)) << ok;
  }
  for (std::string_view bad : {"", ".", "..", "_index", "with space", "a/b", "caf\xc3\xa9", "%"}) {
    EXPECT_FALSE(IsImdsTagKey(bad)) << bad;
  }
}

}  // namespace
}  // namespace openimds::flavour::ec2
