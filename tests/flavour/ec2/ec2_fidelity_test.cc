// The rest of the EC2 category tree (events on a timeline, the
// identity role, signed identity documents, credentials from a provider,
// placement and interface extras), the operator's counters, and bad token
// input. The flavour is driven directly with a FakeClock; golden bodies live
// in tests/testdata/ec2/.
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
// After pem.h (its PEM declarations use pem.h's macros).
#include <openssl/cms.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "auth/document_signer.h"
#include "auth/token_authority.h"
#include "common/clock.h"
#include "common/encoding.h"
#include "common/metrics.h"
#include "flavour/ec2/ec2_flavour.h"
#include "flavour/ec2/ec2_test_instance.h"
#include "support/testdata.h"

namespace openimds::flavour::ec2 {
namespace {

using test_support::At;
using test_support::FullTestInstance;
using Headers = std::vector<std::pair<std::string, std::string>>;
using Tokens = model::MetadataOptions::HttpTokens;

constexpr std::string_view kTokenHeader = "X-aws-ec2-metadata-token";
constexpr std::string_view kTtlHeader = "X-aws-ec2-metadata-token-ttl-seconds";

using testdata::ReadFile;


// A provider the test fills in; counts its lookups.
class FakeCredentials final : public CredentialProvider {
 public:
  std::shared_ptr<const model::Credentials> Find(const model::Instance&) const override {
    std::lock_guard lock(mu_);
    ++lookups_;
    return creds_;
  }
  void Set(std::optional<model::Credentials> c) {
    std::lock_guard lock(mu_);
    creds_ = c ? std::make_shared<const model::Credentials>(*c) : nullptr;
  }
  int lookups() const {
    std::lock_guard lock(mu_);
    return lookups_;
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const model::Credentials> creds_;  // guarded by mu_
  mutable int lookups_ = 0;                          // guarded by mu_
};

// One RSA identity for the whole suite (key generation is the slow part).
const auth::SigningIdentity& Identity() {
  static const auth::SigningIdentity id = *auth::GenerateSigningIdentity({});
  return id;
}

struct Reply {
  common::Status status;
  common::Response response;
  int code() const { return response.status; }
  const std::string& body() const { return response.body; }
};

class Ec2FidelityTest : public ::testing::Test {
 protected:
  Ec2FidelityTest() {
    auth::DocumentSigner::Options o;
    o.key_pem = Identity().key_pem;
    o.certificate_pem = Identity().certificate_pem;
    signer_ = std::move(auth::DocumentSigner::Create(o)).value();
    Rebuild({});
  }

  void Rebuild(Ec2Flavour::Options options, bool with_signer = true) {
    flavour_.reset();
    metrics_ = std::make_unique<common::MetricsRegistry>();
    flavour_ = std::make_unique<Ec2Flavour>(std::move(options), tokens_, clock_, *metrics_,
                                            with_signer ? signer_.get() : nullptr, &provider_);
  }

  Reply Call(std::string_view method, std::string_view path, const Headers& headers = {}) {
    common::Request request;
    request.method = method;
    request.target = path;
    request.path = path.substr(0, path.find('?'));
    for (const auto& [n, v] : headers) request.headers.push_back({n, v});
    Reply r;
    r.status = flavour_->Render(instance_, request, r.response);
    return r;
  }
  Reply Get(std::string_view path, const Headers& headers = {}) {
    return Call("GET", path, headers);
  }
  std::string Body(std::string_view path) { return Get(path).body(); }
  int Code(std::string_view path) { return Get(path).code(); }
  uint64_t Counter(std::string_view name, std::string_view labels = {}) const {
    return metrics_->CounterValue(name, labels);
  }

