// The proxy against real sockets on loopback: identity stripping and
// signing, keep-alive pooling, failover, 503 + Retry-After and recovery,
// timeouts, limits, the hop-limit instruction, chains, unix-socket upstreams.
#include "proxy/proxy_server.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "auth/request_signer.h"
#include "common/clock.h"
#include "proxy_test_util.h"

namespace openimds::proxy {
namespace {

using namespace std::chrono_literals;
using testing::Client;
using testing::FakeUpstream;
using testing::Fetch;
using testing::RawUpstream;
using testing::Reply;

constexpr std::string_view kKey = "router-key-0123456789";
constexpr std::string_view kEdgeKey = "edge-key-0123456789ab";

auth::RequestSigner MakeSigner(std::string id, std::string_view secret,
                               const common::Clock& clock) {
  auto s = auth::RequestSigner::Create({{std::move(id), std::string(secret)}}, {}, clock);
  EXPECT_TRUE(s.ok());
  return std::move(s).value();
}

// A proxy running on its own threads until the test ends.
class RunningProxy {
 public:
  RunningProxy(ProxyOptions o, const auth::RequestSigner& signer,
               const auth::RequestSigner* verifier = nullptr) {
    if (o.listeners.empty()) o.listeners.push_back({"127.0.0.1:0", "tenant-a", ""});
    if (o.threads == 0) o.threads = 2;
    o.shutdown_grace = 500ms;
    server_ = std::make_unique<ProxyServer>(std::move(o), signer, verifier, metrics);
    status = server_->Start();
    if (!status.ok()) return;
    endpoint_ = server_->BoundEndpoints().at(0);
    runner_ = std::thread([this] { server_->Run(); });
  }
  ~RunningProxy() {
    server_->Shutdown();
    if (runner_.joinable()) runner_.join();
  }
  const std::string& endpoint() const { return endpoint_; }
  uint64_t Rejected(std::string_view reason) const {
    return metrics.CounterValue("proxy_rejected_total", "reason=\"" + std::string(reason) + "\"");
  }

  common::MetricsRegistry metrics;
  common::Status status;

 private:
  std::unique_ptr<ProxyServer> server_;
  std::string endpoint_;
  std::thread runner_;
};

class ProxyServerTest : public ::testing::Test {
 protected:
  common::SystemClock clock_;
  auth::RequestSigner signer_ = MakeSigner("k1", kKey, clock_);

  ProxyOptions Options(std::vector<std::string> upstreams) {
    ProxyOptions o;
    o.upstreams = std::move(upstreams);
    o.upstream.health_interval = 100ms;
    o.upstream.health_timeout = 80ms;
    // What app/ passes for this binary's flavours (EC2's token headers).
    o.forward_headers = {"X-aws-ec2-metadata-token", "X-aws-ec2-metadata-token-ttl-seconds"};
    return o;
  }
  // Verifies the identity the upstream received; returns (network, source).
  std::pair<std::string, std::string> VerifiedIdentity(const testing::Seen& s,
                                                       const auth::RequestSigner& verifier) {
    EXPECT_EQ(s.Count(auth::kNetworkHeader), 1);
    EXPECT_EQ(s.Count(auth::kSignatureHeader), 1);
    common::Status v = verifier.Verify(
        s.method, s.target, s.Get(auth::kNetworkHeader), s.Get(auth::kSourceHeader),
        s.Get(auth::kKeyIdHeader), s.Get(auth::kTimestampHeader), s.Get(auth::kSignatureHeader));
    EXPECT_TRUE(v.ok()) << v.ToString();
    return {s.Get(auth::kNetworkHeader), s.Get(auth::kSourceHeader)};
  }
};

TEST_F(ProxyServerTest, SignsIdentityAndStripsEverythingAGuestClaims) {
  FakeUpstream up;
  RunningProxy proxy(Options({up.endpoint()}), signer_);
  ASSERT_TRUE(proxy.status.ok()) << proxy.status.ToString();

  Reply r = Fetch(proxy.endpoint(), "/latest/meta-data/instance-id?x=1",
                  "X-Forwarded-For: 10.9.9.9\r\n"
                  "Forwarded: for=10.9.9.9\r\n"
                  "X-Real-IP: 10.9.9.9\r\n"
                  "X-Instance-ID: i-victim\r\n"
                  "X-Instance-ID-Signature: deadbeef\r\n"
                  "X-Tenant-ID: victim\r\n"
                  "X-Neutron-Network-ID: net-victim\r\n"
                  "X-OVN-Network-ID: net-victim\r\n"
                  "X-Metadata-Provider: edge-1\r\n"
                  "X-OpenIMDS-Network: tenant-victim\r\n"
                  "X-OpenIMDS-Source: 10.0.0.99\r\n"
                  "X-OpenIMDS-Signature: 00\r\n"
                  "X-aws-ec2-metadata-token: tok\r\n"
                  "Accept: */*\r\n"
                  "X-Custom-Thing: dropped\r\n"
                  "Connection: keep-alive\r\n",
                  "127.0.0.7");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body, "ok /latest/meta-data/instance-id?x=1");

