#include "flavour/openstack/openstack_flavour.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <boost/json.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/time_format.h"
#include "flavour/openstack/python_json.h"
#include "model/instance_json.h"
#include "support/testdata.h"

namespace openimds::flavour::openstack {
namespace {

using ::testing::HasSubstr;

using testdata::ReadFile;

const std::string kData = std::string(OPENIMDS_TESTDATA_DIR) + "/openstack/";

model::Instance Fixture() {
  auto in = model::FromJsonText(ReadFile(kData + "instance.json"));
  EXPECT_TRUE(in.ok()) << in.status().ToString();
  return *in;
}

struct Result {
  common::Status status;
  common::Response response;
};

class OpenStackFlavourTest : public ::testing::Test {
 protected:
  OpenStackFlavourTest() : clock_(*common::ParseRfc3339("2026-11-25T12:00:00Z")) {
    Make({});
  }

  void Make(OpenStackFlavour::Options options) {
    // Deterministic random_seed for goldens: bytes 0, 1, 2, ...
    options.random_bytes = [](unsigned char* buf, size_t n) {
      for (size_t i = 0; i < n; ++i) buf[i] = static_cast<unsigned char>(i);
    };
    auto f = OpenStackFlavour::Create(std::move(options), clock_, &passwords_, metrics_);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    flavour_ = std::move(*f);
  }

  Result Call(std::string_view path, std::string_view method = "GET", std::string_view body = {},
              const model::Instance* instance = nullptr) {
    common::Request req;
    req.method = method;
    req.path = path;
    req.target = path;
    req.body = body;
    Result r;
    r.status = flavour_->Render(instance ? *instance : instance_, req, r.response);
    return r;
  }

