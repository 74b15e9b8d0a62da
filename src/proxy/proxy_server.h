#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "auth/request_signer.h"
#include "auth/signer_holder.h"
#include "common/ip_address.h"
#include "common/metrics.h"
#include "common/result.h"
#include "proxy/upstream_pool.h"

namespace openimds::proxy {

// Where guests reach the proxy, and which tenant network they are on.
struct GuestListener {
  // "169.254.169.254:80", "[fd00:ec2::254]:80", "10.0.0.1:9697" or
  // "127.0.0.1:0" (port 0: read it back with ProxyServer::BoundEndpoints).
  std::string endpoint;
  // The tenant network of every guest that connects here (signed into each
  // forwarded request). [A-Za-z0-9._-]{1,64}. May be empty only on a proxy
  // that serves just other proxies (see ProxyOptions::trusted_proxies).
  std::string network;
  // Bind to this interface (SO_BINDTODEVICE): only packets that arrived on
  // it reach the listener, and replies leave through it. This is what lets
  // one host namespace serve several networks whose guests share addresses.
  // Empty: any interface.
  std::string interface;
};

// Guest-facing limits and deadlines, each defaulted.
struct GuestLimits {
  // Request line + headers (431 beyond) and body (413 beyond). Guests send
  // < 1 KiB of headers; the largest legitimate body is an OpenStack password
  // POST (< 1 KiB).
  size_t max_header_bytes = 8 * 1024;
  size_t max_body_bytes = 4 * 1024;
  // The whole request must arrive within this time once its first byte has.
  std::chrono::milliseconds header_timeout{10'000};
  // A kept-alive connection with no request in flight is closed after this.
  std::chrono::milliseconds idle_timeout{60'000};
  // A response the guest does not read is abandoned after this.
  std::chrono::milliseconds write_timeout{10'000};
  // Open guest connections across all threads; more are accepted and closed
  // at once (counted). Each idle connection costs about 1 KiB in the proxy.
  size_t max_connections = 65'536;
  // Open connections from one guest address (0 = no cap); trusted proxies
  // (ProxyOptions::trusted_proxies) have none. More are closed at once.
  size_t max_connections_per_source = 256;
  // Requests from one guest (an IPv4 address or an IPv6 /64; behind a
  // trusted proxy, the first hop's guest) forwarded at once by one I/O
  // thread; more are answered 429 with Retry-After at once, without going
  // upstream (0 = no cap). Each thread has its own upstream connections
  // (UpstreamOptions::max_connections_per_upstream, 128): this keeps one
  // guest whose requests the server holds (long-polls, a slow store) from
  // taking all of them from the other guests of that thread. The server's
  // own per-instance limits still apply to what is forwarded, and its 429s
  // pass through unchanged.
  size_t max_in_flight_per_source = 32;
};

struct ProxyOptions {
  std::vector<GuestListener> listeners;
  // Servers, tried in round-robin order among the healthy ones:
  // "10.0.0.2:8775", "[fd00::2]:8775", "unix:/run/openimds/proxy.sock".
  std::vector<std::string> upstreams;
  UpstreamOptions upstream;
  GuestLimits limits;
  // Time the proxy gives one request upstream, failover included. Timeouts
  // nest: this is below the 1 s IMDS timeout of the AWS SDKs (the most
  // impatient common client), so a guest gets the proxy's 503 rather than
  // its own timeout; each proxy sends the next hop its remaining budget
  // (X-OpenIMDS-Budget-Ms) and an inner proxy never waits longer than that
  // minus `budget_margin`.
  std::chrono::milliseconds upstream_timeout{900};
  std::chrono::milliseconds budget_margin{50};
  // Retry-After (seconds) on 503 when no server answers: about one health
  // check interval, after which a restarted server is back in rotation.
  int retry_after_seconds = 1;
  // Request headers forwarded besides HeaderPolicy::DefaultAllowed().
  std::vector<std::string> forward_headers;
  // Chains (router proxy -> edge proxy -> server): requests from these peers
  // must carry a signed identity that `chain_verifier` accepts; the proxy
  // keeps that identity (the first hop's) and signs it anew. Requests from
  // any other peer are guests of their listener's network.
  std::vector<common::Cidr> trusted_proxies;
  // I/O threads, each accepting from every listener's one socket (bound
  // exclusively; an address in use fails Start) and with its own upstream
  // connections. 0 = one per core.
  int threads = 0;
  // After Shutdown(): how long in-flight requests may take.
  std::chrono::milliseconds shutdown_grace{5'000};

  // InvalidArgument when a field is out of range or timeouts do not nest
  // (connect_timeout < upstream_timeout, health_timeout < health_interval).
  common::Status Validate() const;
};

// `openimds proxy`: accepts guests where they reach 169.254.169.254, strips
// every identity header a guest sends, adds a signed identity (listener
// network, guest source address, timestamp, key id; auth::RequestSigner)
// and forwards over keep-alive connections to one or more servers, with
// health checks and failover. When no server answers: 503 + Retry-After.
// The server's hop-limit instruction (X-OpenIMDS-IP-TTL) is applied to the
// guest-facing socket for that response and stripped.
//
// Refusals, each counted in proxy_rejected_total{reason} with one log line:
//   malformed (400), header_too_large (431), body_too_large (413),
//   timeout (connection closed), not_origin_form (400), no_network (403),
//   untrusted_identity (403: a trusted proxy's identity did not verify),
//   too_many_connections, too_many_from_source (connection closed at accept),
//   too_many_in_flight_from_source (429 + Retry-After: GuestLimits::
//   max_in_flight_per_source),
//   unavailable (503 + Retry-After), upstream_timeout (503 + Retry-After),
//   upstream_busy (503 + Retry-After: every allowed upstream connection busy),
//   bad_upstream_response (502), unexpected_body (400: a GET or HEAD that
//   announced a body, refused on its header).
//
// Thread-safety: Start, Run and Shutdown may be called from different
// threads; Shutdown is not async-signal-safe.
class ProxyServer {
 public:
  // `signer` signs forwarded identities; `chain_verifier` checks identities
  // from `options.trusted_proxies` (required iff that list is not empty).
  // Both are borrowed and must outlive the server. Replacing what they hold
  // (SIGHUP key reload) takes effect from the next request; requests already
  // being signed or checked finish with the old keys.
  ProxyServer(ProxyOptions options, const auth::SignerHolder& signer,
              const auth::SignerHolder* chain_verifier, common::MetricsRegistry& metrics);
  // Fixed keys: the same, with signers that never change (borrowed).
  ProxyServer(ProxyOptions options, const auth::RequestSigner& signer,
              const auth::RequestSigner* chain_verifier, common::MetricsRegistry& metrics);
  ~ProxyServer();
  ProxyServer(const ProxyServer&) = delete;
  ProxyServer& operator=(const ProxyServer&) = delete;

  // Validates options and binds every listener. InvalidArgument for bad
  // options; Unavailable with the endpoint and OS error when a bind fails.
  common::Status Start();

  // The bound endpoints in listener order, with real ports.
  std::vector<std::string> BoundEndpoints() const;

  // Runs the I/O threads and health checks; returns after Shutdown().
  void Run();

  // Stops accepting, lets in-flight requests finish for shutdown_grace,
  // then closes everything. Idempotent.
  void Shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace openimds::proxy