  testing::Seen s = up.handler.last();
  EXPECT_EQ(s.target, "/latest/meta-data/instance-id?x=1");
  auto [network, source] = VerifiedIdentity(s, signer_);
  EXPECT_EQ(network, "tenant-a");
  EXPECT_EQ(source, "127.0.0.7");
  EXPECT_EQ(s.Get(auth::kKeyIdHeader), "k1");
  for (const char* gone :
       {"Forwarded", "X-Real-IP", "X-Instance-ID", "X-Instance-ID-Signature", "X-Tenant-ID",
        "X-Neutron-Network-ID", "X-OVN-Network-ID", "X-Metadata-Provider", "X-Custom-Thing"}) {
    EXPECT_EQ(s.Count(gone), 0) << gone;
  }
  // The guest's forwarding claim is replaced by the proxy's own record.
  EXPECT_EQ(s.Count("X-Forwarded-For"), 1);
  EXPECT_EQ(s.Get("X-Forwarded-For"), "127.0.0.7");
  EXPECT_EQ(s.Get("X-aws-ec2-metadata-token"), "tok");
  EXPECT_EQ(s.Get("Accept"), "*/*");
  EXPECT_EQ(s.Get("Host"), "169.254.169.254");
  EXPECT_EQ(proxy.metrics.CounterValue("proxy_identity_headers_stripped_total"), 1u);
}

TEST_F(ProxyServerTest, PlainRequestHasNoForwardedFor) {
  FakeUpstream up;
  RunningProxy proxy(Options({up.endpoint()}), signer_);
  ASSERT_TRUE(proxy.status.ok());
  ASSERT_EQ(Fetch(proxy.endpoint(), "/latest/meta-data/").status, 200);
  EXPECT_EQ(up.handler.last().Count("X-Forwarded-For"), 0);
  EXPECT_EQ(proxy.metrics.CounterValue("proxy_identity_headers_stripped_total"), 0u);
}

TEST_F(ProxyServerTest, TokenPutBodyAndHeadersForwarded) {
  FakeUpstream up;
  up.handler.respond = [](const common::Request& r, common::Response& out) {
    out.body = "token-for-" + std::string(r.method);
    out.AddHeader("X-aws-ec2-metadata-token-ttl-seconds", "21600");
  };
  RunningProxy proxy(Options({up.endpoint()}), signer_);
  ASSERT_TRUE(proxy.status.ok());
  Client c(proxy.endpoint());
  c.Send(
      "PUT /latest/api/token HTTP/1.1\r\nHost: 169.254.169.254\r\n"
      "X-aws-ec2-metadata-token-ttl-seconds: 21600\r\nContent-Length: 0\r\n\r\n");
  Reply r = c.Read();
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body, "token-for-PUT");
  EXPECT_EQ(r.Get("X-aws-ec2-metadata-token-ttl-seconds"), "21600");
  testing::Seen s = up.handler.last();
  EXPECT_EQ(s.method, "PUT");
  EXPECT_EQ(s.Get("Content-Length"), "0");
  EXPECT_EQ(s.Get("X-aws-ec2-metadata-token-ttl-seconds"), "21600");