  common::FakeClock clock_{At("2024-05-01T13:00:00Z")};
  auth::TokenAuthority tokens_ =
      std::move(auth::TokenAuthority::Create({auth::TokenKey{7, std::string(32, 'k')}}, clock_))
          .value();
  std::unique_ptr<auth::DocumentSigner> signer_;
  FakeCredentials provider_;
  std::unique_ptr<common::MetricsRegistry> metrics_;
  std::unique_ptr<Ec2Flavour> flavour_;
  model::Instance instance_ = FullTestInstance();
};

// --- the tree ---

// Golden bodies of FullTestInstance(): tests/testdata/ec2/cases.json, "full-*" and
// after (tests/service/golden_test.cc).

TEST_F(Ec2FidelityTest, Leaves) {
  const std::string mac = "/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/latest/meta-data/ami-manifest-path", "(unknown)"},
      {"/latest/meta-data/ancestor-ami-ids", "ami-0aaaaaaaaaaaaaaa1\nami-0aaaaaaaaaaaaaaa2"},
      {"/latest/meta-data/product-codes", "1abc2defghijklm3nopqrs4tu"},
      {"/latest/meta-data/instance-action", "none"},
      {"/latest/meta-data/instance-life-cycle", "spot"},
      {"/latest/meta-data/profile", "default-hvm"},
      {"/latest/meta-data/kernel-id/", ""},  // absent: checked below
      {"/latest/meta-data/placement/group-name", "web-cluster"},
      {"/latest/meta-data/placement/host-id", "h-0123456789abcdef0"},
      {"/latest/meta-data/placement/partition-number", "3"},
      {"/latest/meta-data/placement/region", "us-east-1"},
      {"/latest/meta-data/placement/availability-zone-id", "use1-az4"},
      {"/latest/dynamic/fws/instance-monitoring", "enabled"},
      {mac + "ipv4-associations/", "203.0.113.25"},
      {mac + "ipv4-associations/203.0.113.25", "10.0.0.12"},
      {mac + "ipv4-prefix", "10.0.8.0/28"},
      {mac + "ipv6-prefix", "2001:db8:1::/80"},
      {mac + "ipv6s", "2001:db8::12\n2001:db8::13"},
      {mac + "subnet-ipv6-cidr-blocks", "2001:db8::/64"},
      {mac + "vpc-ipv4-cidr-blocks", "10.0.0.0/16\n10.1.0.0/16"},
      {mac + "vpc-ipv6-cidr-blocks", "2001:db8::/56"},
      {mac + "security-group-ids", "sg-0000000000000000a\nsg-0000000000000000b"},
      {mac + "network-card-index", "0"},
      {"/latest/meta-data/identity-credentials/ec2/security-credentials/", "ec2-instance"},
      {"/latest/meta-data/autoscaling/target-lifecycle-state", "Warmed:Stopped"},
  };
  for (const auto& [path, body] : cases) {
    if (body.empty()) continue;
    Reply r = Get(path);
    EXPECT_EQ(r.code(), 200) << path;
    EXPECT_EQ(r.body(), body) << path;
    EXPECT_EQ(r.response.content_type, "text/plain") << path;
  }
}

TEST_F(Ec2FidelityTest, EmptyValuesAreAbsentNotEmpty) {
  model::Instance& i = instance_;
  i.ec2.mut().ami_manifest_path.clear();
  i.ec2.mut().ancestor_ami_ids.clear();
  i.ec2.mut().product_codes.clear();
  i.ec2.mut().instance_action.clear();
  i.ec2.mut().instance_life_cycle.clear();
  i.ec2.mut().profile.clear();
  i.ec2.mut().placement_group.clear();
  i.ec2.mut().host_id.clear();
  i.ec2.mut().partition_number = 0;
  i.ec2.mut().identity_credentials.reset();
  i.account_id.clear();
  i.ec2.mut().events = {};
  i.nics[0].ipv4_associations.clear();
  i.nics[0].ipv4_prefixes.clear();
  i.nics[0].ipv6_prefixes.clear();
  i.ec2.mut().detailed_monitoring = false;
  // EC2's defaults where it always has a value:
  EXPECT_EQ(Body("/latest/meta-data/ami-manifest-path"), "(unknown)");
  EXPECT_EQ(Body("/latest/meta-data/instance-action"), "none");
  EXPECT_EQ(Body("/latest/meta-data/instance-life-cycle"), "on-demand");
  EXPECT_EQ(Body("/latest/meta-data/profile"), "default-hvm");
  EXPECT_EQ(Body("/latest/dynamic/fws/instance-monitoring"), "disabled");
  EXPECT_EQ(Body("/latest/meta-data/events/maintenance/scheduled"), "[ ]");
  EXPECT_EQ(Body("/latest/meta-data/events/maintenance/history"), "[ ]");
  // Everything else is 404 and missing from its listing.
  const std::string mac = "/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/";
  for (const std::string& path : std::vector<std::string>{
           "/latest/meta-data/ancestor-ami-ids", "/latest/meta-data/product-codes",
           "/latest/meta-data/placement/group-name", "/latest/meta-data/placement/host-id",
           "/latest/meta-data/placement/partition-number",
           "/latest/meta-data/identity-credentials/",
           "/latest/meta-data/identity-credentials/ec2/info", "/latest/meta-data/spot/",
           "/latest/meta-data/spot/instance-action", "/latest/meta-data/spot/termination-time",
           "/latest/meta-data/events/recommendations/", "/latest/meta-data/autoscaling/",
           "/latest/meta-data/autoscaling/target-lifecycle-state", mac + "ipv4-associations/",
           mac + "ipv4-prefix", mac + "ipv6-prefix"}) {
    Reply r = Get(path);
    EXPECT_EQ(r.code(), 404) << path;
    EXPECT_EQ(r.response.content_type, "text/html") << path;
  }
  const std::string listing = "\n" + Body("/latest/meta-data/") + "\n";
  for (const char* name : {"\nancestor-ami-ids\n", "\nproduct-codes\n", "\nspot/\n",
                           "\nautoscaling/\n", "\nidentity-credentials/\n"}) {
    EXPECT_EQ(listing.find(name), std::string::npos) << name;
  }
  EXPECT_EQ(Body("/latest/meta-data/placement/"),
            "availability-zone\navailability-zone-id\nregion");
  EXPECT_EQ(Body("/latest/meta-data/events/"), "maintenance/");
}

TEST_F(Ec2FidelityTest, NewCategoriesAreVersionGated) {
  clock_.Set(At("2024-05-01T13:45:00Z"));
  const std::string mac = "/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/";
  const std::vector<std::pair<std::string, std::string>> gates = {
      // {path, first version}: the version before it answers 404.
      {"/meta-data/ancestor-ami-ids", "2007-10-10"},
      {"/meta-data/product-codes", "2007-03-01"},
      {"/meta-data/instance-action", "2008-09-01"},
      {"/meta-data/instance-life-cycle", "2019-10-01"},
      {"/meta-data/placement/group-name", "2020-08-24"},
      {"/meta-data/placement/partition-number", "2020-08-24"},
      {"/meta-data/spot/termination-time", "2014-11-05"},
      {"/meta-data/spot/instance-action", "2016-11-15"},
      {"/meta-data/events/maintenance/scheduled", "2018-08-17"},
      {"/meta-data/events/recommendations/rebalance", "2020-10-27"},
      {"/meta-data/autoscaling/target-lifecycle-state", "2021-07-15"},
      {"/meta-data/identity-credentials/ec2/info", "2018-05-23"},
      {mac + "ipv4-prefix", "2021-07-15"},
      {"/dynamic/instance-identity/signature", "2009-04-04"},
  };
  for (const auto& [path, since] : gates) {
    const int index = VersionIndex(since);
    ASSERT_GT(index, 0) << since;
    const std::string before(kVersions[index - 1]);
    EXPECT_EQ(Code("/" + std::string(since) + path), 200) << since << path;
    EXPECT_EQ(Code("/" + before + path), 404) << before << path;
    EXPECT_EQ(Code("/latest" + path), 200) << path;
  }
  // A directory whose children are all too new is absent, not empty.
  EXPECT_EQ(Code("/2016-11-30/meta-data/events/"), 404);
  EXPECT_EQ(Code("/2018-08-17/meta-data/events/recommendations/"), 404);
  EXPECT_EQ(Body("/2018-08-17/meta-data/events/"), "maintenance/");
  EXPECT_EQ(Body("/latest/meta-data/events/"), "maintenance/\nrecommendations/");
}

// --- events on the clock ---

TEST_F(Ec2FidelityTest, SpotInterruptionAppearsWithTwoMinutesNotice) {
  const std::string action = "/latest/meta-data/spot/instance-action";
  const std::string termination = "/latest/meta-data/spot/termination-time";
  clock_.Set(At("2024-05-01T13:09:59Z"));
  EXPECT_EQ(Code(action), 404);
  EXPECT_EQ(Code(termination), 404);
  EXPECT_EQ(Code("/latest/meta-data/spot/"), 404);
  clock_.Set(At("2024-05-01T13:10:00Z"));  // time - 2 min
  EXPECT_EQ(Body(action), R"({"action": "terminate", "time": "2024-05-01T13:12:00Z"})");
  EXPECT_EQ(Body(termination), "2024-05-01T13:12:00Z");
  EXPECT_EQ(Body("/latest/meta-data/spot/"), "instance-action\ntermination-time");
  // An explicit notice time wins; stop and hibernate have no termination-time.
  instance_.ec2.mut().events.spot->action = "stop";
  instance_.ec2.mut().events.spot->notice_time = At("2024-05-01T13:11:00Z");
  EXPECT_EQ(Code(action), 404);
  clock_.Set(At("2024-05-01T13:11:00Z"));
  EXPECT_EQ(Body(action), R"({"action": "stop", "time": "2024-05-01T13:12:00Z"})");
  EXPECT_EQ(Code(termination), 404);
  EXPECT_EQ(Body("/latest/meta-data/spot/"), "instance-action");
  boost::json::object o = boost::json::parse(Body(action)).as_object();
  EXPECT_EQ(o.at("action"), "stop");
}

TEST_F(Ec2FidelityTest, RebalanceRecommendation) {
  const std::string path = "/latest/meta-data/events/recommendations/rebalance";
  clock_.Set(At("2024-05-01T13:04:59Z"));
  EXPECT_EQ(Code(path), 404);
  EXPECT_EQ(Body("/latest/meta-data/events/"), "maintenance/");
  clock_.Set(At("2024-05-01T13:05:00Z"));
  EXPECT_EQ(Body(path), R"({"noticeTime": "2024-05-01T13:05:00Z"})");
  EXPECT_EQ(Body("/latest/meta-data/events/"), "maintenance/\nrecommendations/");
}

TEST_F(Ec2FidelityTest, ScheduledEventsMoveToTheHistory) {
  const std::string scheduled = "/latest/meta-data/events/maintenance/scheduled";
  const std::string history = "/latest/meta-data/events/maintenance/history";
  auto ids = [&](const std::string& path) {
    std::vector<std::string> out;
    const boost::json::value doc = boost::json::parse(Body(path));
    for (const auto& e : doc.as_array()) {
      out.emplace_back(e.as_object().at("EventId").as_string());
    }
    return out;
  };
  using V = std::vector<std::string>;
  const std::string a = "instance-event-0d59937288b749b32";
  const std::string b = "instance-event-0aaaaaaaaaaaaaaa1";
  // 13:00: A is active; B (canceled) is not yet visible.
  EXPECT_EQ(ids(scheduled), V{a});
  EXPECT_EQ(Body(history), "[ ]");
  // 13:30: B appears, in the history (it is canceled), with its prefix.
  clock_.Set(At("2024-05-01T13:30:00Z"));
  EXPECT_EQ(ids(history), V{b});
  auto ev = boost::json::parse(Body(history)).as_array()[0].as_object();
  EXPECT_EQ(ev.at("State"), "canceled");
  EXPECT_EQ(ev.at("Description"), "[Canceled] The instance is scheduled for instance-stop");
  EXPECT_EQ(ev.at("NotBefore"), "8 May 2024 09:00:00 GMT");
  EXPECT_EQ(ev.at("NotBeforeDeadline"), "10 May 2024 09:00:00 GMT");
  EXPECT_FALSE(ev.contains("NotAfter"));
  // 14:00: A's NotAfter has passed: it is completed, and moves.
  clock_.Set(At("2024-05-01T14:00:00Z"));
  EXPECT_EQ(Body(scheduled), "[ ]");
  EXPECT_EQ(ids(history), (V{a, b}));
  ev = boost::json::parse(Body(history)).as_array()[0].as_object();
  EXPECT_EQ(ev.at("State"), "completed");
  EXPECT_EQ(ev.at("Description"), "[Completed] scheduled reboot");
  EXPECT_EQ(ev.at("Code"), "system-reboot");
  EXPECT_EQ(ev.at("NotAfter"), "1 May 2024 14:00:00 GMT");
  // An operator marks an event completed explicitly.
  clock_.Set(At("2024-05-01T13:00:00Z"));
  instance_.ec2.mut().events.scheduled[0].state = model::ScheduledEvent::State::kCompleted;
  EXPECT_EQ(Body(scheduled), "[ ]");
  EXPECT_EQ(ids(history), V{a});
}

TEST_F(Ec2FidelityTest, EveryAutoScalingState) {
  const std::string path = "/latest/meta-data/autoscaling/target-lifecycle-state";
  instance_.ec2.mut().events.lifecycle.clear();
  EXPECT_EQ(Code(path), 404);
  const std::vector<std::string> states = {
      "Warmed:Stopped", "Warmed:Running", "Warmed:Hibernated", "InService",
      "Standby",        "Detached",       "Warmed:Terminated", "Terminated"};
  for (size_t n = 0; n < states.size(); ++n) {
    instance_.ec2.mut().events.lifecycle.push_back(
        {states[n], At("2024-05-01T14:00:00Z") + std::chrono::minutes(10 * n)});
  }
  EXPECT_EQ(Code(path), 404);  // none due yet
  for (size_t n = 0; n < states.size(); ++n) {
    clock_.Set(At("2024-05-01T14:00:00Z") + std::chrono::minutes(10 * n));
    EXPECT_EQ(Body(path), states[n]);
    clock_.Advance(std::chrono::minutes(9));
    EXPECT_EQ(Body(path), states[n]);
  }
}

// --- credentials ---

TEST_F(Ec2FidelityTest, CredentialsFromTheProviderWhenTheRecordHasNone) {
  const std::string path = "/latest/meta-data/iam/security-credentials/web-role";
  instance_.iam->credentials.reset();
  EXPECT_EQ(Code(path), 404);
  EXPECT_EQ(Counter("imds_credential_reads_total", "delivery=\"v1\",result=\"unavailable\""), 1u);
  model::Credentials c;
  c.access_key_id = "ASIAPROVIDEDEXAMPLE1";
  c.secret_access_key = "provided/secret";
  c.token = "provided-token";
  c.last_updated = At("2024-05-01T12:55:00Z");
  c.expiration = At("2024-05-01T14:00:00Z");
  provider_.Set(c);
  Reply r = Get(path);
  ASSERT_EQ(r.code(), 200);
  boost::json::object o = boost::json::parse(r.body()).as_object();
  EXPECT_EQ(o.at("AccessKeyId"), "ASIAPROVIDEDEXAMPLE1");
  EXPECT_EQ(o.at("Expiration"), "2024-05-01T14:00:00Z");
  EXPECT_EQ(o.at("Code"), "Success");
  EXPECT_EQ(o.at("Type"), "AWS-HMAC");
  EXPECT_EQ(o.at("LastUpdated"), "2024-05-01T12:55:00Z");
  EXPECT_EQ(Counter("imds_credential_reads_total", "delivery=\"v1\",result=\"served\""), 1u);
  // Expired in the provider too: never served, the role stays listed.
  clock_.Set(At("2024-05-01T14:00:00Z"));
  EXPECT_EQ(Code(path), 404);
  EXPECT_EQ(Body("/latest/meta-data/iam/security-credentials/"), "web-role");
  EXPECT_EQ(Counter("imds_credential_reads_total", "delivery=\"v1\",result=\"unavailable\""), 2u);
}

TEST_F(Ec2FidelityTest, FreshRecordCredentialsWinOverTheProvider) {
  const std::string path = "/latest/meta-data/iam/security-credentials/web-role";
  model::Credentials c;
  c.access_key_id = "ASIAPROVIDEDEXAMPLE1";
  c.secret_access_key = "s";
  c.token = "t";
  c.expiration = At("2024-05-02T00:00:00Z");
  provider_.Set(c);
  EXPECT_EQ(boost::json::parse(Body(path)).as_object().at("AccessKeyId"), "ASIAIOSFODNN7EXAMPLE");
  EXPECT_EQ(provider_.lookups(), 0);       // not even asked
  clock_.Set(At("2024-05-01T18:00:00Z"));  // the record's have expired
  EXPECT_EQ(boost::json::parse(Body(path)).as_object().at("AccessKeyId"), "ASIAPROVIDEDEXAMPLE1");
  EXPECT_EQ(provider_.lookups(), 1);
}

TEST_F(Ec2FidelityTest, CredentialReadsAreCountedByDelivery) {
  instance_.options.http_tokens = Tokens::kOptional;
  Reply put = Call("PUT", "/latest/api/token", {{std::string(kTtlHeader), "60"}});
  ASSERT_EQ(put.code(), 200);
  const Headers with_token = {{std::string(kTokenHeader), put.body()}};
  const std::string role = "/latest/meta-data/iam/security-credentials/web-role";
  const std::string ec2 =
      "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance";
  EXPECT_EQ(Get(role).code(), 200);
  EXPECT_EQ(Get(role, with_token).code(), 200);
  EXPECT_EQ(Get(ec2, with_token).code(), 200);
  Get("/latest/meta-data/iam/security-credentials/");  // a listing is not a read
  Get("/latest/meta-data/iam/info");
  EXPECT_EQ(Counter("imds_credential_reads_total", "delivery=\"v1\",result=\"served\""), 1u);
  EXPECT_EQ(Counter("imds_credential_reads_total", "delivery=\"v2\",result=\"served\""), 2u);
  clock_.Set(At("2024-05-01T18:30:00Z"));  // identity credentials expire
  Reply gone = Get(ec2);
  EXPECT_EQ(gone.code(), 404);
  EXPECT_EQ(gone.status.code(), common::Code::kNotFound);
  EXPECT_EQ(Counter("imds_credential_reads_total", "delivery=\"v1\",result=\"unavailable\""), 1u);
}

// --- signed identity documents ---

std::optional<std::string> VerifyCms(const std::string& body, const std::string& cert_pem) {
  const std::string pem = "-----BEGIN PKCS7-----\n" + body + "\n-----END PKCS7-----\n";
  BIO* in = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  CMS_ContentInfo* cms = PEM_read_bio_CMS(in, nullptr, nullptr, nullptr);
  BIO_free(in);
  if (cms == nullptr) return std::nullopt;
  BIO* cb = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  X509* x = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
  BIO_free(cb);
  STACK_OF(X509)* certs = sk_X509_new_null();
  sk_X509_push(certs, x);
  BIO* out = BIO_new(BIO_s_mem());
  std::optional<std::string> content;
  if (CMS_verify(cms, certs, nullptr, nullptr, out, CMS_NO_SIGNER_CERT_VERIFY | CMS_BINARY) == 1) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(out, &data);
    content = std::string(data, static_cast<size_t>(n));
  }
  BIO_free(out);
  sk_X509_pop_free(certs, X509_free);
  CMS_ContentInfo_free(cms);
  return content;
}

