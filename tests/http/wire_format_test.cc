#include "http/wire_format.h"

#include <gtest/gtest.h>
#include <net/if.h>

#include <string>

namespace openimds::http {
namespace {

TEST(ParseTcpEndpoint, PlainAddresses) {
  auto v4 = ParseTcpEndpoint("169.254.169.254:80");
  ASSERT_TRUE(v4.ok()) << v4.status().ToString();
  EXPECT_EQ(v4->address().to_string(), "169.254.169.254");
  EXPECT_EQ(v4->port(), 80);
  auto v6 = ParseTcpEndpoint("[fd00:ec2::254]:8080");
  ASSERT_TRUE(v6.ok()) << v6.status().ToString();
  EXPECT_EQ(v6->address().to_string(), "fd00:ec2::254");
  EXPECT_EQ(v6->port(), 8080);
}

// fe80::a9fe:a9fe is OpenStack's IPv6 metadata address; it is link-local, so
// a listener needs its interface (openstack.md §8.1 item 3).
TEST(ParseTcpEndpoint, LinkLocalWithItsInterface) {
  const unsigned lo = if_nametoindex("lo");
  ASSERT_NE(lo, 0u);
  auto named = ParseTcpEndpoint("[fe80::a9fe:a9fe%lo]:80");
  ASSERT_TRUE(named.ok()) << named.status().ToString();
  EXPECT_EQ(named->address().to_v6().scope_id(), lo);
  EXPECT_EQ(named->port(), 80);
  EXPECT_EQ(named->address().to_string(), "fe80::a9fe:a9fe%lo");  // what the ready file shows
  // Round trip of the displayed form.
  auto again = ParseTcpEndpoint("[" + named->address().to_string() + "]:80");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *named);
  auto numeric = ParseTcpEndpoint("[fe80::a9fe:a9fe%" + std::to_string(lo) + "]:80");
  ASSERT_TRUE(numeric.ok()) << numeric.status().ToString();
  EXPECT_EQ(numeric->address().to_v6().scope_id(), lo);
}

TEST(ParseTcpEndpoint, RefusesScopeMistakes) {
  const std::pair<std::string, std::string> cases[] = {
      {"[fe80::a9fe:a9fe]:80", "needs its interface"},
      {"[fe80::a9fe:a9fe%]:80", "empty scope"},
      {"[fe80::a9fe:a9fe%no-such-if0]:80", "no network interface 'no-such-if0'"},
      {"[fe80::a9fe:a9fe%999999]:80", "no network interface"},
      {"[fd00:ec2::254%lo]:80", "only with an IPv6 link-local"},
      {"169.254.169.254%lo:80", "only with an IPv6 link-local"},
      {"[fe80::a9fe:a9fe%lo]", "want [addr]:port"},
  };
  for (const auto& [text, why] : cases) {
    auto r = ParseTcpEndpoint(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), common::Code::kInvalidArgument) << text;
    EXPECT_NE(r.status().message().find(why), std::string::npos)
        << text << ": " << r.status().message();
  }
}

}  // namespace
}  // namespace openimds::http
