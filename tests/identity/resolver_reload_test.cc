// Resolver::SetKeys: proxy keys and the Neutron secret replaced while the
// resolver serves (SIGHUP in `serve`), the old ones refused afterwards, a bad
// key set changing nothing.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "auth/request_signer.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "identity/resolver.h"

namespace openimds::identity {
namespace {

using std::chrono::seconds;

constexpr std::string_view kKeyA = "key-a-0123456789abcdef";
constexpr std::string_view kKeyB = "key-b-0123456789abcdef";

// A request from trusted peer 10.255.0.1 signed with (id, secret), or with
// Neutron headers under `neutron_secret`; owns its header strings.
struct SignedRequest {
  std::vector<std::pair<std::string, std::string>> owned;
  common::Request req;

  SignedRequest() {
    req.method = "GET";
    req.target = "/latest/meta-data/instance-id";
    req.path = req.target;
    req.peer = *common::IpAddress::Parse("10.255.0.1");
    req.local = *common::IpAddress::Parse("10.255.0.2");
    req.local_port = 8775;
  }
  void Finish() {
    for (const auto& [n, v] : owned) req.headers.push_back({n, v});
  }
  static SignedRequest Proxy(const common::Clock& clock, std::string id, std::string_view secret) {
    SignedRequest t;
    auto s = auth::RequestSigner::Create({{id, std::string(secret)}}, {}, clock);
    EXPECT_TRUE(s.ok());
    auth::SignedIdentity sig = s->Sign(t.req.method, t.req.target, "tenant-a", "10.0.0.5");
    t.owned = {{std::string(auth::kNetworkHeader), "tenant-a"},
               {std::string(auth::kSourceHeader), "10.0.0.5"},
               {std::string(auth::kTimestampHeader), std::to_string(sig.timestamp)},
               {std::string(auth::kKeyIdHeader), sig.key_id},
               {std::string(auth::kSignatureHeader), sig.signature}};
    t.Finish();
    return t;
  }
  static SignedRequest Neutron(std::string_view secret) {
    SignedRequest t;
    t.owned = {{"X-Instance-ID", "i-1"},
               {"X-Tenant-ID", "t-1"},
               {"X-Instance-ID-Signature", auth::NeutronInstanceSignature(secret, "i-1")}};
    t.Finish();
    return t;
  }
};

class ResolverReloadTest : public ::testing::Test {
 protected:
  common::FakeClock clock_{std::chrono::system_clock::time_point(seconds(1'700'000'000))};
  common::MetricsRegistry metrics_;

  Resolver Make() {
    Resolver::Options o;
    o.trusted_peers = {*common::Cidr::Parse("10.255.0.0/30")};
    o.proxy_keys = {{"a", std::string(kKeyA)}};
    o.neutron_shared_secret = "neutron-one-0123456789";
    auto r = Resolver::Create(std::move(o), clock_, metrics_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return std::move(r).value();
  }
  uint64_t Rejected(std::string_view reason) {
    return metrics_.CounterValue("identity_rejected_total",
                                 "reason=\"" + std::string(reason) + "\"");
  }
};

TEST_F(ResolverReloadTest, NewKeysApplyAndOldOnesAreRefused) {
  Resolver r = Make();
  const auto a = SignedRequest::Proxy(clock_, "a", kKeyA);
  const auto b = SignedRequest::Proxy(clock_, "b", kKeyB);
  EXPECT_TRUE(r.Resolve(a.req).ok());
  EXPECT_FALSE(r.Resolve(b.req).ok());

  ASSERT_TRUE(r.SetKeys({{"a", std::string(kKeyA)}, {"b", std::string(kKeyB)}},
                        "neutron-one-0123456789")
                  .ok());
  EXPECT_TRUE(r.Resolve(a.req).ok());
  EXPECT_TRUE(r.Resolve(b.req).ok());

  ASSERT_TRUE(r.SetKeys({{"b", std::string(kKeyB)}}, "neutron-two-0123456789").ok());
  const uint64_t unknown = Rejected("unknown_key");
  EXPECT_EQ(r.Resolve(a.req).status().code(), common::Code::kPermissionDenied);
  EXPECT_EQ(Rejected("unknown_key"), unknown + 1);
  EXPECT_TRUE(r.Resolve(b.req).ok());
  // The Neutron secret rotated with them.
  EXPECT_FALSE(r.Resolve(SignedRequest::Neutron("neutron-one-0123456789").req).ok());
  EXPECT_TRUE(r.Resolve(SignedRequest::Neutron("neutron-two-0123456789").req).ok());
}

TEST_F(ResolverReloadTest, InvalidKeysChangeNothing) {
  Resolver r = Make();
  const auto a = SignedRequest::Proxy(clock_, "a", kKeyA);
  EXPECT_EQ(r.SetKeys({{"b", "short"}}, "").code(), common::Code::kInvalidArgument);
  EXPECT_EQ(r.SetKeys({}, "").code(), common::Code::kInvalidArgument);
  EXPECT_EQ(r.SetKeys({{"a", std::string(kKeyA)}, {"a", std::string(kKeyB)}}, "").code(),
            common::Code::kInvalidArgument);
  EXPECT_TRUE(r.Resolve(a.req).ok());
  EXPECT_TRUE(r.Resolve(SignedRequest::Neutron("neutron-one-0123456789").req).ok());

  Resolver direct;
  EXPECT_EQ(direct.SetKeys({{"a", std::string(kKeyA)}}, "").code(),
            common::Code::kFailedPrecondition);
}

// Resolving threads never see a failure while keys change under them, as
// long as every key set they might meet accepts their key.
TEST_F(ResolverReloadTest, ResolveWhileKeysChange) {
  Resolver r = Make();
  const auto a = SignedRequest::Proxy(clock_, "a", kKeyA);
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&] {
      while (!done.load(std::memory_order_acquire)) {
        if (!r.Resolve(a.req).ok()) failures.fetch_add(1);
      }
    });
  }
  for (int i = 0; i < 2000; ++i) {
    std::vector<auth::SigningKey> keys = {{"a", std::string(kKeyA)}};
    if (i % 2) keys.push_back({"b" + std::to_string(i), std::string(kKeyB)});
    EXPECT_TRUE(r.SetKeys(std::move(keys), "").ok());
  }
  done.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace openimds::identity