TEST_F(Ec2FidelityTest, SignedIdentityDocuments) {
  EXPECT_EQ(Body("/latest/dynamic/instance-identity/"), "document\npkcs7\nrsa2048\nsignature");
  const std::string document = Body("/latest/dynamic/instance-identity/document");
  for (const char* form : {"pkcs7", "rsa2048"}) {
    Reply r = Get(std::string("/latest/dynamic/instance-identity/") + form);
    ASSERT_EQ(r.code(), 200) << form;
    EXPECT_EQ(r.response.content_type, "text/plain");
    EXPECT_EQ(VerifyCms(r.body(), Identity().certificate_pem), document) << form;
  }
  Reply sig = Get("/latest/dynamic/instance-identity/signature");
  ASSERT_EQ(sig.code(), 200);
  auto raw = common::Base64Decode(sig.body());
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ(raw->size(), 256u);
  // Served again: the cached artifacts, no new signature.
  const uint64_t signed_so_far = signer_->signings();
  EXPECT_EQ(signed_so_far, 3u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(Body("/latest/dynamic/instance-identity/signature"), sig.body());
    Body("/latest/dynamic/instance-identity/pkcs7");
    Body("/latest/dynamic/instance-identity/");
  }
  EXPECT_EQ(signer_->signings(), signed_so_far);
  // The document changes with the instance: signed again, and the new
  // signature matches the new document only.
  instance_.instance_type = "m5.xlarge";
  const std::string changed = Body("/latest/dynamic/instance-identity/document");
  EXPECT_NE(changed, document);
  Reply p7 = Get("/latest/dynamic/instance-identity/rsa2048");
  EXPECT_EQ(VerifyCms(p7.body(), Identity().certificate_pem), changed);
  EXPECT_EQ(signer_->signings(), signed_so_far + 1);
}