  common::FakeClock clock_;
  common::MetricsRegistry metrics_;
  MemoryPasswordStore passwords_;
  std::unique_ptr<OpenStackFlavour> flavour_;
  model::Instance instance_ = Fixture();
};

TEST_F(OpenStackFlavourTest, OwnsOnlyOpenStackPaths) {
  auto owns = [&](std::string_view p) {
    common::Request r;
    r.path = p;
    return flavour_->Owns(r);
  };
  EXPECT_TRUE(owns("/openstack"));
  EXPECT_TRUE(owns("/openstack/"));
  EXPECT_TRUE(owns("/openstack/latest/meta_data.json"));
  EXPECT_TRUE(owns("/x/../openstack/latest"));
  EXPECT_TRUE(owns("///openstack"));
  EXPECT_FALSE(owns("/"));
  EXPECT_FALSE(owns("/latest/meta-data/"));
  EXPECT_FALSE(owns("/openstackx"));
  EXPECT_FALSE(owns("//openstack"));  // Python keeps "//": Nova routes it to EC2
}

TEST(NormalizePath, MatchesPosixpathNormpath) {
  const std::pair<const char*, const char*> cases[] = {
      {"/", "/"},           {"", "/"},
      {"/openstack/", "/openstack"},
      {"/openstack//latest/./meta_data.json", "/openstack/latest/meta_data.json"},
      {"/openstack/latest/../2012-08-10", "/openstack/2012-08-10"},
      {"/../../openstack", "/openstack"},
      {"//openstack", "//openstack"},
      {"///openstack", "/openstack"},
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(OpenStackFlavour::NormalizePath(in), want) << in;
}

TEST_F(OpenStackFlavourTest, VersionListingHidesFutureVersions) {
  auto r = Call("/openstack");
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.content_type, "text/plain; charset=UTF-8");
  // The listing itself: tests/testdata/openstack/cases.json, "versions".
  EXPECT_THAT(r.response.body, HasSubstr("2020-10-14\n2025-04-04\nlatest"));

  clock_.Set(*common::ParseRfc3339("2025-04-03T23:59:59Z"));
  r = Call("/openstack/");
  EXPECT_EQ(r.response.body.find("2025-04-04"), std::string::npos);
  EXPECT_THAT(r.response.body, HasSubstr("2020-10-14\nlatest"));
  clock_.Set(*common::ParseRfc3339("2025-04-04T00:00:00Z"));
  EXPECT_THAT(Call("/openstack").response.body, HasSubstr("2025-04-04\nlatest"));
  // Hidden, yet served when asked for.
  clock_.Set(*common::ParseRfc3339("2020-01-01T00:00:00Z"));
  EXPECT_EQ(Call("/openstack/2025-04-04/meta_data.json").response.status, 200);
}

TEST_F(OpenStackFlavourTest, PerVersionListingInNovasOrder) {
  EXPECT_EQ(Call("/openstack/2012-08-10").response.body, "meta_data.json\nuser_data");
  EXPECT_EQ(Call("/openstack/2013-04-04").response.body, "meta_data.json\nuser_data\npassword");
  EXPECT_EQ(Call("/openstack/2013-10-17/").response.body,
            "meta_data.json\nuser_data\npassword\nvendor_data.json");
  EXPECT_EQ(Call("/openstack/2015-10-15").response.body,
            "meta_data.json\nuser_data\npassword\nvendor_data.json\nnetwork_data.json");
  model::Instance no_ud = instance_;
  no_ud.user_data.reset();
  EXPECT_EQ(Call("/openstack/2012-08-10", "GET", {}, &no_ud).response.body, "meta_data.json");
  EXPECT_EQ(Call("/openstack/2012-08-10/user_data", "GET", {}, &no_ud).response.status, 404);
}

// The documents' bytes: tests/testdata/openstack/cases.json
// (tests/service/golden_test.cc).
TEST_F(OpenStackFlavourTest, DocumentsAreJson) {
  for (const char* path :
       {"/openstack/2012-08-10/meta_data.json", "/openstack/2016-06-30/meta_data.json",
        "/openstack/2018-08-27/meta_data.json", "/openstack/latest/meta_data.json",
        "/openstack/latest/network_data.json", "/openstack/latest/vendor_data.json",
        "/openstack/latest/vendor_data2.json"}) {
    auto r = Call(path);
    EXPECT_EQ(r.response.status, 200) << path;
    // Every JSON document parses.
    boost::system::error_code ec;
    (void)boost::json::parse(r.response.body, ec);
    EXPECT_FALSE(ec) << path;
  }
  EXPECT_EQ(Call("/openstack/latest/meta_data.json").response.content_type, "application/json");
  EXPECT_EQ(Call("/openstack/latest/network_data.json").response.content_type,
            "text/plain; charset=UTF-8");  // as Nova sends it
  auto ud = Call("/openstack/latest/user_data");
  EXPECT_EQ(ud.response.body, "#cloud-config\nhostname: web-1\n");
}

TEST_F(OpenStackFlavourTest, RandomSeedFreshPerRequest) {
  OpenStackFlavour::Options o;
  auto f = OpenStackFlavour::Create(o, clock_, &passwords_, metrics_);  // real randomness
  ASSERT_TRUE(f.ok());
  common::Request req;
  req.method = "GET";
  req.path = "/openstack/latest/meta_data.json";
  common::Response a, b;
  ASSERT_TRUE((*f)->Render(instance_, req, a).ok());
  ASSERT_TRUE((*f)->Render(instance_, req, b).ok());
  auto seed = [](const std::string& body) {
    return std::string(boost::json::parse(body).at("random_seed").as_string());
  };
  EXPECT_NE(seed(a.body), seed(b.body));
  EXPECT_EQ(seed(a.body).size(), 684u);  // base64 of 512 bytes
}

TEST_F(OpenStackFlavourTest, NetworkDataDerivedFromNicsWithoutConfig) {
  model::Instance plain = instance_;
  plain.guest.mut().network_config = {};
  // What it derives: tests/testdata/openstack/cases.json, "network_data-derived".
  EXPECT_THAT(Call("/openstack/latest/network_data.json", "GET", {}, &plain).response.body,
              HasSubstr("\"type\": \"ipv4_dhcp\""));
  plain.nics.clear();
  EXPECT_EQ(Call("/openstack/latest/network_data.json", "GET", {}, &plain).response.body, "{}");
}

TEST_F(OpenStackFlavourTest, UnknownVersionsAndFilesAre404) {
  for (const char* p : {"/openstack/2011-01-01", "/openstack/2011-01-01/meta_data.json",
                        "/openstack/latest/nope", "/openstack/latest/meta_data.json/x",
                        "/openstack/content", "/openstack/content/0000",
                        "/openstack/2012-08-10/password", "/openstack/2013-04-04/vendor_data.json",
                        "/openstack/2016-06-30/vendor_data2.json"}) {
    auto r = Call(p);
    EXPECT_EQ(r.response.status, 404) << p;
    EXPECT_EQ(r.status.code(), common::Code::kNotFound) << p;
    EXPECT_EQ(r.response.body, "404 Not Found\n\nThe resource could not be found.\n\n   ");
  }
  EXPECT_GE(metrics_.GetCounter("openstack_refused_total", "", "reason=\"not_found\"").Value(), 9u);
}

TEST_F(OpenStackFlavourTest, PinnedInstanceIsRefused) {
  model::Instance ec2_only = instance_;
  ec2_only.flavours = {"ec2"};
  auto r = Call("/openstack/latest/meta_data.json", "GET", {}, &ec2_only);
  EXPECT_EQ(r.response.status, 404);
  EXPECT_EQ(metrics_.GetCounter("openstack_refused_total", "", "reason=\"flavour_not_allowed\"")
                .Value(),
            1u);
  ec2_only.flavours.clear();  // empty = every flavour
  EXPECT_EQ(Call("/openstack", "GET", {}, &ec2_only).response.status, 200);
}

TEST_F(OpenStackFlavourTest, StaticVendorDataOptions) {
  OpenStackFlavour::Options o;
  o.static_vendor_data = R"({"site": "default", "ntp": ["10.0.0.1"]})";
  Make(o);
  // The instance's object is merged over the deployment's.
  EXPECT_EQ(Call("/openstack/latest/vendor_data.json").response.body,
            R"({"site": "lab", "ntp": ["10.0.0.1"], "cloud-init": "#cloud-config\npackages: [htop]\n"})");
  o.static_vendor_data_enabled = false;
  Make(o);
  EXPECT_EQ(Call("/openstack/latest/vendor_data.json").response.status, 404);
  EXPECT_EQ(Call("/openstack/latest/vendor_data2.json").response.body, "{}");
  o.static_vendor_data = "[1]";
  EXPECT_FALSE(OpenStackFlavour::Create(o, clock_, nullptr, metrics_).ok());
}

TEST_F(OpenStackFlavourTest, PasswordWriteOnce) {
  auto r = Call("/openstack/latest/password");
  EXPECT_EQ(r.response.status, 200);
  EXPECT_EQ(r.response.body, "");
  EXPECT_EQ(r.response.content_type, "text/html; charset=UTF-8");

  EXPECT_EQ(Call("/openstack/latest/password", "POST", std::string(1021, 'x')).response.status, 400);
  EXPECT_EQ(Call("/openstack/latest/password", "POST", std::string(1020, 'x')).response.status, 200);
  r = Call("/openstack/latest/password", "POST", "again");
  EXPECT_EQ(r.response.status, 409);
  EXPECT_EQ(r.status.code(), common::Code::kConflict);
  EXPECT_EQ(Call("/openstack/2013-04-04/password").response.body, std::string(1020, 'x'));
  EXPECT_EQ(Call("/openstack/latest/password", "PUT", "x").response.status, 400);
  EXPECT_EQ(Call("/openstack/latest/password", "HEAD").response.status, 400);

  passwords_.Clear(instance_.id);  // the admin side
  EXPECT_EQ(Call("/openstack/latest/password").response.body, "");
  EXPECT_EQ(Call("/openstack/latest/password", "POST", "new").response.status, 200);
}

TEST_F(OpenStackFlavourTest, PasswordDeclaredLengthTooLarge) {
  common::Request req;
  req.method = "POST";
  req.path = "/openstack/latest/password";
  req.body = "short";
  req.headers.push_back({"Content-Length", "5000"});
  common::Response out;
  (void)flavour_->Render(instance_, req, out);
  EXPECT_EQ(out.status, 400);
}

TEST_F(OpenStackFlavourTest, RacingPasswordPostsHaveOneWinner) {
  constexpr int kThreads = 8;
  std::atomic<int> ok{0}, conflict{0};
  std::vector<std::thread> threads;
  std::vector<std::string> bodies;
  for (int i = 0; i < kThreads; ++i) bodies.push_back("pw-" + std::to_string(i));
  std::atomic<bool> go{false};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) {
      }
      auto r = Call("/openstack/latest/password", "POST", bodies[i]);
      (r.response.status == 200 ? ok : conflict).fetch_add(1);
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(conflict.load(), kThreads - 1);
  EXPECT_THAT(Call("/openstack/latest/password").response.body, ::testing::StartsWith("pw-"));
}

TEST(PythonJson, MatchesJsonDumps) {
  auto v = boost::json::parse(R"({"a": [1, true, null, "x\"\\\n\u0001"], "é": "日本🙂", "b": {}})");
  std::string out;
  AppendPythonJson(v, out);
  // python3 -c 'import json; print(json.dumps({"a":[1,True,None,"x\"\\\n\x01"],"é":"日本🙂","b":{}}))'
  EXPECT_EQ(out,
            R"({"a": [1, true, null, "x\"\\\n\u0001"], "\u00e9": "\u65e5\u672c\ud83d\ude42", "b": {}})");
}

}  // namespace
}  // namespace openimds::flavour::openstack