  c.Send(
      "POST /openstack/2013-04-04/password HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  r = c.Read();
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(up.handler.last().body, "hello");
}

TEST_F(ProxyServerTest, HopLimitInstructionIsAppliedAndNeverReachesTheGuest) {
  FakeUpstream up;
  up.handler.respond = [](const common::Request& r, common::Response& out) {
    out.body = "x";
    if (r.target == "/latest/api/token") out.AddHeader(std::string(auth::kIpTtlHeader), "1");
    out.AddHeader("X-OpenIMDS-Internal", "secret-ish");
  };
  RunningProxy proxy(Options({up.endpoint()}), signer_);
  ASSERT_TRUE(proxy.status.ok());
  Client c(proxy.endpoint());
  c.Send("PUT /latest/api/token HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
  Reply r = c.Read();
  ASSERT_EQ(r.status, 200);
  EXPECT_FALSE(r.Has(auth::kIpTtlHeader)) << r.raw;
  EXPECT_FALSE(r.Has("X-OpenIMDS-Internal")) << r.raw;
  EXPECT_EQ(proxy.metrics.CounterValue("proxy_hop_limit_applied_total"), 1u);
  r = c.Get("/latest/meta-data/");  // the next response on the connection: default TTL
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(proxy.metrics.CounterValue("proxy_hop_limit_applied_total"), 1u);
}

TEST_F(ProxyServerTest, KeepAliveReusesUpstreamConnections) {
  FakeUpstream up;
  ProxyOptions o = Options({up.endpoint()});
  RunningProxy proxy(o, signer_);
  ASSERT_TRUE(proxy.status.ok());
  const uint64_t before = up.connections();  // health checks use their own connections
  {
    Client c(proxy.endpoint());
    for (int i = 0; i < 50; ++i)
      ASSERT_EQ(c.Get("/latest/meta-data/" + std::to_string(i)).status, 200);
  }
  for (int i = 0; i < 20; ++i) ASSERT_EQ(Fetch(proxy.endpoint(), "/latest/meta-data/").status, 200);
  // 70 requests over at most one pooled connection per proxy thread, plus
  // whatever health checks opened meanwhile (each uses its own connection).
  const uint64_t health = up.handler.count() - 70;
  EXPECT_LE(up.connections() - before, 2u + health) << "requests did not reuse connections";
}

TEST_F(ProxyServerTest, BootStormIsBoundedToFewUpstreamConnections) {
  FakeUpstream up;
  up.handler.respond = [](const common::Request& r, common::Response& out) {
    if (r.path != "/healthz") std::this_thread::sleep_for(5ms);
    out.body = "ok";
  };
  ProxyOptions o = Options({up.endpoint()});
  o.upstream.max_connections_per_upstream = 2;
  o.upstream_timeout = 5s;
  o.upstream.connect_timeout = 1s;
  o.upstream.health_interval = 10s;
  o.upstream.health_timeout = 1s;
  RunningProxy proxy(o, signer_);
  ASSERT_TRUE(proxy.status.ok());
  std::vector<std::unique_ptr<Client>> guests;
  for (int i = 0; i < 24; ++i) guests.push_back(std::make_unique<Client>(proxy.endpoint()));
  for (auto& g : guests) g->Send("GET /latest/meta-data/ HTTP/1.1\r\nHost: h\r\n\r\n");
  for (auto& g : guests) EXPECT_EQ(g->Read().status, 200);
  // 2 proxy threads x 2 connections, plus the health checks' own.
  const uint64_t health = up.handler.count() - 24;
  EXPECT_LE(up.connections(), 4u + health);
  EXPECT_EQ(proxy.Rejected("upstream_busy"), 0u);
}

TEST_F(ProxyServerTest, PipelinedGuestsEachGetTheirOwnAnswer) {
  // Many guests at once: their GETs (and HEADs) share upstream connections
  // in pipelined batches; every guest must get the answer to its own path,
  // HEAD without a body, a POST (never pipelined) in between included.
  FakeUpstream up;
  up.handler.respond = [](const common::Request& r, common::Response& out) {
    if (r.path != "/healthz") std::this_thread::sleep_for(1ms);
    out.body = "answer for " + std::string(r.method) + " " + std::string(r.target);
  };
  ProxyOptions o = Options({up.endpoint()});
  o.threads = 1;
  o.upstream.max_connections_per_upstream = 3;
  o.upstream_timeout = 5s;
  o.upstream.health_interval = 10s;
  // The 40 clients stand for 40 guests but share one loopback address.
  o.limits.max_in_flight_per_source = 0;
  RunningProxy proxy(o, signer_);
  ASSERT_TRUE(proxy.status.ok());
  std::vector<std::unique_ptr<Client>> guests;
  for (int i = 0; i < 40; ++i) guests.push_back(std::make_unique<Client>(proxy.endpoint()));
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 40; ++i) {
      const std::string method = i % 10 == 3 ? "HEAD" : i % 10 == 7 ? "POST" : "GET";
      guests[i]->Send(method + " /g/" + std::to_string(round) + "/" + std::to_string(i) +
                      " HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
    }
    for (int i = 0; i < 40; ++i) {
      const std::string method = i % 10 == 3 ? "HEAD" : i % 10 == 7 ? "POST" : "GET";
      Reply r = guests[i]->Read(method == "HEAD");
      ASSERT_EQ(r.status, 200) << r.raw;
      const std::string want =
          "answer for " + method + " /g/" + std::to_string(round) + "/" + std::to_string(i);
      if (method == "HEAD") {
        EXPECT_EQ(r.body, "");
        EXPECT_EQ(r.Get("Content-Length"), std::to_string(want.size()));
      } else {
        EXPECT_EQ(r.body, want);
      }
    }
  }
  // 120 requests over at most 3 connections (plus health checks' own).
  const uint64_t health = up.handler.count() - 120;
  EXPECT_LE(up.connections(), 3u + health);
  EXPECT_EQ(proxy.Rejected("upstream_busy"), 0u);
}

TEST_F(ProxyServerTest, PipelinedBatchSurvivesAnUpstreamThatClosesAfterEachAnswer) {
  // A server that ends every connection after one response (Connection:
  // close) answers only the head of each pipelined batch; the GETs queued
  // behind it are sent again on a new connection, and every guest gets its
  // own answer, none a 5xx.
  FakeUpstream up;
  up.handler.respond = [](const common::Request& r, common::Response& out) {
    out.body = "answer for " + std::string(r.target);
    out.close = true;
  };
  ProxyOptions o = Options({up.endpoint()});
  o.threads = 1;
  o.upstream.max_connections_per_upstream = 2;
  o.upstream_timeout = 5s;
  o.upstream.health_interval = 10s;
  RunningProxy proxy(o, signer_);
  ASSERT_TRUE(proxy.status.ok());
  std::vector<std::unique_ptr<Client>> guests;
  for (int i = 0; i < 12; ++i) guests.push_back(std::make_unique<Client>(proxy.endpoint()));
  for (int i = 0; i < 12; ++i) {
    guests[i]->Send("GET /c/" + std::to_string(i) + " HTTP/1.1\r\nHost: h\r\n\r\n");
  }
  for (int i = 0; i < 12; ++i) {
    Reply r = guests[i]->Read();
    EXPECT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body, "answer for /c/" + std::to_string(i));
  }
  EXPECT_EQ(proxy.Rejected("unavailable"), 0u);
}