TEST_F(Ec2FidelityTest, WithoutASignerOnlyTheDocument) {
  Rebuild({}, /*with_signer=*/false);
  EXPECT_EQ(Body("/latest/dynamic/instance-identity/"), "document");
  for (const char* form : {"pkcs7", "rsa2048", "signature"}) {
    EXPECT_EQ(Code(std::string("/latest/dynamic/instance-identity/") + form), 404) << form;
  }
}

TEST_F(Ec2FidelityTest, IdentityDocumentCarriesProductCodes) {
  boost::json::object d =
      boost::json::parse(Body("/latest/dynamic/instance-identity/document")).as_object();
  EXPECT_EQ(d.at("marketplaceProductCodes").as_array().size(), 1u);
  EXPECT_EQ(d.at("marketplaceProductCodes").as_array()[0], "1abc2defghijklm3nopqrs4tu");
  EXPECT_EQ(d.at("billingProducts").as_array()[0], "bp-6ba54002");
  EXPECT_TRUE(d.at("devpayProductCodes").is_null());
  EXPECT_NE(Body("/latest/dynamic/instance-identity/document")
                .find("\"marketplaceProductCodes\" : [ \"1abc2defghijklm3nopqrs4tu\" ]"),
            std::string::npos);
}

// --- every listed name is fetchable (cloud-init's crawl), all versions ---

