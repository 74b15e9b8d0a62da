#include "flavour/ec2/ec2_flavour.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "auth/token_authority.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "flavour/ec2/ec2_test_instance.h"
#include "flavour/ec2/ec2_versions.h"
#include "support/testdata.h"

namespace openimds::flavour::ec2 {
namespace {

using test_support::At;
using test_support::TestInstance;
using Headers = std::vector<std::pair<std::string, std::string>>;
using Tokens = model::MetadataOptions::HttpTokens;

constexpr std::string_view kTtl = "X-aws-ec2-metadata-token-ttl-seconds";
constexpr std::string_view kToken = "X-aws-ec2-metadata-token";
constexpr std::string_view kNotFoundPage =
    "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n"
    "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n"
    "         \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n"
    "<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n"
    " <head>\n"
    "  <title>404 - Not Found</title>\n"
    " </head>\n"
    " <body>\n"
    "  <h1>404 - Not Found</h1>\n"
    " </body>\n"
    "</html>\n";

using testdata::ReadFile;

std::optional<std::string> HeaderOf(const common::Response& r, std::string_view name) {
  for (const auto& [n, v] : r.headers) {
    if (common::EqualsIgnoreCase(n, name)) return v;
  }
  return std::nullopt;
}

struct Result {
  common::Status status;
  common::Response response;
};

class Ec2FlavourTest : public ::testing::Test {
 protected:
  Ec2FlavourTest() { Rebuild({}); }

  void Rebuild(Ec2Flavour::Options options) {
    flavour_.reset();
    metrics_ = std::make_unique<common::MetricsRegistry>();
    flavour_ = std::make_unique<Ec2Flavour>(std::move(options), tokens_, clock_, *metrics_);
  }

  Result Call(std::string_view method, std::string_view path, const Headers& headers = {},
              std::string_view body = {}) {
    // Request holds views: keep the header strings alive for the call.
    common::Request request;
    request.method = method;
    request.target = path;
    request.path = path.substr(0, path.find('?'));
    for (const auto& [n, v] : headers) request.headers.push_back({n, v});
    request.body = body;
    Result r;
    r.status = flavour_->Render(instance_, request, r.response);
    return r;
  }
  Result Get(std::string_view path, const Headers& headers = {}) {
    return Call("GET", path, headers);
  }
  std::string Body(std::string_view path) { return Get(path).response.body; }

  std::string PutToken(int ttl = 21600) {
    Result r = Call("PUT", "/latest/api/token", {{std::string(kTtl), std::to_string(ttl)}});
    EXPECT_EQ(r.response.status, 200) << r.response.body;
    return r.response.body;
  }

  uint64_t CounterValue(std::string_view name, std::string_view labels = {}) const {
    return metrics_->CounterValue(name, labels);
  }

  static auth::TokenAuthority MakeTokens(const common::Clock& clock) {
    return std::move(auth::TokenAuthority::Create({auth::TokenKey{1, std::string(32, 'k')}}, clock))
        .value();
  }