TEST_F(ProxyServerTest, BusyUpstreamConnectionsTimeOutAs503) {
  RawUpstream silent([](int, const std::string&) {});
  ProxyOptions o = Options({silent.endpoint()});
  o.upstream.max_connections_per_upstream = 1;
  o.threads = 1;
  o.upstream_timeout = 300ms;
  o.upstream.connect_timeout = 100ms;
  o.upstream.health_interval = 10s;
  o.upstream.health_timeout = 1s;
  RunningProxy proxy(o, signer_);
  ASSERT_TRUE(proxy.status.ok());
  Client first(proxy.endpoint()), second(proxy.endpoint());
  first.Send("GET /a HTTP/1.1\r\nHost: h\r\n\r\n");
  std::this_thread::sleep_for(50ms);
  second.Send("GET /b HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_EQ(first.Read().status, 503);
  EXPECT_EQ(second.Read().status, 503);
  EXPECT_EQ(proxy.Rejected("upstream_timeout") + proxy.Rejected("upstream_busy"), 2u);
}

TEST_F(ProxyServerTest, HeadKeepsContentLengthWithoutBody) {
  FakeUpstream up;
  up.handler.respond = [](const common::Request&, common::Response& out) { out.body = "12345"; };
  RunningProxy proxy(Options({up.endpoint()}), signer_);
  ASSERT_TRUE(proxy.status.ok());
  Client c(proxy.endpoint());
  c.Send("HEAD /latest/meta-data/ HTTP/1.1\r\nHost: h\r\n\r\n");
  Reply r = c.Read(/*head=*/true);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.Get("Content-Length"), "5");
  EXPECT_TRUE(r.body.empty());
  EXPECT_EQ(c.Get("/latest/meta-data/").body, "12345");  // framing intact afterwards
}