TEST_F(Ec2FidelityTest, EveryListedNameIsFetchable) {
  clock_.Set(At("2024-05-01T13:45:00Z"));
  instance_.options.tags_enabled = true;
  for (std::string_view version :
       {"latest", "2021-07-15", "2021-03-23", "2018-09-24", "2016-09-02", "2009-04-04", "1.0"}) {
    std::vector<std::string> pending = {"/" + std::string(version) + "/"};
    int fetched = 0;
    while (!pending.empty()) {
      const std::string dir = pending.back();
      pending.pop_back();
      Reply listing = Get(dir);
      ASSERT_EQ(listing.code(), 200) << dir;
      ASSERT_FALSE(listing.body().empty()) << dir;
      std::istringstream in(listing.body());
      for (std::string name; std::getline(in, name);) {
        if (const size_t eq = name.find('='); eq != std::string::npos) {
          name = name.substr(0, eq) + "/";
        }
        if (name == "meta-data" || name == "dynamic") name += "/";
        if (name.back() == '/') {
          pending.push_back(dir + name);
          continue;
        }
        Reply leaf = Get(dir + name);
        EXPECT_EQ(leaf.code(), 200) << dir + name;
        EXPECT_FALSE(leaf.body().empty() && name != "Empty") << dir + name;
        ++fetched;
      }
    }
    EXPECT_GT(fetched, 5) << version;
  }
}