  common::FakeClock clock_{At("2024-05-01T13:00:00Z")};
  auth::TokenAuthority tokens_ = MakeTokens(clock_);
  std::unique_ptr<common::MetricsRegistry> metrics_;
  std::unique_ptr<Ec2Flavour> flavour_;
  model::Instance instance_ = TestInstance();
};

// --- ownership ---

TEST_F(Ec2FlavourTest, Owns) {
  const std::vector<std::pair<std::string_view, bool>> cases = {
      {"/", true},
      {"/latest", true},
      {"/latest/", true},
      {"/latest/meta-data/instance-id", true},
      {"/latest/api/token", true},
      {"/1.0", true},
      {"/2009-04-04/meta-data/", true},
      {"/2021-07-15/dynamic/instance-identity/document", true},
      {"", false},
      {"//latest/", false},
      {"/latestx", false},
      {"/2009-04-05/", false},
      {"/1.1/", false},
      {"/openstack/latest/meta_data.json", false},
      {"/computeMetadata/v1/", false},
      {"/metadata/instance", false},
  };
  for (const auto& [path, owned] : cases) {
    common::Request r;
    r.method = "GET";
    r.path = path;
    EXPECT_EQ(flavour_->Owns(r), owned) << path;
  }
  EXPECT_EQ(flavour_->Name(), "ec2");
}

// Golden bodies: tests/testdata/ec2/cases.json (tests/service/golden_test.cc).

TEST_F(Ec2FlavourTest, NotFoundIsExactXhtml) {
  Result r = Get("/latest/meta-data/no-such-thing");
  EXPECT_EQ(r.response.status, 404);
  EXPECT_EQ(r.status.code(), common::Code::kNotFound);
  EXPECT_EQ(r.response.content_type, "text/html");
  EXPECT_EQ(r.response.body, kNotFoundPage);
}

// --- status codes, headers and path forms ---

struct PathCase {
  std::string method;
  std::string path;
  int status;
  std::string body;  // "*" = do not check
  std::string content_type = "text/plain";
  std::string location = "";
};

TEST_F(Ec2FlavourTest, PathRules) {
  const std::string long_path = "/latest/meta-data/" + std::string(2000, 'a');
  std::string deep_path = "/latest";
  for (int i = 0; i < 20; ++i) deep_path += "/meta-data";
  const std::vector<PathCase> cases = {
      {"GET", "/latest/meta-data/instance-id", 200, "i-0123456789abcdef0"},
      {"GET", "/latest/meta-data/instance-id/", 200, "i-0123456789abcdef0"},
      {"GET", "/latest//meta-data/reservation-id", 200, "r-0fedcba9876543210"},
      {"GET", "/latest/meta-data//placement//availability-zone/", 200, "us-east-1a"},
      {"GET", "/latest/meta-data/placement/availability-zone/", 200, "us-east-1a"},
      {"GET", "/latest/meta-data/ami-launch-index", 200, "3"},
      {"GET", "/latest/meta-data/ami-manifest-path", 200, "(unknown)"},
      {"GET", "/latest/meta-data/local-ipv4", 200, "10.0.0.12"},
      {"GET", "/latest/meta-data/public-ipv4", 200, "203.0.113.25"},
      {"GET", "/latest/meta-data/ipv6", 200, "2001:db8::12"},
      {"GET", "/latest/meta-data/mac", 200, "0e:49:61:0f:c3:11"},
      {"GET", "/latest/meta-data/security-groups", 200, "default\nweb"},
      {"GET", "/latest/meta-data/hostname", 200, "ip-10-0-0-12.ec2.internal"},
      {"GET", "/latest/meta-data/services/domain", 200, "amazonaws.com"},
      {"GET", "/latest/meta-data/services/partition", 200, "aws"},
      {"GET", "/latest/meta-data/placement/", 200,
       "availability-zone\navailability-zone-id\nregion"},
      {"GET", "/latest/meta-data/block-device-mapping/", 200, "ami\nebs1\nroot"},
      {"GET", "/latest/meta-data/block-device-mapping/ebs1", 200, "sdb"},
      {"GET", "/latest/meta-data/network/interfaces/macs/", 200,
       "02:1a:2b:3c:4d:5e/\n0e:49:61:0f:c3:11/"},
      {"GET", "/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/local-ipv4s", 200,
       "10.0.0.12\n10.0.0.13"},
      {"GET", "/latest/meta-data/network/interfaces/macs/02:1a:2b:3c:4d:5e/owner-id", 200,
       "210987654321"},
      {"GET", "/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/owner-id", 200,
       "123456789012"},
      {"GET", "/latest/meta-data/network/interfaces/macs/02:1a:2b:3c:4d:5e/device-number", 200,
       "1"},
      {"GET", "/latest/meta-data/network/interfaces/macs/02:1a:2b:3c:4d:5e/vpc-ipv4-cidr-blocks",
       200, "10.0.0.0/16"},
      {"GET", "/latest/meta-data/network/interfaces/macs/02:1a:2b:3c:4d:5e/public-ipv4s", 404, "*",
       "text/html"},
      {"GET", "/latest/meta-data/network/interfaces/macs/02:1A:2B:3C:4D:5E/", 404, "*",
       "text/html"},
      {"GET", "/latest/meta-data/iam/security-credentials/", 200, "web-role"},
      {"GET", "/latest/meta-data/iam/", 200, "info\nsecurity-credentials/"},
      {"GET", "/latest/meta-data/public-keys/0/", 200, "openssh-key"},
      {"GET", "/latest/meta-data/public-keys/1/openssh-key", 200,
       "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBackupKeyBackupKeyBackupKeyBackupKeyBackup0 backup"},
      {"GET", "/latest/meta-data/public-keys/2/", 404, "*", "text/html"},
      {"GET", "/latest/meta-data/public-keys/00/", 404, "*", "text/html"},
      {"GET", "/latest/meta-data/public-keys/0=test-key", 404, "*", "text/html"},
      {"GET", "/latest/dynamic/", 200, "fws/\ninstance-identity/"},
      {"GET", "/latest/dynamic/fws/instance-monitoring", 200, "disabled"},
      {"GET", "/latest/dynamic/instance-identity/", 200, "document"},
      {"GET", "/latest/user-data", 200, std::string("#!/bin/sh\necho hello\n\x00\xff\x01", 24),
       "application/octet-stream"},
      {"GET", "/latest/user-data/", 200, std::string("#!/bin/sh\necho hello\n\x00\xff\x01", 24),
       "application/octet-stream"},
      {"GET", "/2009-04-04/", 200, "dynamic\nmeta-data\nuser-data"},
      {"GET", "/1.0/", 200, "meta-data\nuser-data"},
      // "/" and "/latest" answer 200 with and without the slash.
      {"GET", "/latest", 200, "dynamic\nmeta-data\nuser-data"},
      // Directories without '/' redirect to the absolute '/' URL.
      {"GET", "/latest/meta-data", 301, "", "text/plain",
       "http://169.254.169.254/latest/meta-data/"},
      {"GET", "/latest/meta-data/public-keys", 301, "", "text/plain",
       "http://169.254.169.254/latest/meta-data/public-keys/"},
      {"GET", "/latest/meta-data/public-keys/0", 301, "", "text/plain",
       "http://169.254.169.254/latest/meta-data/public-keys/0/"},
      {"GET", "/latest/dynamic/instance-identity", 301, "", "text/plain",
       "http://169.254.169.254/latest/dynamic/instance-identity/"},
      {"GET", "/latest//meta-data//iam", 301, "", "text/plain",
       "http://169.254.169.254/latest/meta-data/iam/"},
      {"GET", "/2009-04-04", 301, "", "text/plain", "http://169.254.169.254/2009-04-04/"},
      {"HEAD", "/latest/meta-data", 301, "", "text/plain",
       "http://169.254.169.254/latest/meta-data/"},
      // An absent directory is 404, not a redirect to a 404.
      {"GET", "/latest/meta-data/tags", 404, "*", "text/html"},
      // Absent values are 404, never empty strings.
      {"GET", "/latest/meta-data/kernel-id", 404, std::string(kNotFoundPage), "text/html"},
      {"GET", "/latest/meta-data/ramdisk-id", 404, "*", "text/html"},
      {"GET", "/latest/meta-data/tags/instance/Name", 404, "*", "text/html"},
      // Traversal and escapes are refused, never normalised.
      {"GET", "/latest/meta-data/../user-data", 404, std::string(kNotFoundPage), "text/html"},
      {"GET", "/latest/./meta-data/instance-id", 404, "*", "text/html"},
      {"GET", "/latest/meta-data/instance-id/..", 404, "*", "text/html"},
      {"GET", "/latest/meta-data/%2e%2e/user-data", 404, "*", "text/html"},
      {"GET", "/latest/meta-data%2finstance-id", 404, "*", "text/html"},
      {"GET", "/latest/meta-data/instance%2Did", 404, "*", "text/html"},
      {"GET", "/latest/meta-data/instance-id%00", 404, "*", "text/html"},
      {"GET", long_path, 404, "*", "text/html"},
      {"GET", deep_path, 404, "*", "text/html"},
      // Unknown versions and unknown roots.
      {"GET", "/2009-04-05/meta-data/", 404, "*", "text/html"},
      {"GET", "/1.1/", 404, "*", "text/html"},
      {"GET", "/latest/meta-datax/", 404, "*", "text/html"},
      {"GET", "/latest/api", 404, "*", "text/html"},
      {"GET", "/latest/api/", 404, "*", "text/html"},
      {"GET", "/2021-03-23/api/token", 404, "*", "text/html"},
      // Methods: GET and HEAD only.
      {"POST", "/latest/meta-data/", 405, "*", "text/html"},
      {"PUT", "/latest/meta-data/instance-id", 405, "*", "text/html"},
      {"DELETE", "/latest/meta-data/instance-id", 405, "*", "text/html"},
      {"get", "/latest/meta-data/instance-id", 405, "*", "text/html"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.method + " " + c.path.substr(0, 80));
    Result r = Call(c.method, c.path);
    EXPECT_EQ(r.response.status, c.status);
    EXPECT_EQ(r.status.ok(), c.status < 400);
    if (c.body != "*") {
      EXPECT_EQ(r.response.body, c.body);
    }
    EXPECT_EQ(r.response.content_type, c.content_type);
    EXPECT_EQ(HeaderOf(r.response, "Server"), "EC2ws");
    EXPECT_EQ(HeaderOf(r.response, "Location").value_or(""), c.location);
    if (c.status == 405) {
      EXPECT_EQ(HeaderOf(r.response, "Allow"), "GET, HEAD");
    }
    EXPECT_EQ(r.response.head, c.method == "HEAD");
  }
}

TEST_F(Ec2FlavourTest, RootListsEveryVersionWithLatestLast) {
  const std::string body = Body("/");
  std::vector<std::string> lines;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), kVersions.size());
  EXPECT_EQ(lines.front(), "1.0");
  EXPECT_EQ(lines.back(), "latest");
  EXPECT_TRUE(std::is_sorted(lines.begin(), lines.end() - 1));
  EXPECT_NE(body.back(), '\n');
  // Every listed version is served.
  for (const auto& v : lines) EXPECT_EQ(Get("/" + v + "/").response.status, 200) << v;
}