TEST_F(ProxyServerTest, FailsOverToTheNextUpstream) {
  FakeUpstream up;
  const std::string dead = "127.0.0.1:" + std::to_string(testing::FreePort());
  RunningProxy proxy(Options({dead, up.endpoint()}), signer_);
  ASSERT_TRUE(proxy.status.ok());
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(Fetch(proxy.endpoint(), "/latest/meta-data/").status, 200) << i;
  }
  EXPECT_EQ(proxy.metrics.CounterValue("proxy_upstream_down_total", "upstream=\"" + dead + "\""),
            1u);
  EXPECT_EQ(proxy.Rejected("unavailable"), 0u);
}

TEST_F(ProxyServerTest, NoServer503WithRetryAfterThenRecoversWithoutRestart) {
  const int port = testing::FreePort();
  const std::string endpoint = "127.0.0.1:" + std::to_string(port);
  RunningProxy proxy(Options({endpoint}), signer_);
  ASSERT_TRUE(proxy.status.ok());
  Client c(proxy.endpoint());
  Reply r = c.Get("/latest/meta-data/instance-id");
  ASSERT_EQ(r.status, 503) << r.raw;
  EXPECT_EQ(r.Get("Retry-After"), "1");
  EXPECT_GE(proxy.Rejected("unavailable"), 1u);
  // The connection stays usable: the guest may retry on it.
  EXPECT_EQ(c.Get("/latest/meta-data/instance-id").status, 503);

  FakeUpstream up(endpoint);  // the server comes back on the same address
  ASSERT_TRUE(up.started);
  int status = 0;
  for (int i = 0; i < 100 && status != 200; ++i) {
    std::this_thread::sleep_for(50ms);
    status = c.Get("/latest/meta-data/instance-id").status;
  }
  EXPECT_EQ(status, 200) << "the proxy did not notice the server came back";
}

TEST_F(ProxyServerTest, ServerRestartedWhileConnectionsWerePooled) {
  const int port = testing::FreePort();
  const std::string endpoint = "127.0.0.1:" + std::to_string(port);
  auto up = std::make_unique<FakeUpstream>(endpoint);
  ASSERT_TRUE(up->started);
  ProxyOptions o = Options({endpoint});
  o.upstream.health_interval = 10s;  // only the request path notices
  o.upstream.health_timeout = 1s;
  RunningProxy proxy(o, signer_);
  ASSERT_TRUE(proxy.status.ok());
  Client c(proxy.endpoint());
  ASSERT_EQ(c.Get("/a").status, 200);
  up.reset();  // closes the pooled connection from the server side
  up = std::make_unique<FakeUpstream>(endpoint);
  ASSERT_TRUE(up->started);
  // The stale pooled connection is replaced transparently.
  EXPECT_EQ(c.Get("/b").status, 200);
}