// --- wire details ---

TEST_F(Ec2FidelityTest, AcceptIsIgnoredAndHeadMatchesGet) {
  for (const std::string& path : std::vector<std::string>{
           "/latest/meta-data/events/maintenance/scheduled",
           "/latest/meta-data/iam/security-credentials/web-role",
           "/latest/dynamic/instance-identity/document", "/latest/meta-data/placement/"}) {
    Reply plain = Get(path);
    Reply json = Get(path, {{"Accept", "application/json"}});
    Reply html = Get(path, {{"Accept", "text/html;q=0.9, */*;q=0.1"}});
    Reply head = Call("HEAD", path, {{"Accept", "application/json"}});
    EXPECT_EQ(json.body(), plain.body()) << path;
    EXPECT_EQ(html.body(), plain.body()) << path;
    EXPECT_EQ(json.response.content_type, "text/plain") << path;
    EXPECT_EQ(head.code(), 200) << path;
    EXPECT_TRUE(head.response.head);
    EXPECT_EQ(head.body(), plain.body()) << path;  // the core sends only its length
  }
  EXPECT_EQ(Get("/latest/user-data", {{"Accept", "text/plain"}}).response.content_type,
            "application/octet-stream");
}

TEST_F(Ec2FidelityTest, NewDirectoriesRedirectWithoutTheSlash) {
  clock_.Set(At("2024-05-01T13:45:00Z"));
  for (const std::string& dir : std::vector<std::string>{
           "/latest/meta-data/events", "/latest/meta-data/events/maintenance",
           "/latest/meta-data/spot", "/latest/meta-data/identity-credentials/ec2",
           "/latest/dynamic/fws", "/latest/meta-data/autoscaling"}) {
    Reply r = Get(dir, {{"Host", "169.254.169.254"}});
    EXPECT_EQ(r.code(), 301) << dir;
    bool found = false;
    for (const auto& [name, value] : r.response.headers) {
      if (name == "Location") {
        EXPECT_EQ(value, "http://169.254.169.254" + dir + "/");
        found = true;
      }
    }
    EXPECT_TRUE(found) << dir;
  }
}