TEST_F(Ec2FlavourTest, RedirectUsesTheHostHeaderWhenItIsAHost) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"127.0.0.1:8169", "http://127.0.0.1:8169/latest/meta-data/"},
      {"169.254.169.254", "http://169.254.169.254/latest/meta-data/"},
      {"[fd00:ec2::254]", "http://[fd00:ec2::254]/latest/meta-data/"},
      {"evil\r\nSet-Cookie: x", "http://imds.example/latest/meta-data/"},
      {"a b", "http://imds.example/latest/meta-data/"},
      {"", "http://imds.example/latest/meta-data/"},
  };
  Ec2Flavour::Options options;
  options.location_host = "imds.example";
  Rebuild(options);
  for (const auto& [host, location] : cases) {
    Result r = Get("/latest/meta-data", {{"Host", host}});
    EXPECT_EQ(r.response.status, 301);
    EXPECT_EQ(HeaderOf(r.response, "Location"), location) << host;
  }
  // Without any Host header, the configured host.
  EXPECT_EQ(HeaderOf(Get("/latest/meta-data").response, "Location"),
            "http://imds.example/latest/meta-data/");
}

TEST_F(Ec2FlavourTest, RedirectsCanBeTurnedOff) {
  Ec2Flavour::Options options;
  options.redirect_directories = false;
  Rebuild(options);
  Result r = Get("/latest/dynamic/instance-identity");
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "document");
  EXPECT_EQ(Get("/latest/meta-data/public-keys").response.body, "0=test-key\n1=backup");
}

