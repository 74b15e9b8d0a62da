// The EC2 flavour in the Nova dialect (`serve --ec2-versions nova`): Nova's
// version list, "latest" = 2009-04-04, Nova's key set and version gates
// (openstack.md §1.2, §1.4; nova/api/metadata/base.py get_ec2_metadata),
// rendered by the same tree and category table as the AWS dialect.
// tools/nova_conformance.py diffs the same listings against Nova's own code.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "auth/token_authority.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "flavour/ec2/ec2_flavour.h"
#include "flavour/ec2/ec2_test_instance.h"
#include "flavour/ec2/ec2_tree.h"
#include "flavour/ec2/ec2_versions.h"
#include "support/testdata.h"

namespace openimds::flavour::ec2 {
namespace {

using test_support::At;
using test_support::TestInstance;

using testdata::ReadFile;


std::set<std::string> Lines(const std::string& body) {
  std::set<std::string> out;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) out.insert(line);
  return out;
}

class Ec2NovaDialectTest : public ::testing::Test {
 protected:
  Ec2NovaDialectTest() {
    instance_.kernel_id = "aki-00000001";
    instance_.ramdisk_id = "ari-00000001";
    Ec2Flavour::Options nova;
    nova.dialect = Ec2Dialect::kNova;
    nova_ = std::make_unique<Ec2Flavour>(nova, tokens_, clock_, metrics_);
    aws_ = std::make_unique<Ec2Flavour>(Ec2Flavour::Options{}, tokens_, clock_, metrics_);
  }

  common::Response Get(const Ec2Flavour& flavour, std::string_view path,
                       const model::Instance* instance = nullptr) {
    common::Request request;
    request.method = "GET";
    request.target = path;
    request.path = path;
    common::Response out;
    (void)flavour.Render(instance != nullptr ? *instance : instance_, request, out);
    return out;
  }
  common::Response Nova(std::string_view path, const model::Instance* instance = nullptr) {
    return Get(*nova_, path, instance);
  }
  bool NovaOwns(std::string_view path) {
    common::Request r;
    r.method = "GET";
    r.path = path;
    return nova_->Owns(r);
  }