TEST_F(ProxyServerTest, SilentServerTimesOutWithin503) {
  RawUpstream silent([](int, const std::string&) {});  // accepts, reads, never answers
  ProxyOptions o = Options({silent.endpoint()});
  o.upstream_timeout = 300ms;
  o.upstream.connect_timeout = 100ms;
  o.upstream.health_interval = 10s;  // keep it "healthy" for the request path
  o.upstream.health_timeout = 1s;
  RunningProxy proxy(o, signer_);
  ASSERT_TRUE(proxy.status.ok());
  Reply r = Fetch(proxy.endpoint(), "/latest/meta-data/");
  ASSERT_EQ(r.status, 503) << r.raw;
  EXPECT_EQ(r.Get("Retry-After"), "1");
  EXPECT_EQ(proxy.Rejected("upstream_timeout"), 1u);
}

TEST_F(ProxyServerTest, GarbageFromServerIs502) {
  // Healthy by its health checks, garbage for requests.
  RawUpstream garbage([](int fd, const std::string& request) {
    std::string_view reply = request.rfind("GET /healthz ", 0) == 0
                                 ? "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                                 : "this is not http\r\n\r\n";
    (void)send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
  });
  ProxyOptions o = Options({garbage.endpoint()});
  o.upstream.health_interval = 10s;
  o.upstream.health_timeout = 1s;
  RunningProxy proxy(o, signer_);
  ASSERT_TRUE(proxy.status.ok());
  EXPECT_EQ(Fetch(proxy.endpoint(), "/latest/meta-data/").status, 502);
  EXPECT_EQ(proxy.Rejected("bad_upstream_response"), 1u);
}

TEST_F(ProxyServerTest, OversizedServerResponseIs502) {
  FakeUpstream up;
  up.handler.respond = [](const common::Request& r, common::Response& out) {
    if (r.path != "/healthz") out.body.assign(64 * 1024, 'x');
  };
  ProxyOptions o = Options({up.endpoint()});
  o.upstream.max_response_body_bytes = 16 * 1024;
  RunningProxy proxy(o, signer_);
  ASSERT_TRUE(proxy.status.ok());
  EXPECT_EQ(Fetch(proxy.endpoint(), "/big").status, 502);
}

