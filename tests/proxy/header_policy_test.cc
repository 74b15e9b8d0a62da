#include "proxy/header_policy.h"

#include <gtest/gtest.h>

namespace openimds::proxy {
namespace {

TEST(HeaderPolicyTest, ClassifiesGuestRequestHeaders) {
  // What app/ passes for the flavours of this binary (EC2's module declares
  // its token headers; no flavour declares GCE's or Azure's yet).
  auto policy =
      HeaderPolicy::Create({"X-aws-ec2-metadata-token", "X-aws-ec2-metadata-token-ttl-seconds"});
  ASSERT_TRUE(policy.ok());
  struct Case {
    const char* name;
    RequestHeaderAction want;
  } cases[] = {
      {"Host", RequestHeaderAction::kForward},
      {"user-agent", RequestHeaderAction::kForward},
      {"X-aws-ec2-metadata-token", RequestHeaderAction::kForward},
      {"X-AWS-EC2-METADATA-TOKEN-TTL-SECONDS", RequestHeaderAction::kForward},
      {"Metadata-Flavor", RequestHeaderAction::kDrop},
      {"Metadata", RequestHeaderAction::kDrop},
      {"X-Forwarded-For", RequestHeaderAction::kStripIdentity},
      {"x-forwarded-host", RequestHeaderAction::kStripIdentity},
      {"Forwarded", RequestHeaderAction::kStripIdentity},
      {"X-Real-IP", RequestHeaderAction::kStripIdentity},
      {"X-Instance-ID", RequestHeaderAction::kStripIdentity},
      {"X-Instance-ID-Signature", RequestHeaderAction::kStripIdentity},
      {"X-Tenant-ID", RequestHeaderAction::kStripIdentity},
      {"X-Neutron-Router-ID", RequestHeaderAction::kStripIdentity},
      {"X-Neutron-Network-ID", RequestHeaderAction::kStripIdentity},
      {"X-OVN-Network-ID", RequestHeaderAction::kStripIdentity},
      {"X-Metadata-Provider", RequestHeaderAction::kStripIdentity},
      {"X-Metadata-Provider-Signature", RequestHeaderAction::kStripIdentity},
      {"X-OpenIMDS-Network", RequestHeaderAction::kStripIdentity},
      {"x-openimds-ip-ttl", RequestHeaderAction::kStripIdentity},
      {"Connection", RequestHeaderAction::kDrop},
      {"Transfer-Encoding", RequestHeaderAction::kDrop},
      {"Content-Length", RequestHeaderAction::kDrop},
      {"Cookie", RequestHeaderAction::kDrop},
      {"X-Anything", RequestHeaderAction::kDrop},
  };
  for (const auto& c : cases) EXPECT_EQ(policy->Classify(c.name), c.want) << c.name;
}

TEST(HeaderPolicyTest, TheDefaultListHasNoCloudsOwnHeaders) {
  auto policy = HeaderPolicy::Create();
  ASSERT_TRUE(policy.ok());
  EXPECT_EQ(policy->Classify("Accept"), RequestHeaderAction::kForward);
  for (const char* cloud : {"X-aws-ec2-metadata-token", "X-aws-ec2-metadata-token-ttl-seconds",
                            "Metadata-Flavor", "Metadata", "Authorization"}) {
    EXPECT_EQ(policy->Classify(cloud), RequestHeaderAction::kDrop) << cloud;
  }
}

TEST(HeaderPolicyTest, ExtraHeadersCannotBeIdentityOrFraming) {
  EXPECT_TRUE(HeaderPolicy::Create({"X-My-Agent"}).ok());
  for (const char* bad : {"X-Forwarded-For", "x-instance-id", "X-OpenIMDS-Source", "Connection",
                          "Content-Length", "Transfer-Encoding", "bad header", ""}) {
    EXPECT_FALSE(HeaderPolicy::Create({bad}).ok()) << bad;
  }
  auto p = HeaderPolicy::Create({"X-My-Agent"});
  EXPECT_EQ(p->Classify("x-my-agent"), RequestHeaderAction::kForward);
}

TEST(HeaderPolicyTest, ResponseHeaders) {
  for (const char* pass : {"Content-Type", "ETag", "Server", "X-aws-ec2-metadata-token-ttl-seconds",
                           "Metadata-Flavor", "Location", "Allow", "Retry-After"}) {
    EXPECT_TRUE(HeaderPolicy::ForwardResponseHeader(pass)) << pass;
  }
  for (const char* drop : {"Connection", "Keep-Alive", "Transfer-Encoding", "Content-Length",
                           "Date", "X-OpenIMDS-IP-TTL", "x-openimds-anything"}) {
    EXPECT_FALSE(HeaderPolicy::ForwardResponseHeader(drop)) << drop;
  }
}

TEST(HeaderPolicyTest, IpTtlValues) {
  EXPECT_EQ(HeaderPolicy::ParseIpTtl("1"), 1);
  EXPECT_EQ(HeaderPolicy::ParseIpTtl("64"), 64);
  EXPECT_EQ(HeaderPolicy::ParseIpTtl("255"), 255);
  for (const char* bad : {"", "0", "256", "-1", "1 ", "x", "1x"}) {
    EXPECT_EQ(HeaderPolicy::ParseIpTtl(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace openimds::proxy