// --- counters ---

TEST_F(Ec2FidelityTest, ImdsV1RequestsPerInstance) {
  Get("/latest/meta-data/instance-id");
  Get("/latest/meta-data/instance-id");
  model::Instance other = instance_;
  other.id = "i-0ffffffffffffffff";
  std::swap(instance_, other);
  Get("/latest/meta-data/instance-id");
  std::swap(instance_, other);
  EXPECT_EQ(Counter("imds_v1_requests_total", "instance=\"i-0123456789abcdef0\""), 2u);
  EXPECT_EQ(Counter("imds_v1_requests_total", "instance=\"i-0ffffffffffffffff\""), 1u);
  EXPECT_EQ(Counter("imds_requests_total", "version=\"v1\""), 3u);
  // With a valid token the request is v2: no per-instance v1 count.
  Reply put = Call("PUT", "/latest/api/token", {{std::string(kTtlHeader), "60"}});
  Get("/latest/meta-data/instance-id", {{std::string(kTokenHeader), put.body()}});
  EXPECT_EQ(Counter("imds_v1_requests_total", "instance=\"i-0123456789abcdef0\""), 2u);
  EXPECT_EQ(Counter("imds_requests_total", "version=\"v2\""), 1u);
}

TEST_F(Ec2FidelityTest, ImdsV1SeriesAreCapped) {
  Ec2Flavour::Options options;
  options.max_v1_instance_series = 2;
  Rebuild(options);
  for (const char* id : {"i-1", "i-2", "i-3", "i-4", "i-1"}) {
    instance_.id = id;
    Get("/latest/meta-data/instance-id");
  }
  EXPECT_EQ(Counter("imds_v1_requests_total", "instance=\"i-1\""), 2u);
  EXPECT_EQ(Counter("imds_v1_requests_total", "instance=\"i-2\""), 1u);
  EXPECT_EQ(Counter("imds_v1_requests_total", "instance=\"_other\""), 2u);
  EXPECT_EQ(Counter("imds_v1_requests_total", "instance=\"i-3\""), 0u);
}

// --- bad token input: each with its status and its counter ---