TEST_F(ProxyServerTest, GuestRequestLimits) {
  FakeUpstream up;
  ProxyOptions o = Options({up.endpoint()});
  o.limits.max_header_bytes = 1024;
  o.limits.max_body_bytes = 16;
  RunningProxy proxy(o, signer_);
  ASSERT_TRUE(proxy.status.ok());
  {
    Client c(proxy.endpoint());
    c.Send("GET / HTTP/1.1\r\nHost: h\r\nX-Pad: " + std::string(2000, 'a') + "\r\n\r\n");
    EXPECT_EQ(c.Read().status, 431);
  }
  {
    Client c(proxy.endpoint());
    c.Send("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 17\r\n\r\n" + std::string(17, 'b'));
    EXPECT_EQ(c.Read().status, 413);
  }
  {
    Client c(proxy.endpoint());
    c.Send("GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_EQ(c.Read().status, 400);
  }
  {
    Client c(proxy.endpoint());
    c.Send("NOT HTTP AT ALL\r\n\r\n");
    EXPECT_EQ(c.Read().status, 400);
  }
  EXPECT_EQ(proxy.Rejected("header_too_large"), 1u);
  EXPECT_EQ(proxy.Rejected("body_too_large"), 1u);
  EXPECT_EQ(proxy.Rejected("not_origin_form"), 1u);
  EXPECT_EQ(proxy.Rejected("malformed"), 1u);
  // None of the refused requests reached the server (only health checks did).
  for (const auto& s : up.handler.seen()) EXPECT_EQ(s.target, "/healthz");
}

TEST_F(ProxyServerTest, SlowlorisIsCut) {
  FakeUpstream up;
  ProxyOptions o = Options({up.endpoint()});
  o.limits.header_timeout = 200ms;
  RunningProxy proxy(o, signer_);
  ASSERT_TRUE(proxy.status.ok());
  Client c(proxy.endpoint());
  c.Send("GET / HTTP/1.1\r\nHost: h\r\n");  // never finished
  EXPECT_TRUE(c.Closed());
  EXPECT_EQ(proxy.Rejected("timeout"), 1u);
}

TEST_F(ProxyServerTest, AllowListCanBeExtendedButNotWithIdentityHeaders) {
  FakeUpstream up;
  ProxyOptions o = Options({up.endpoint()});
  o.forward_headers = {"X-Custom-Thing"};
  RunningProxy proxy(o, signer_);
  ASSERT_TRUE(proxy.status.ok());
  ASSERT_EQ(Fetch(proxy.endpoint(), "/", "X-Custom-Thing: kept\r\n").status, 200);
  EXPECT_EQ(up.handler.last().Get("X-Custom-Thing"), "kept");

  ProxyOptions bad = Options({up.endpoint()});
  bad.forward_headers = {"X-Forwarded-For"};
  RunningProxy refused(bad, signer_);
  EXPECT_EQ(refused.status.code(), common::Code::kInvalidArgument);
}

TEST_F(ProxyServerTest, OptionsMustNest) {
  ProxyOptions o = Options({"127.0.0.1:1"});
  o.listeners.push_back({"127.0.0.1:0", "tenant-a", ""});
  EXPECT_TRUE(o.Validate().ok());
  ProxyOptions a = o;
  a.upstream.connect_timeout = a.upstream_timeout;
  EXPECT_FALSE(a.Validate().ok());
  ProxyOptions b = o;
  b.upstream.health_timeout = b.upstream.health_interval;
  EXPECT_FALSE(b.Validate().ok());
  ProxyOptions c = o;
  c.listeners[0].network = "bad network";
  EXPECT_FALSE(c.Validate().ok());
  ProxyOptions d = o;
  d.listeners[0].network = "";
  EXPECT_FALSE(d.Validate().ok()) << "a guest listener needs a network";
  ProxyOptions e = o;
  e.upstreams.clear();
  EXPECT_FALSE(e.Validate().ok());
}

TEST_F(ProxyServerTest, UnixSocketUpstream) {
  const std::string path =
      ::testing::TempDir() + "/oimds-proxy-test-" + std::to_string(getpid()) + ".sock";
  FakeUpstream up("unix:" + path);
  ASSERT_TRUE(up.started);
  RunningProxy proxy(Options({"unix:" + path}), signer_);
  ASSERT_TRUE(proxy.status.ok());
  Reply r = Fetch(proxy.endpoint(), "/latest/meta-data/", "", "127.0.0.9");
  ASSERT_EQ(r.status, 200) << r.raw;
  auto [network, source] = VerifiedIdentity(up.handler.last(), signer_);
  EXPECT_EQ(source, "127.0.0.9");
}

TEST_F(ProxyServerTest, BindsToAnInterface) {
  FakeUpstream up;
  ProxyOptions o = Options({up.endpoint()});
  o.listeners.push_back({"127.0.0.1:0", "tenant-a", "lo"});
  RunningProxy proxy(o, signer_);
  if (proxy.status.code() == common::Code::kUnavailable &&
      proxy.status.message().find("ermission") != std::string::npos) {
    GTEST_SKIP() << "SO_BINDTODEVICE needs CAP_NET_RAW: " << proxy.status.message();
  }
  ASSERT_TRUE(proxy.status.ok()) << proxy.status.ToString();
  EXPECT_EQ(Fetch(proxy.endpoint(), "/").status, 200);

  ProxyOptions missing = Options({up.endpoint()});
  missing.listeners.push_back({"127.0.0.1:0", "tenant-a", "oimds-nope0"});
  RunningProxy bad(missing, signer_);
  EXPECT_FALSE(bad.status.ok());
}

// router proxy (guests of tenant-a) -> edge proxy -> server.
class ChainTest : public ProxyServerTest {
 protected:
  auth::RequestSigner edge_signer_ = MakeSigner("edge", kEdgeKey, clock_);
};

TEST_F(ChainTest, EdgeKeepsTheFirstHopsIdentityAndHopLimit) {
  FakeUpstream up;
  up.handler.respond = [](const common::Request& r, common::Response& out) {
    out.body = "ok";
    if (r.target == "/latest/api/token") out.AddHeader(std::string(auth::kIpTtlHeader), "2");
  };
  ProxyOptions edge_o = Options({up.endpoint()});
  edge_o.listeners.push_back({"127.0.0.1:0", "", ""});  // serves only proxies
  edge_o.trusted_proxies = {*common::Cidr::Parse("127.0.0.1/32")};
  RunningProxy edge(edge_o, edge_signer_, &signer_);
  ASSERT_TRUE(edge.status.ok()) << edge.status.ToString();
  RunningProxy router(Options({edge.endpoint()}), signer_);
  ASSERT_TRUE(router.status.ok());

  Reply r =
      Fetch(router.endpoint(), "/latest/meta-data/", "X-Forwarded-For: 6.6.6.6\r\n", "127.0.0.5");
  ASSERT_EQ(r.status, 200) << r.raw;
  testing::Seen s = up.handler.last();
  auto [network, source] = VerifiedIdentity(s, edge_signer_);  // signed anew by the edge
  EXPECT_EQ(network, "tenant-a");
  EXPECT_EQ(source, "127.0.0.5");
  EXPECT_EQ(s.Get(auth::kKeyIdHeader), "edge");
  EXPECT_EQ(s.Get("X-Forwarded-For"), "127.0.0.5");  // the router's record, passed on
  // Budgets nest: the edge's deadline is inside the router's.
  const int router_budget = 900 - 50;
  EXPECT_LE(std::stoi(s.Get(auth::kBudgetHeader)), router_budget - 50);
  EXPECT_EQ(edge.metrics.CounterValue("proxy_chained_requests_total"), 1u);

  Client c(router.endpoint(), "127.0.0.5");
  c.Send("PUT /latest/api/token HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
  r = c.Read();
  ASSERT_EQ(r.status, 200);
  EXPECT_FALSE(r.Has(auth::kIpTtlHeader));
  EXPECT_EQ(router.metrics.CounterValue("proxy_hop_limit_applied_total"), 1u);
  EXPECT_EQ(edge.metrics.CounterValue("proxy_hop_limit_applied_total"), 0u)
      << "the edge must pass the instruction to the first hop, not apply it";
}

TEST_F(ChainTest, EdgeRefusesForgedOrMissingIdentityFromTrustedPeer) {
  FakeUpstream up;
  ProxyOptions edge_o = Options({up.endpoint()});
  edge_o.listeners.push_back({"127.0.0.1:0", "edge-guests", ""});
  edge_o.trusted_proxies = {*common::Cidr::Parse("127.0.0.1/32")};
  RunningProxy edge(edge_o, edge_signer_, &signer_);
  ASSERT_TRUE(edge.status.ok());

  // From the trusted address: a wrong key is refused, so is no identity.
  auth::RequestSigner forger = MakeSigner("k1", "forged-key-0123456789", clock_);
  auth::SignedIdentity id = forger.Sign("GET", "/x", "tenant-a", "10.0.0.5");
  std::string forged = std::string(auth::kNetworkHeader) + ": tenant-a\r\n" +
                       std::string(auth::kSourceHeader) + ": 10.0.0.5\r\n" +
                       std::string(auth::kTimestampHeader) + ": " + std::to_string(id.timestamp) +
                       "\r\n" + std::string(auth::kKeyIdHeader) + ": k1\r\n" +
                       std::string(auth::kSignatureHeader) + ": " + id.signature + "\r\n";
  EXPECT_EQ(Fetch(edge.endpoint(), "/x", forged, "127.0.0.1").status, 403);
  EXPECT_EQ(Fetch(edge.endpoint(), "/x", "", "127.0.0.1").status, 403);
  EXPECT_EQ(edge.Rejected("untrusted_identity"), 2u);

  // From any other address the same headers are a guest's claims: stripped.
  Reply r = Fetch(edge.endpoint(), "/x", forged, "127.0.0.8");
  ASSERT_EQ(r.status, 200);
  auto [network, source] = VerifiedIdentity(up.handler.last(), edge_signer_);
  EXPECT_EQ(network, "edge-guests");
  EXPECT_EQ(source, "127.0.0.8");
}

}  // namespace
}  // namespace openimds::proxy