TEST_F(Ec2FlavourTest, HeadHasTheSameBodyAndHeaders) {
  Result get = Call("GET", "/latest/meta-data/instance-id");
  Result head = Call("HEAD", "/latest/meta-data/instance-id");
  EXPECT_EQ(head.response.status, 200);
  EXPECT_TRUE(head.response.head);
  EXPECT_FALSE(get.response.head);
  EXPECT_EQ(head.response.body, get.response.body);
  EXPECT_EQ(head.response.headers, get.response.headers);
  Result missing = Call("HEAD", "/latest/meta-data/nope");
  EXPECT_EQ(missing.response.status, 404);
  EXPECT_TRUE(missing.response.head);
  EXPECT_EQ(missing.response.body, kNotFoundPage);
}

// --- version gating ---

TEST_F(Ec2FlavourTest, CategoriesAreVersionGated) {
  const std::string mac = "/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/";
  const std::vector<std::pair<std::string, int>> cases = {
      {"/1.0/meta-data/instance-id", 200},
      {"/1.0/meta-data/instance-type", 404},
      {"/2007-08-29/meta-data/instance-type", 200},
      {"/2007-12-15/meta-data/block-device-mapping/ami", 200},
      {"/2007-10-10/meta-data/block-device-mapping/ami", 404},
      {"/2008-02-01/meta-data/placement/availability-zone", 200},
      {"/2007-12-15/meta-data/placement/availability-zone", 404},
      {"/2007-12-15/meta-data/placement/", 404},
      {"/2019-10-01/meta-data/placement/availability-zone-id", 200},
      {"/2018-11-29/meta-data/placement/availability-zone-id", 404},
      {"/2020-08-24/meta-data/placement/region", 200},
      {"/2019-10-01/meta-data/placement/region", 404},
      {"/2009-04-04/meta-data/mac", 404},
      {"/2011-01-01/meta-data/mac", 200},
      {"/2009-04-04/meta-data/network/", 404},
      {"/2011-01-01" + mac + "local-ipv4s", 200},
      {"/2016-04-19" + mac + "ipv6s", 404},
      {"/2016-06-30" + mac + "ipv6s", 200},
      {"/2020-10-27" + mac + "network-card-index", 404},
      {"/2020-11-01" + mac + "network-card-index", 200},
      {"/2011-05-01/meta-data/iam/info", 404},
      {"/2012-01-12/meta-data/iam/info", 200},
      {"/2014-02-25/meta-data/services/domain", 200},
      {"/2014-02-25/meta-data/services/partition", 404},
      {"/2015-10-20/meta-data/services/partition", 200},
      {"/2021-01-03/meta-data/ipv6", 200},
      {"/2020-11-01/meta-data/ipv6", 404},
      {"/2008-09-01/dynamic/instance-identity/document", 404},
      {"/2009-04-04/dynamic/instance-identity/document", 200},
      {"/2008-09-01/dynamic/", 404},
  };
  for (const auto& [path, status] : cases) {
    EXPECT_EQ(Get(path).response.status, status) << path;
  }
  // Listings follow the same gates.
  EXPECT_EQ(Body("/2007-12-15/meta-data/placement/"), kNotFoundPage);
  EXPECT_EQ(Body("/2008-02-01/meta-data/placement/"), "availability-zone");
  EXPECT_EQ(Body("/2015-10-20" + mac), Body("/2016-04-19" + mac));
  EXPECT_EQ(Body("/2016-06-30" + mac).find("ipv6s") != std::string::npos, true);
  EXPECT_EQ(Body("/2016-04-19" + mac).find("ipv6s"), std::string::npos);
}

TEST_F(Ec2FlavourTest, TagsOnlyWhenEnabled) {
  EXPECT_EQ(Body("/latest/meta-data/").find("tags"), std::string::npos);
  EXPECT_EQ(Get("/latest/meta-data/tags/instance/").response.status, 404);
  instance_.options.tags_enabled = true;
  EXPECT_NE(Body("/latest/meta-data/").find("tags/"), std::string::npos);
  EXPECT_EQ(Body("/latest/meta-data/tags/"), "instance/");
  // Byte order; "bad key" is not IMDS-safe and is not served.
  EXPECT_EQ(Body("/latest/meta-data/tags/instance/"), "Empty\nEnvironment\nName");
  EXPECT_EQ(Body("/latest/meta-data/tags/instance/Name"), "web-1");
  Result empty = Get("/latest/meta-data/tags/instance/Empty");
  EXPECT_EQ(empty.response.status, 200);
  EXPECT_EQ(empty.response.body, "");
  EXPECT_EQ(Get("/latest/meta-data/tags/instance/bad key").response.status, 404);
  EXPECT_EQ(Get("/2021-01-03/meta-data/tags/instance/Name").response.status, 404);
  EXPECT_EQ(Get("/2021-03-23/meta-data/tags/instance/Name").response.status, 200);
}