TEST_F(Ec2FidelityTest, BadTokens) {
  instance_.options.http_tokens = Tokens::kRequired;
  Reply put = Call("PUT", "/latest/api/token", {{std::string(kTtlHeader), "2"}});
  ASSERT_EQ(put.code(), 200);
  const std::string good = put.body();
  std::string altered = good;
  altered[20] = altered[20] == 'A' ? 'B' : 'A';
  std::string last_altered = good;
  last_altered.back() = last_altered.back() == 'A' ? 'Q' : 'A';
  auto other = tokens_.Issue("i-0ffffffffffffffff", 0, std::chrono::seconds(60));
  ASSERT_TRUE(other.ok());
  struct Case {
    std::string name, token;
    int status;
    std::string reason;  // imds_token_rejected_total label; "" for accepted
  };
  const std::vector<Case> cases = {
      {"valid", good, 200, ""},
      {"truncated by one", good.substr(0, good.size() - 1), 401, "malformed"},
      {"truncated to half", good.substr(0, good.size() / 2), 401, "malformed"},
      {"one more character", good + "A", 401, "malformed"},
      {"altered by one byte", altered, 401, "bad_seal"},
      // The last character carries 4 token bits and 2 that must be zero.
      {"last character altered", last_altered, 401, "bad_seal"},
      {"another instance's", *other, 401, "bad_seal"},
      {"empty", "", 401, "malformed"},
      {"padding added", good.substr(0, good.size() - 1) + "=", 401, "malformed"},
      {"standard base64 alphabet", std::string(good.size(), '+'), 401, "malformed"},
      {"header injection", good.substr(0, 20) + "\r\nX-Injected: 1", 401, "malformed"},
      {"spaces", " " + good, 401, "malformed"},
      {"nul byte", std::string(good.size() - 1, 'A') + std::string(1, '\0'), 401, "malformed"},
      {"huge", std::string(100000, 'A'), 401, "malformed"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const uint64_t before =
        c.reason.empty() ? 0 : Counter("imds_token_rejected_total", "reason=\"" + c.reason + "\"");
    Reply r = Get("/latest/meta-data/instance-id", {{std::string(kTokenHeader), c.token}});
    EXPECT_EQ(r.code(), c.status);
    if (!c.reason.empty()) {
      EXPECT_EQ(Counter("imds_token_rejected_total", "reason=\"" + c.reason + "\""), before + 1);
      if (c.token.size() >= 10) {
        EXPECT_EQ(r.body().find(c.token.substr(0, 10)), std::string::npos) << "token echoed";
      }
    }
  }
  // Expired: the same token after its TTL.
  clock_.Advance(std::chrono::seconds(2));
  EXPECT_EQ(Get("/latest/meta-data/instance-id", {{std::string(kTokenHeader), good}}).code(), 401);
  EXPECT_EQ(Counter("imds_token_rejected_total", "reason=\"expired\""), 1u);
  // Replayed after the key that issued it left the ring.
  ASSERT_TRUE(tokens_.SetKeys({auth::TokenKey{8, std::string(32, 'n')}}).ok());
  clock_.Set(At("2024-05-01T13:00:00Z"));
  EXPECT_EQ(Get("/latest/meta-data/instance-id", {{std::string(kTokenHeader), good}}).code(), 401);
  EXPECT_EQ(Counter("imds_token_rejected_total", "reason=\"unknown_key\""), 1u);
}

TEST_F(Ec2FidelityTest, TokensKeepWorkingAcrossARingSwap) {
  Reply put = Call("PUT", "/latest/api/token", {{std::string(kTtlHeader), "21600"}});
  ASSERT_EQ(put.code(), 200);
  // Rotation: epoch 8 issues, 7 still verifies.
  ASSERT_TRUE(tokens_
                  .SetKeys({auth::TokenKey{7, std::string(32, 'k')},
                            auth::TokenKey{8, std::string(32, 'n')}})
                  .ok());
  instance_.options.http_tokens = Tokens::kRequired;
  EXPECT_EQ(Get("/latest/meta-data/instance-id", {{std::string(kTokenHeader), put.body()}}).code(),
            200);
  Reply fresh = Call("PUT", "/latest/api/token", {{std::string(kTtlHeader), "60"}});
  EXPECT_EQ(tokens_.IssuingEpoch(), 8u);
  EXPECT_EQ(
      Get("/latest/meta-data/instance-id", {{std::string(kTokenHeader), fresh.body()}}).code(),
      200);
}

TEST_F(Ec2FidelityTest, TtlEdgeCasesAnswer400WithoutAToken) {
  const std::vector<std::pair<std::optional<std::string>, int>> cases = {
      {std::nullopt, 400}, {"0", 400},   {"-1", 400}, {"21601", 400},
      {"abc", 400},        {"1e3", 400}, {"", 400},   {std::string(4096, '9'), 400},
      {"21600", 200},      {"1", 200},
  };
  for (const auto& [ttl, status] : cases) {
    Headers h;
    if (ttl) h.push_back({std::string(kTtlHeader), *ttl});
    Reply r = Call("PUT", "/latest/api/token", h);
    EXPECT_EQ(r.code(), status) << ttl.value_or("<absent>").substr(0, 20);
    if (status == 400) {
      EXPECT_FALSE(r.response.ip_ttl.has_value());
    }
  }
}

}  // namespace
}  // namespace openimds::flavour::ec2