  common::FakeClock clock_{At("2024-05-01T13:00:00Z")};
  auth::TokenAuthority tokens_ =
      std::move(auth::TokenAuthority::Create({auth::TokenKey{1, std::string(32, 'k')}}, clock_))
          .value();
  common::MetricsRegistry metrics_;
  std::unique_ptr<Ec2Flavour> nova_;
  std::unique_ptr<Ec2Flavour> aws_;
  model::Instance instance_ = TestInstance();
};

TEST(Ec2DialectVersions, NovaIsAwsUpTo2009WithLatestMeaning2009) {
  const std::vector<std::string_view> nova_versions = {
      "1.0",        "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10",
      "2007-12-15", "2008-02-01", "2008-09-01", "2009-04-04"};
  const auto dated = DatedVersions(Ec2Dialect::kNova);
  EXPECT_EQ(std::vector<std::string_view>(dated.begin(), dated.end()), nova_versions);
  EXPECT_EQ(DatedVersions(Ec2Dialect::kAws).size(), kVersions.size() - 1);
  EXPECT_EQ(VersionIndex("latest", Ec2Dialect::kNova), VersionIndex("2009-04-04"));
  EXPECT_EQ(VersionIndex("latest", Ec2Dialect::kAws), kLatestVersion);
  EXPECT_EQ(VersionIndex("2009-04-04", Ec2Dialect::kNova), 8);
  EXPECT_EQ(VersionIndex("2011-01-01", Ec2Dialect::kNova), -1);
  EXPECT_EQ(VersionIndex("2011-01-01", Ec2Dialect::kAws), 9);
  EXPECT_EQ(VersionIndex("2009-04-05", Ec2Dialect::kNova), -1);

  Ec2Dialect d = Ec2Dialect::kAws;
  EXPECT_TRUE(ParseEc2Dialect("nova", d));
  EXPECT_EQ(d, Ec2Dialect::kNova);
  EXPECT_EQ(Ec2DialectName(d), "nova");
  EXPECT_FALSE(ParseEc2Dialect("Nova", d));
  EXPECT_FALSE(ParseEc2Dialect("", d));
  EXPECT_EQ(d, Ec2Dialect::kNova);
}

TEST_F(Ec2NovaDialectTest, OwnsNovasVersionsOnly) {
  EXPECT_TRUE(NovaOwns("/"));
  EXPECT_TRUE(NovaOwns("/latest"));
  EXPECT_TRUE(NovaOwns("/latest/meta-data/instance-id"));
  EXPECT_TRUE(NovaOwns("/1.0/"));
  EXPECT_TRUE(NovaOwns("/2009-04-04/meta-data/"));
  EXPECT_FALSE(NovaOwns("/2011-01-01/"));
  EXPECT_FALSE(NovaOwns("/2021-07-15/meta-data/"));
  EXPECT_FALSE(NovaOwns("/openstack/latest/meta_data.json"));
}

// Golden listings: tests/testdata/ec2/cases.json, "nova-*" (tests/service/golden_test.cc).

// Every path of the 2009-04-04 tree answers the same under "latest".
TEST_F(Ec2NovaDialectTest, LatestIs2009_04_04) {
  for (const std::string sub :
       {"", "meta-data/", "meta-data/placement/", "meta-data/public-keys/",
        "meta-data/public-keys/0/", "meta-data/public-keys/0/openssh-key",
        "meta-data/block-device-mapping/", "meta-data/block-device-mapping/root",
        "meta-data/instance-id", "meta-data/kernel-id", "user-data", "meta-data/iam/",
        "dynamic/", "meta-data/no-such"}) {
    SCOPED_TRACE(sub);
    const common::Response latest = Nova("/latest/" + sub);
    const common::Response dated = Nova("/2009-04-04/" + sub);
    EXPECT_EQ(latest.status, dated.status);
    EXPECT_EQ(latest.body, dated.body);
    EXPECT_EQ(latest.content_type, dated.content_type);
  }
  // And differs from AWS's latest, which has much more.
  EXPECT_NE(Nova("/latest/meta-data/").body, Get(*aws_, "/latest/meta-data/").body);
}

TEST_F(Ec2NovaDialectTest, OnlyNovasKeysExist) {
  for (const std::string path :
       {"/latest/dynamic/instance-identity/document", "/latest/dynamic/", "/latest/meta-data/iam/",
        "/latest/meta-data/iam/info", "/latest/meta-data/mac", "/latest/meta-data/tags/instance/",
        "/latest/meta-data/network/interfaces/macs/", "/latest/meta-data/placement/region",
        "/latest/meta-data/services/domain", "/latest/meta-data/profile",
        "/latest/meta-data/product-codes", "/2011-01-01/meta-data/instance-id"}) {
    EXPECT_EQ(Nova(path).status, 404) << path;
  }
  EXPECT_EQ(Nova("/latest/meta-data/placement/").body, "availability-zone");
  EXPECT_EQ(Nova("/latest/meta-data/public-keys/").body, "0=test-key\n1=backup");
  EXPECT_EQ(Nova("/latest/meta-data/public-keys/0/").body, "openssh-key");
  EXPECT_EQ(Nova("/latest/meta-data/instance-id").body, "i-0123456789abcdef0");
}

// Nova's gates (base.py _check_version) where they differ from AWS's.
TEST_F(Ec2NovaDialectTest, NovasVersionGates) {
  // kernel-id: Nova 2007-12-15, AWS 2008-02-01.
  EXPECT_EQ(Nova("/2007-12-15/meta-data/kernel-id").status, 200);
  EXPECT_EQ(Get(*aws_, "/2007-12-15/meta-data/kernel-id").status, 404);
  // ramdisk-id: Nova 2007-12-15, AWS 2007-10-10.
  EXPECT_EQ(Nova("/2007-10-10/meta-data/ramdisk-id").status, 404);
  EXPECT_EQ(Get(*aws_, "/2007-10-10/meta-data/ramdisk-id").status, 200);
  EXPECT_EQ(Nova("/2007-12-15/meta-data/ramdisk-id").status, 200);
  // The rest as AWS: local-hostname 2007-01-19, instance-type 2007-08-29,
  // block-device-mapping 2007-12-15, placement 2008-02-01, instance-action 2008-09-01.
  const std::vector<std::pair<std::string, std::string>> gates = {
      {"local-hostname", "2007-01-19"},        {"public-hostname", "2007-01-19"},
      {"public-ipv4", "2007-01-19"},           {"instance-type", "2007-08-29"},
      {"block-device-mapping/", "2007-12-15"}, {"placement/availability-zone", "2008-02-01"},
      {"instance-action", "2008-09-01"}};
  const auto versions = DatedVersions(Ec2Dialect::kNova);
  for (const auto& [key, since] : gates) {
    for (std::string_view v : versions) {
      const int want = v >= since ? 200 : 404;
      EXPECT_EQ(Nova("/" + std::string(v) + "/meta-data/" + key).status, want) << v << " " << key;
    }
  }
}

// Keys Nova always has are listed and answer 200 even when the record
// leaves them empty; Nova prints '' and cloud-init retries any listed key
// that is not 200. Keys Nova has only when set stay absent.
TEST_F(Ec2NovaDialectTest, AlwaysPresentKeysSurviveAnEmptyRecord) {
  model::Instance bare;
  bare.id = "i-bare";
  bare.network = "n";
  const common::Response listing = Nova("/latest/meta-data/", &bare);
  ASSERT_EQ(listing.status, 200);
  EXPECT_EQ(Lines(listing.body),
            (std::set<std::string>{"ami-id", "ami-launch-index", "ami-manifest-path",
                                   "block-device-mapping/", "hostname", "instance-action",
                                   "instance-id", "instance-type", "local-hostname", "local-ipv4",
                                   "placement/", "public-hostname", "public-ipv4",
                                   "reservation-id", "security-groups"}));
  for (const std::string& line : Lines(listing.body)) {
    const common::Response r = Nova("/latest/meta-data/" + line, &bare);
    EXPECT_EQ(r.status, 200) << line;
  }
  EXPECT_EQ(Nova("/latest/meta-data/public-ipv4", &bare).body, "");
  EXPECT_EQ(Nova("/latest/meta-data/block-device-mapping/", &bare).body, "");
  EXPECT_EQ(Nova("/latest/meta-data/placement/", &bare).body, "availability-zone");
  EXPECT_EQ(Nova("/latest/meta-data/kernel-id", &bare).status, 404);
  EXPECT_EQ(Nova("/latest/meta-data/public-keys/", &bare).status, 404);
  // No user data: the version root lists meta-data/ alone.
  EXPECT_EQ(Nova("/latest/", &bare).body, "meta-data/");
  EXPECT_EQ(Nova("/latest/user-data", &bare).status, 404);
  // The AWS dialect keeps EC2's rule: empty is absent.
  EXPECT_EQ(Get(*aws_, "/latest/meta-data/public-ipv4", &bare).status, 404);
}

// Nova normalises paths and answers the listing; it never redirects.
TEST_F(Ec2NovaDialectTest, DirectoriesWithoutSlashAnswerTheListing) {
  for (const std::string dir : {"/latest/meta-data", "/2009-04-04/meta-data/placement",
                                "/latest/meta-data/public-keys/0", "/latest"}) {
    const common::Response bare = Nova(dir);
    EXPECT_EQ(bare.status, 200) << dir;
    EXPECT_EQ(bare.body, Nova(dir + "/").body) << dir;
  }
  EXPECT_EQ(Get(*aws_, "/latest/meta-data").status, 301);
}

// The tables are code: a key set naming a row the table lacks aborts at
// construction, in the first test that builds it.
TEST(Ec2TreeDeathTest, KeySetRowWithoutTableRowAborts) {
  static const KeySetRow kBad[] = {{"meta-data/no-such-key", "1.0"}};
  Ec2TreeOptions options;
  options.key_set = kBad;
  EXPECT_DEATH((Ec2Tree{Ec2Categories(), options}), "key-set row names no table row");
}

}  // namespace
}  // namespace openimds::flavour::ec2