TEST_F(Ec2FlavourTest, AbsentPartsAreAbsentFromListings) {
  instance_.user_data.reset();
  instance_.iam.reset();
  instance_.ssh_keys.clear();
  instance_.block_devices.clear();
  instance_.nics[0].public_ipv4s.clear();
  instance_.nics[0].ipv6s.clear();
  instance_.public_hostname.clear();
  instance_.nics[0].public_hostname.clear();
  EXPECT_EQ(Body("/latest/"), "dynamic\nmeta-data");
  EXPECT_EQ(Get("/latest/user-data").response.status, 404);
  const std::string listing = Body("/latest/meta-data/");
  for (const char* absent :
       {"iam", "public-keys", "block-device-mapping", "public-ipv4", "ipv6", "public-hostname"}) {
    EXPECT_EQ(("\n" + listing + "\n").find("\n" + std::string(absent)), std::string::npos)
        << absent;
  }
  for (const char* path :
       {"/latest/meta-data/iam/", "/latest/meta-data/iam/info", "/latest/meta-data/iam",
        "/latest/meta-data/iam/security-credentials/", "/latest/meta-data/public-keys/",
        "/latest/meta-data/public-ipv4", "/latest/meta-data/public-hostname"}) {
    EXPECT_EQ(Get(path).response.status, 404) << path;
  }
  // Empty user-data is absent too.
  instance_.user_data = "";
  EXPECT_EQ(Get("/latest/user-data").response.status, 404);
}

TEST_F(Ec2FlavourTest, CredentialsExpireByTheClockButTheRoleStaysListed) {
  const std::string leaf = "/latest/meta-data/iam/security-credentials/web-role";
  EXPECT_EQ(Get(leaf).response.status, 200);
  clock_.Set(At("2024-05-01T17:59:59Z"));
  EXPECT_EQ(Get(leaf).response.status, 200);
  clock_.Set(At("2024-05-01T18:00:00Z"));
  EXPECT_EQ(Get(leaf).response.status, 404);
  EXPECT_EQ(Body("/latest/meta-data/iam/security-credentials/"), "web-role");
  instance_.iam->credentials.reset();
  clock_.Set(At("2024-05-01T13:00:00Z"));
  EXPECT_EQ(Get(leaf).response.status, 404);
  EXPECT_EQ(Body("/latest/meta-data/iam/security-credentials/"), "web-role");
  EXPECT_EQ(Get("/latest/meta-data/iam/security-credentials/other-role").response.status, 404);
}

TEST_F(Ec2FlavourTest, JsonDocumentsParseAndCarryTheFields) {
  Result creds = Get("/latest/meta-data/iam/security-credentials/web-role");
  EXPECT_EQ(creds.response.content_type, "text/plain");
  boost::json::object c = boost::json::parse(creds.response.body).as_object();
  EXPECT_EQ(c.at("Code"), "Success");
  EXPECT_EQ(c.at("Type"), "AWS-HMAC");
  EXPECT_EQ(c.at("AccessKeyId"), "ASIAIOSFODNN7EXAMPLE");
  EXPECT_EQ(c.at("Token"), "IQoJb3JpZ2luX2VjEXAMPLE\"token\"");
  EXPECT_EQ(c.at("Expiration"), "2024-05-01T18:00:00Z");

  Result doc = Get("/latest/dynamic/instance-identity/document");
  EXPECT_EQ(doc.response.content_type, "text/plain");
  boost::json::object d = boost::json::parse(doc.response.body).as_object();
  EXPECT_EQ(d.at("instanceId"), "i-0123456789abcdef0");
  EXPECT_EQ(d.at("region"), "us-east-1");
  EXPECT_EQ(d.at("availabilityZone"), "us-east-1a");
  EXPECT_EQ(d.at("privateIp"), "10.0.0.12");
  EXPECT_EQ(d.at("pendingTime"), "2024-05-01T12:00:00Z");
  EXPECT_TRUE(d.at("kernelId").is_null());
  EXPECT_TRUE(d.at("billingProducts").is_null());
  EXPECT_EQ(d.at("version"), "2017-09-30");
  instance_.kernel_id = "aki-0123456789abcdef0";
  d = boost::json::parse(Body("/latest/dynamic/instance-identity/document")).as_object();
  EXPECT_EQ(d.at("kernelId"), "aki-0123456789abcdef0");
}

TEST_F(Ec2FlavourTest, PartitionFollowsTheRegion) {
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"us-east-1", "aws", "amazonaws.com"},
      {"eu-central-2", "aws", "amazonaws.com"},
      {"cn-north-1", "aws-cn", "amazonaws.com.cn"},
      {"us-gov-west-1", "aws-us-gov", "amazonaws.com"},
      {"us-iso-east-1", "aws-iso", "c2s.ic.gov"},
      {"us-isob-east-1", "aws-iso-b", "sc2s.sgov.gov"},
  };
  for (const auto& [region, partition, domain] : cases) {
    instance_.region = region;
    EXPECT_EQ(Body("/latest/meta-data/services/partition"), partition) << region;
    EXPECT_EQ(Body("/latest/meta-data/services/domain"), domain) << region;
  }
}

