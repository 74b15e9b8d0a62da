#include "identity/resolver.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "auth/request_signer.h"
#include "catalog/catalog.h"
#include "common/clock.h"
#include "common/metrics.h"

namespace openimds::identity {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;
using Via = CallerIdentity::Via;

constexpr std::string_view kProxyKey = "proxy-key-0123456789";
constexpr std::string_view kNeutronSecret = "neutron-secret-0123456789";

common::IpAddress Ip(std::string_view s) { return *common::IpAddress::Parse(s); }

// A request as the HTTP core would hand it over, owning its header strings.
struct TestRequest {
  std::vector<std::pair<std::string, std::string>> owned;
  common::Request req;

  TestRequest(std::string_view peer, uint16_t local_port = 8775) {
    req.method = "GET";
    req.target = "/latest/meta-data/instance-id";
    req.path = req.target;
    req.peer = Ip(peer);
    req.local = Ip("10.255.0.2");
    req.local_port = local_port;
    req.listener_network = "proxied";
    owned.reserve(32);  // views below must stay valid
  }
  TestRequest& Add(std::string name, std::string value) {
    owned.emplace_back(std::move(name), std::move(value));
    req.headers.clear();
    for (const auto& [n, v] : owned) req.headers.push_back({n, v});
    return *this;
  }
  TestRequest& Sign(const auth::RequestSigner& s, std::string network, std::string source) {
    auth::SignedIdentity id = s.Sign(req.method, req.target, network, source);
    Add(std::string(auth::kNetworkHeader), network);
    Add(std::string(auth::kSourceHeader), source);
    Add(std::string(auth::kTimestampHeader), std::to_string(id.timestamp));
    Add(std::string(auth::kKeyIdHeader), id.key_id);
    Add(std::string(auth::kSignatureHeader), id.signature);
    return *this;
  }
  TestRequest& Neutron(std::string instance, std::string tenant, std::string secret) {
    Add("X-Forwarded-For", "10.0.0.5");
    Add("X-Instance-ID", instance);
    Add("X-Tenant-ID", tenant);
    Add("X-Instance-ID-Signature", auth::NeutronInstanceSignature(secret, instance));
    return *this;
  }
};

class ResolverTest : public ::testing::Test {
 protected:
  common::FakeClock clock_{system_clock::time_point(seconds(1'700'000'000))};
  common::MetricsRegistry metrics_;

  auth::RequestSigner Signer(std::string id = "k1", std::string_view secret = kProxyKey) {
    auto s = auth::RequestSigner::Create({{id, std::string(secret)}}, {}, clock_);
    EXPECT_TRUE(s.ok());
    return std::move(s).value();
  }

  Resolver ProxyMode(std::string neutron_secret = std::string(kNeutronSecret)) {
    Resolver::Options o;
    o.trusted_peers = {*common::Cidr::Parse("10.255.0.0/30"), *common::Cidr::Parse("fd00:1::/64")};
    o.proxy_keys = {{"k2", "second-key-0123456789"}, {"k1", std::string(kProxyKey)}};
    o.replay_window = seconds(30);
    o.neutron_shared_secret = std::move(neutron_secret);
    auto r = Resolver::Create(std::move(o), clock_, metrics_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return std::move(r).value();
  }

  uint64_t Rejected(std::string_view reason) {
    return metrics_.CounterValue("identity_rejected_total",
                                 "reason=\"" + std::string(reason) + "\"");
  }
};

TEST_F(ResolverTest, DirectModeUsesListenerAndPeerAndIgnoresHeaders) {
  Resolver r;
  EXPECT_FALSE(r.proxy_mode());
  TestRequest t("10.0.0.5");
  t.req.listener_network = "tenant-a";
  t.Sign(Signer(), "tenant-b", "10.0.0.9").Add("X-Forwarded-For", "10.0.0.9");
  auto who = r.Resolve(t.req);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->via, Via::kDirect);
  EXPECT_EQ(who->network, "tenant-a");
  EXPECT_EQ(who->address, Ip("10.0.0.5"));

  TestRequest unix_req("0.0.0.0", /*local_port=*/0);
  EXPECT_EQ(r.Resolve(unix_req.req).status().code(), common::Code::kInvalidArgument);
}

TEST_F(ResolverTest, ProxyModeAcceptsSignedIdentityFromTrustedPeer) {
  Resolver r = ProxyMode();
  TestRequest t("10.255.0.1");
  t.Sign(Signer(), "tenant-a", "10.0.0.5");
  auto who = r.Resolve(t.req);
  ASSERT_TRUE(who.ok()) << who.status().ToString();
  EXPECT_EQ(who->via, Via::kProxy);
  EXPECT_EQ(who->network, "tenant-a");
  EXPECT_EQ(who->address, Ip("10.0.0.5"));
  EXPECT_EQ(metrics_.CounterValue("identity_accepted_total", "via=\"proxy\""), 1u);

  TestRequest v6("fd00:1::7");
  v6.Sign(Signer(), "tenant-b", "fd00:a::5");
  who = r.Resolve(v6.req);
  ASSERT_TRUE(who.ok()) << who.status().ToString();
  EXPECT_EQ(who->address, Ip("fd00:a::5"));
}

TEST_F(ResolverTest, ProxyModeRefusals) {
  Resolver r = ProxyMode();
  struct Case {
    const char* name;
    std::function<void(TestRequest&)> build;
    std::string peer;
    common::Code code;
    const char* reason;
  };
  auto signer = Signer();
  std::vector<Case> cases = {
      {"untrusted peer", [&](TestRequest& t) { t.Sign(signer, "tenant-a", "10.0.0.5"); },
       "10.0.0.5", common::Code::kPermissionDenied, "untrusted_peer"},
      {"no headers", [](TestRequest&) {}, "10.255.0.1", common::Code::kInvalidArgument,
       "missing_identity"},
      {"incomplete", [](TestRequest& t) { t.Add(std::string(auth::kNetworkHeader), "tenant-a"); },
       "10.255.0.1", common::Code::kInvalidArgument, "missing_identity"},
      {"duplicate network",
       [&](TestRequest& t) {
         t.Sign(signer, "tenant-a", "10.0.0.5").Add(std::string(auth::kNetworkHeader), "tenant-b");
       },
       "10.255.0.1", common::Code::kInvalidArgument, "duplicate_header"},
      {"unknown key", [&](TestRequest& t) { t.Sign(Signer("k9"), "tenant-a", "10.0.0.5"); },
       "10.255.0.1", common::Code::kPermissionDenied, "unknown_key"},
      {"wrong secret",
       [&](TestRequest& t) {
         t.Sign(Signer("k1", "wrong-secret-0123456789"), "tenant-a", "10.0.0.5");
       },
       "10.255.0.1", common::Code::kPermissionDenied, "bad_signature"},
      {"signed for another path",
       [&](TestRequest& t) {
         t.Sign(signer, "tenant-a", "10.0.0.5");
         t.req.target = "/latest/user-data";
       },
       "10.255.0.1", common::Code::kPermissionDenied, "bad_signature"},
      {"garbage signature",
       [&](TestRequest& t) {
         t.Add(std::string(auth::kNetworkHeader), "tenant-a");
         t.Add(std::string(auth::kSourceHeader), "10.0.0.5");
         t.Add(std::string(auth::kTimestampHeader), "1700000000");
         t.Add(std::string(auth::kKeyIdHeader), "k1");
         t.Add(std::string(auth::kSignatureHeader), "zz");
       },
       "10.255.0.1", common::Code::kPermissionDenied, "malformed"},
      {"source not an address", [&](TestRequest& t) { t.Sign(signer, "tenant-a", "not-an-ip"); },
       "10.255.0.1", common::Code::kInvalidArgument, "bad_source"},
  };
  for (auto& c : cases) {
    TestRequest t(c.peer);
    c.build(t);
    const uint64_t before = Rejected(c.reason);
    auto who = r.Resolve(t.req);
    ASSERT_FALSE(who.ok()) << c.name;
    EXPECT_EQ(who.status().code(), c.code) << c.name << ": " << who.status().ToString();
    EXPECT_EQ(Rejected(c.reason), before + 1) << c.name;
    EXPECT_EQ(who.status().message().find(std::string(kProxyKey)), std::string::npos);
  }
}

TEST_F(ResolverTest, StaleSignatureIsRefused) {
  Resolver r = ProxyMode();
  TestRequest t("10.255.0.1");
  t.Sign(Signer(), "tenant-a", "10.0.0.5");
  clock_.Advance(seconds(31));
  auto who = r.Resolve(t.req);
  ASSERT_FALSE(who.ok());
  EXPECT_EQ(who.status().code(), common::Code::kPermissionDenied);
  EXPECT_EQ(Rejected("stale"), 1u);
}

TEST_F(ResolverTest, UnixSocketListenerIsTrustedOnlyWhenConfigured) {
  Resolver r = ProxyMode();
  TestRequest t("0.0.0.0", /*local_port=*/0);
  t.Sign(Signer(), "tenant-a", "10.0.0.5");
  EXPECT_TRUE(r.Resolve(t.req).ok());

  Resolver::Options o;
  o.trusted_peers = {*common::Cidr::Parse("10.255.0.0/30")};
  o.trust_unix_socket = false;
  o.proxy_keys = {{"k1", std::string(kProxyKey)}};
  auto strict = Resolver::Create(o, clock_, metrics_);
  ASSERT_TRUE(strict.ok());
  EXPECT_EQ(strict->Resolve(t.req).status().code(), common::Code::kPermissionDenied);
}

TEST_F(ResolverTest, CreateRefusesUselessConfigurations) {
  Resolver::Options none;
  EXPECT_FALSE(Resolver::Create(none, clock_, metrics_).ok());
  Resolver::Options no_peer;
  no_peer.trust_unix_socket = false;
  no_peer.proxy_keys = {{"k1", std::string(kProxyKey)}};
  EXPECT_FALSE(Resolver::Create(no_peer, clock_, metrics_).ok());
  Resolver::Options short_key;
  short_key.proxy_keys = {{"k1", "short"}};
  EXPECT_FALSE(Resolver::Create(short_key, clock_, metrics_).ok());
}

// Nova's status codes for its instance-id mode (openstack.md §2.2, §2.7).
TEST_F(ResolverTest, NeutronHeadersAsNova) {
  Resolver r = ProxyMode();
  {
    TestRequest t("10.255.0.2");
    t.Neutron("6f0c7e9e-8d5c-4f36-9a3e-3f1f2c0f6b21", "proj-1", std::string(kNeutronSecret));
    auto who = r.Resolve(t.req);
    ASSERT_TRUE(who.ok()) << who.status().ToString();
    EXPECT_EQ(who->via, Via::kNeutron);
    EXPECT_EQ(who->instance_id, "6f0c7e9e-8d5c-4f36-9a3e-3f1f2c0f6b21");
    EXPECT_EQ(who->tenant_id, "proj-1");
    EXPECT_TRUE(who->has_address);
    EXPECT_EQ(who->address, Ip("10.0.0.5"));
  }
  for (const char* drop : {"X-Instance-ID", "X-Tenant-ID", "X-Instance-ID-Signature"}) {
    TestRequest t("10.255.0.2");
    t.Neutron("i-a", "proj-1", std::string(kNeutronSecret));
    std::erase_if(t.owned, [&](const auto& h) { return h.first == drop; });
    t.Add("X-Other", "x");  // rebuild views
    auto who = r.Resolve(t.req);
    ASSERT_FALSE(who.ok()) << drop;
    EXPECT_EQ(who.status().code(), common::Code::kInvalidArgument) << drop;
    EXPECT_NE(who.status().message().find(drop), std::string::npos) << who.status().message();
  }
  EXPECT_EQ(Rejected("neutron_missing_header"), 3u);
  {
    TestRequest t("10.255.0.2");
    t.Neutron("i-a", "proj-1", "some-other-secret-xyz");
    EXPECT_EQ(r.Resolve(t.req).status().code(), common::Code::kPermissionDenied);
    EXPECT_EQ(Rejected("neutron_bad_signature"), 1u);
  }
  {
    // A valid signature for another instance id.
    TestRequest t("10.255.0.2");
    t.Add("X-Instance-ID", "i-b");
    t.Add("X-Tenant-ID", "proj-1");
    t.Add("X-Instance-ID-Signature", auth::NeutronInstanceSignature(kNeutronSecret, "i-a"));
    EXPECT_EQ(r.Resolve(t.req).status().code(), common::Code::kPermissionDenied);
  }
  {
    // From a guest address: never trusted, whatever it signs.
    TestRequest t("10.0.0.5");
    t.Neutron("i-a", "proj-1", std::string(kNeutronSecret));
    EXPECT_EQ(r.Resolve(t.req).status().code(), common::Code::kPermissionDenied);
  }
}

TEST_F(ResolverTest, NeutronHeadersRefusedWithoutSecret) {
  Resolver r = ProxyMode(/*neutron_secret=*/"");
  TestRequest t("10.255.0.2");
  t.Neutron("i-a", "proj-1", "");  // HMAC with an empty key: Nova would accept it
  auto who = r.Resolve(t.req);
  ASSERT_FALSE(who.ok());
  EXPECT_EQ(who.status().code(), common::Code::kPermissionDenied);
  EXPECT_EQ(Rejected("neutron_disabled"), 1u);
}

std::shared_ptr<const catalog::Snapshot> TwoTenants() {
  auto make = [](std::string id, std::string network, std::string account, std::string ip) {
    auto i = std::make_shared<model::Instance>();
    i->id = std::move(id);
    i->network = std::move(network);
    i->account_id = std::move(account);
    model::Nic nic;
    nic.mac = "02:00:00:00:00:01";
    nic.private_ipv4s = {std::move(ip)};
    i->nics.push_back(nic);
    return catalog::Entry{i, 1};
  };
  return catalog::Snapshot::Build({make("i-a", "tenant-a", "proj-a", "10.0.0.5"),
                                   make("i-b", "tenant-b", "proj-b", "10.0.0.5")},
                                  1);
}

TEST_F(ResolverTest, LookupSameAddressInTwoNetworks) {
  Resolver r = ProxyMode();
  auto snap = TwoTenants();
  for (auto [network, want] : {std::pair{"tenant-a", "i-a"}, std::pair{"tenant-b", "i-b"}}) {
    TestRequest t("10.255.0.1");
    t.Sign(Signer(), network, "10.0.0.5");
    auto who = r.Resolve(t.req);
    ASSERT_TRUE(who.ok());
    auto found = r.Lookup(*snap, *who);
    ASSERT_TRUE(found.ok()) << found.status().ToString();
    EXPECT_EQ((*found)->id, want);
  }
  TestRequest t("10.255.0.1");
  t.Sign(Signer(), "tenant-c", "10.0.0.5");
  auto who = r.Resolve(t.req);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(r.Lookup(*snap, *who).status().code(), common::Code::kNotFound);
}

TEST_F(ResolverTest, LookupNeutronByIdWithTenantCheck) {
  Resolver r = ProxyMode();
  auto snap = TwoTenants();
  TestRequest ok("10.255.0.2");
  ok.Neutron("i-b", "proj-b", std::string(kNeutronSecret));
  auto who = r.Resolve(ok.req);
  ASSERT_TRUE(who.ok());
  auto found = r.Lookup(*snap, *who);
  ASSERT_TRUE(found.ok());
  EXPECT_EQ((*found)->id, "i-b");

  TestRequest mismatch("10.255.0.2");
  mismatch.Neutron("i-b", "proj-a", std::string(kNeutronSecret));
  who = r.Resolve(mismatch.req);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(r.Lookup(*snap, *who).status().code(), common::Code::kNotFound);
  EXPECT_EQ(Rejected("tenant_mismatch"), 1u);

  TestRequest unknown("10.255.0.2");
  unknown.Neutron("i-zzz", "proj-a", std::string(kNeutronSecret));
  who = r.Resolve(unknown.req);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(r.Lookup(*snap, *who).status().code(), common::Code::kNotFound);
}

TEST_F(ResolverTest, AdaptResponseMovesHopLimitForProxyOnly) {
  CallerIdentity direct, proxied, neutron;
  proxied.via = Via::kProxy;
  neutron.via = Via::kNeutron;

  common::Response r1;
  r1.ip_ttl = 1;
  Resolver::AdaptResponse(direct, r1);
  EXPECT_EQ(r1.ip_ttl, 1);
  EXPECT_TRUE(r1.headers.empty());

  common::Response r2;
  r2.ip_ttl = 2;
  Resolver::AdaptResponse(proxied, r2);
  EXPECT_FALSE(r2.ip_ttl);
  ASSERT_EQ(r2.headers.size(), 1u);
  EXPECT_EQ(r2.headers[0].first, auth::kIpTtlHeader);
  EXPECT_EQ(r2.headers[0].second, "2");

  common::Response r3;
  r3.ip_ttl = 1;
  Resolver::AdaptResponse(neutron, r3);
  EXPECT_FALSE(r3.ip_ttl);
  EXPECT_TRUE(r3.headers.empty());

  common::Response r4;  // no instruction: nothing added
  Resolver::AdaptResponse(proxied, r4);
  EXPECT_TRUE(r4.headers.empty());
}

}  // namespace
}  // namespace openimds::identity