// Walks the tree as cloud-init's materializer does (clients.md §2a): every
// name a listing shows must be fetchable, directories with their slash,
// public keys as "<n>/openssh-key".
TEST_F(Ec2FlavourTest, EveryListedNameIsFetchable) {
  instance_.options.tags_enabled = true;
  for (std::string_view version : {"latest", "2021-03-23", "2016-09-02", "2009-04-04", "1.0"}) {
    std::vector<std::string> pending = {"/" + std::string(version) + "/"};
    int fetched = 0;
    while (!pending.empty()) {
      const std::string dir = pending.back();
      pending.pop_back();
      Result listing = Get(dir);
      ASSERT_EQ(listing.response.status, 200) << dir;
      ASSERT_FALSE(listing.response.body.empty()) << dir;
      ASSERT_NE(listing.response.body.back(), '\n') << dir;
      std::istringstream in(listing.response.body);
      for (std::string name; std::getline(in, name);) {
        ASSERT_FALSE(name.empty()) << dir;
        if (const size_t eq = name.find('='); eq != std::string::npos) {
          name = name.substr(0, eq) + "/";
        }
        // Directly under the version root, names carry no slash.
        if (name == "meta-data" || name == "dynamic") name += "/";
        if (name.back() == '/') {
          pending.push_back(dir + name);
          continue;
        }
        Result leaf = Get(dir + name);
        EXPECT_EQ(leaf.response.status, 200) << dir + name;
        ++fetched;
      }
    }
    EXPECT_GT(fetched, 5) << version;
  }
}

// --- IMDSv2 token endpoint ---

TEST_F(Ec2FlavourTest, TokenPutIssuesAToken) {
  for (std::string_view name :
       {"X-aws-ec2-metadata-token-ttl-seconds", "x-aws-ec2-metadata-token-ttl-seconds",
        "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"}) {
    for (std::string_view body : {"", "ignored"}) {
      Result r = Call("PUT", "/latest/api/token", {{std::string(name), "21600"}}, body);
      EXPECT_EQ(r.response.status, 200);
      EXPECT_TRUE(r.status.ok());
      EXPECT_EQ(r.response.content_type, "text/plain");
      EXPECT_EQ(r.response.body.size(), auth::TokenAuthority::kTokenChars);
      EXPECT_EQ(r.response.body.find('\n'), std::string::npos);
      EXPECT_EQ(HeaderOf(r.response, "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"), "21600");
      EXPECT_EQ(HeaderOf(r.response, "Server"), "EC2ws");
      EXPECT_EQ(r.response.ip_ttl, 2);  // the instance's hop limit
      EXPECT_TRUE(
          tokens_.Verify(r.response.body, instance_.id, instance_.managed.incarnation).ok());
    }
  }
  EXPECT_EQ(CounterValue("imds_token_issued_total"), 6u);
}

TEST_F(Ec2FlavourTest, TokenTtlEdgeCases) {
  struct TtlCase {
    std::optional<std::string> value;  // nullopt: header absent
    int status;
  };
  const std::vector<TtlCase> cases = {
      {std::nullopt, 400},
      {"", 400},
      {"0", 400},
      {"-1", 400},
      {"21601", 400},
      {"abc", 400},
      {"+5", 400},
      {" 5", 400},
      {"5 ", 400},
      {"5.0", 400},
      {"0x10", 400},
      {"99999999999999999999999999", 400},
      {"9223372036854775808", 400},
      {"4294967297", 400},
      {std::string(10000, '9'), 400},
      {"21600", 200},
      {"1", 200},
      {"900", 200},
      {"0000000001", 200},
  };
  uint64_t rejected = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.value.value_or("<absent>").substr(0, 40));
    Headers headers;
    if (c.value) headers.push_back({std::string(kTtl), *c.value});
    Result r = Call("PUT", "/latest/api/token", headers);
    EXPECT_EQ(r.response.status, c.status);
    if (c.status == 400) {
      ++rejected;
      EXPECT_EQ(r.status.code(), common::Code::kInvalidArgument);
      EXPECT_EQ(r.response.content_type, "text/plain");
      EXPECT_NE(r.response.body.find("X-aws-ec2-metadata-token-ttl-seconds"), std::string::npos);
      EXPECT_FALSE(r.response.ip_ttl.has_value());
      EXPECT_FALSE(HeaderOf(r.response, "X-Aws-Ec2-Metadata-Token-Ttl-Seconds").has_value());
    } else {
      const int ttl = std::stoi(*c.value);
      EXPECT_EQ(HeaderOf(r.response, "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"), std::to_string(ttl));
      // The token lives exactly that long.
      const std::string token = r.response.body;
      EXPECT_EQ(
          Get("/latest/meta-data/instance-id", {{std::string(kToken), token}}).response.status,
          200);
      clock_.Advance(std::chrono::seconds(ttl));
      EXPECT_EQ(
          Get("/latest/meta-data/instance-id", {{std::string(kToken), token}}).response.status,
          401);
      clock_.Set(At("2024-05-01T13:00:00Z"));
    }
  }
  EXPECT_EQ(CounterValue("imds_token_put_rejected_total", "reason=\"ttl\""), rejected);
  // Two TTL headers: refused rather than picking one.
  Result twice = Call("PUT", "/latest/api/token",
                      {{std::string(kTtl), "60"}, {"x-aws-ec2-metadata-token-ttl-seconds", "60"}});
  EXPECT_EQ(twice.response.status, 400);
  // The missing-header message says what is missing.
  EXPECT_NE(Call("PUT", "/latest/api/token").response.body.find("missing"), std::string::npos);
}

TEST_F(Ec2FlavourTest, TokenPutRefusals) {
  const Headers ttl = {{std::string(kTtl), "21600"}};
  Headers forwarded = ttl;
  forwarded.push_back({"X-Forwarded-For", "198.51.100.7"});
  Headers forwarded_lower = ttl;
  forwarded_lower.push_back({"x-forwarded-for", ""});

  struct RefusalCase {
    std::string method;
    std::string path;
    Headers headers;
    int status;
    std::string allow;
  };
  const std::vector<RefusalCase> cases = {
      {"PUT", "/latest/api/token", forwarded, 403, ""},
      {"PUT", "/latest/api/token", forwarded_lower, 403, ""},
      {"PUT", "/2021-03-23/api/token", ttl, 403, ""},
      {"PUT", "/1.0/api/token", ttl, 403, ""},
      {"GET", "/latest/api/token", ttl, 405, "OPTIONS, PUT"},
      {"HEAD", "/latest/api/token", ttl, 405, "OPTIONS, PUT"},
      {"POST", "/latest/api/token", ttl, 405, "OPTIONS, PUT"},
      {"DELETE", "/latest/api/token", ttl, 405, "OPTIONS, PUT"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.method + " " + c.path);
    Result r = Call(c.method, c.path, c.headers);
    EXPECT_EQ(r.response.status, c.status);
    EXPECT_EQ(r.response.body.find("<h1>" + std::to_string(c.status)) != std::string::npos, true);
    EXPECT_EQ(HeaderOf(r.response, "Allow").value_or(""), c.allow);
    EXPECT_FALSE(r.response.ip_ttl.has_value());
    EXPECT_EQ(HeaderOf(r.response, "Server"), "EC2ws");
  }
  EXPECT_EQ(CounterValue("imds_token_put_rejected_total", "reason=\"forwarded\""), 2u);
  EXPECT_EQ(CounterValue("imds_token_put_rejected_total", "reason=\"versioned_path\""), 2u);
  EXPECT_EQ(CounterValue("imds_token_put_rejected_total", "reason=\"method\""), 4u);
  EXPECT_EQ(CounterValue("imds_token_issued_total"), 0u);
}

TEST_F(Ec2FlavourTest, EndpointDisabledRefusesEverything) {
  instance_.options.http_endpoint_enabled = false;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"PUT", "/latest/api/token"},
      {"GET", "/latest/meta-data/instance-id"},
      {"GET", "/"},
      {"HEAD", "/latest/"},
      {"POST", "/latest/meta-data/"},
      {"GET", "/latest/meta-data/nope"},
  };
  for (const auto& [method, path] : cases) {
    Result r = Call(method, path, {{std::string(kTtl), "60"}});
    EXPECT_EQ(r.response.status, 403) << method << " " << path;
    EXPECT_EQ(r.status.code(), common::Code::kPermissionDenied);
    EXPECT_EQ(HeaderOf(r.response, "Server"), "EC2ws");
  }
  EXPECT_EQ(CounterValue("imds_endpoint_disabled_total"), cases.size());
}

// --- token policy on GET/HEAD ---

TEST_F(Ec2FlavourTest, TokenPolicy) {
  const std::string good = PutToken(60);
  const std::string expired = PutToken(1);
  auto other_id = tokens_.Issue("i-0ffffffffffffffff", 0, std::chrono::seconds(60));
  ASSERT_TRUE(other_id.ok());
  auto unknown_epoch =
      std::move(auth::TokenAuthority::Create({auth::TokenKey{9, std::string(32, 'k')}}, clock_))
          .value()
          .Issue(instance_.id, instance_.managed.incarnation, std::chrono::seconds(60));
  ASSERT_TRUE(unknown_epoch.ok());
  clock_.Advance(std::chrono::seconds(1));  // `expired` is now expired, `good` is not

  struct PolicyCase {
    std::string name;
    Tokens mode;
    bool reject_invalid_when_optional;
    Headers headers;
    int status;
    std::string counter_labels;  // imds_requests_total or imds_token_rejected_total labels
  };
  const std::string t(kToken);
  const std::vector<PolicyCase> cases = {
      {"optional, none", Tokens::kOptional, true, {}, 200, "version=\"v1\""},
      {"optional, valid", Tokens::kOptional, true, {{t, good}}, 200, "version=\"v2\""},
      {"optional, lower-case header",
       Tokens::kOptional,
       true,
       {{"x-aws-ec2-metadata-token", good}},
       200,
       "version=\"v2\""},
      {"optional, expired", Tokens::kOptional, true, {{t, expired}}, 401, "reason=\"expired\""},
      {"optional, other instance",
       Tokens::kOptional,
       true,
       {{t, *other_id}},
       401,
       "reason=\"bad_seal\""},
      {"optional, garbage", Tokens::kOptional, true, {{t, "nope"}}, 401, "reason=\"malformed\""},
      {"optional, unknown epoch",
       Tokens::kOptional,
       true,
       {{t, *unknown_epoch}},
       401,
       "reason=\"unknown_key\""},
      {"optional, two tokens",
       Tokens::kOptional,
       true,
       {{t, good}, {t, good}},
       401,
       "reason=\"malformed\""},
      {"optional lenient, garbage",
       Tokens::kOptional,
       false,
       {{t, "nope"}},
       200,
       "reason=\"malformed\""},
      {"optional lenient, expired",
       Tokens::kOptional,
       false,
       {{t, expired}},
       200,
       "reason=\"expired\""},
      {"required, none", Tokens::kRequired, true, {}, 401, "reason=\"missing\""},
      {"required, valid", Tokens::kRequired, true, {{t, good}}, 200, "version=\"v2\""},
      {"required, expired", Tokens::kRequired, true, {{t, expired}}, 401, "reason=\"expired\""},
      {"required, other instance",
       Tokens::kRequired,
       true,
       {{t, *other_id}},
       401,
       "reason=\"bad_seal\""},
      {"required lenient, garbage",
       Tokens::kRequired,
       false,
       {{t, "nope"}},
       401,
       "reason=\"malformed\""},
      {"required lenient, none", Tokens::kRequired, false, {}, 401, "reason=\"missing\""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Ec2Flavour::Options options;
    options.reject_invalid_token_when_optional = c.reject_invalid_when_optional;
    Rebuild(options);
    instance_.options.http_tokens = c.mode;
    for (std::string_view method : {"GET", "HEAD"}) {
      Result r = Call(method, "/latest/meta-data/instance-id", c.headers);
      EXPECT_EQ(r.response.status, c.status) << method;
      EXPECT_EQ(HeaderOf(r.response, "Server"), "EC2ws");
      if (c.status == 200) {
        EXPECT_EQ(r.response.body, "i-0123456789abcdef0");
      } else {
        EXPECT_EQ(r.status.code(), common::Code::kUnauthenticated);
        EXPECT_NE(r.response.body.find("401 - Unauthorized"), std::string::npos);
      }
    }
    const std::string_view counter = c.counter_labels.starts_with("version")
                                         ? "imds_requests_total"
                                         : "imds_token_rejected_total";
    EXPECT_EQ(CounterValue(counter, c.counter_labels), 2u);
    // Token refusals come before any lookup: even a missing path is 401.
    if (c.status == 401) {
      EXPECT_EQ(Call("GET", "/latest/meta-data/nope", c.headers).response.status, 401);
    }
  }
}

// A token is issued to one incarnation of the instance: once the id belongs
// to a new instance (deleted and created again), the old token is refused;
// updates keep the incarnation, and so the token.
TEST_F(Ec2FlavourTest, ATokenIsBoundToTheInstancesIncarnation) {
  instance_.options.http_tokens = Tokens::kRequired;
  instance_.managed.incarnation = 41;
  const std::string token = PutToken();
  const Headers with_token = {{std::string(kToken), token}};
  EXPECT_EQ(Get("/latest/meta-data/instance-id", with_token).response.status, 200);
  instance_.name = "renamed";  // an update: same incarnation
  EXPECT_EQ(Get("/latest/meta-data/instance-id", with_token).response.status, 200);

  instance_.managed.incarnation = 57;  // the id's next life
  Result r = Get("/latest/meta-data/instance-id", with_token);
  EXPECT_EQ(r.response.status, 401);
  EXPECT_EQ(CounterValue("imds_token_rejected_total", "reason=\"bad_seal\""), 1u);
  EXPECT_EQ(Get("/latest/meta-data/instance-id", {{std::string(kToken), PutToken()}})
                .response.status,
            200);
}

TEST_F(Ec2FlavourTest, RequiredModeStillIssuesTokens) {
  instance_.options.http_tokens = Tokens::kRequired;
  EXPECT_EQ(Get("/latest/meta-data/instance-id").response.status, 401);
  const std::string token = PutToken();
  EXPECT_EQ(Get("/latest/user-data", {{std::string(kToken), token}}).response.status, 200);
  EXPECT_EQ(Get("/", {{std::string(kToken), token}}).response.status, 200);
}

TEST_F(Ec2FlavourTest, NotFoundCounter) {
  Get("/latest/meta-data/nope");
  Get("/latest/meta-data/../x");
  Get("/latest/meta-data/instance-id");
  EXPECT_EQ(CounterValue("imds_not_found_total"), 2u);
}

// --- errors before Render ---

TEST_F(Ec2FlavourTest, RenderError) {
  struct ErrorCase {
    common::Status error;
    int status;
    std::string content_type;
    std::string body;
  };
  const std::vector<ErrorCase> cases = {
      {common::NotFound(""), 404, "text/html", std::string(kNotFoundPage)},
      {common::NotFound("no instance is registered for 10.0.0.9 in network blue"), 404,
       "text/plain", "no instance is registered for 10.0.0.9 in network blue\n"},
      {common::PermissionDenied("untrusted proxy"), 403, "text/plain", "untrusted proxy\n"},
      {common::Unavailable("catalog not loaded"), 503, "text/plain", "catalog not loaded\n"},
      {common::ResourceExhausted(""), 429, "text/html", "*"},
  };
  for (const auto& c : cases) {
    for (std::string_view method : {"GET", "HEAD"}) {
      common::Request request;
      request.method = method;
      request.path = "/latest/meta-data/instance-id";
      common::Response out;
      flavour_->RenderError(c.error, request, out);
      EXPECT_EQ(out.status, c.status) << c.error.ToString();
      EXPECT_EQ(out.content_type, c.content_type);
      if (c.body != "*") {
        EXPECT_EQ(out.body, c.body);
      }
      EXPECT_EQ(out.head, method == "HEAD");
      EXPECT_EQ(HeaderOf(out, "Server"), "EC2ws");
    }
  }
}

}  // namespace
}  // namespace openimds::flavour::ec2
