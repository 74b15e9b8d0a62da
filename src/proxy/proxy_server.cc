#include "proxy/proxy_server.h"

#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "common/http_message.h"
#include "common/log.h"
#include "http/connection_gate.h"
#include "http/hop_limit.h"
#include "http/request_parser.h"
#include "http/wire_format.h"
#include "proxy/header_policy.h"
#include "proxy/wire.h"

namespace openimds::proxy {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = Deadlines::Clock;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// Per read once a request has started; guest requests are ~200 bytes.
constexpr size_t kReadChunk = 4 * 1024;
// The first read of each request: a guest request is 80-300 bytes.
constexpr size_t kFirstRead = 1024;
// Per-connection buffers larger than this are released between requests.
constexpr size_t kKeepBytes = 8 * 1024;
// The coarse timer that enforces every deadline of one thread.
constexpr auto kReaperTick = std::chrono::milliseconds(50);

bool ValidNetworkName(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// A GET or HEAD whose header announces a body (a Content-Length other than
// 0, or a Transfer-Encoding): no guest route takes one, so the proxy refuses
// it on the header instead of reading the body.
bool BodylessWithBody(const http::ParsedRequest& req) {
  const std::string_view method = req.View(req.method);
  if (!common::EqualsIgnoreCase(method, "GET") && !common::EqualsIgnoreCase(method, "HEAD")) {
    return false;
  }
  if (req.Count("Transfer-Encoding") > 0) return true;
  std::string_view length;
  if (!req.Find("Content-Length", length)) return false;
  uint64_t bytes = 0;
  auto [end, ec] = std::from_chars(length.data(), length.data() + length.size(), bytes);
  return ec != std::errc() || end != length.data() + length.size() || bytes != 0;
}

void AppendHeader(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

// A response the proxy makes itself (refusals, 503).
// `head`: the answer to a HEAD request, which has the headers and no body.
void SimpleResponse(std::string& out, int version, int status, std::string_view body,
                    bool keep_alive, bool head, int retry_after = -1) {
  out.clear();
  out += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  AppendNumber(out, static_cast<uint64_t>(status));
  out += ' ';
  out += ReasonPhrase(status);
  out += "\r\n";
  AppendHeader(out, "Date", HttpDate());
  AppendHeader(out, "Content-Type", "text/plain");
  out += "Content-Length: ";
  AppendNumber(out, body.size() + 1);
  out += "\r\n";
  if (retry_after >= 0) {
    out += "Retry-After: ";
    AppendNumber(out, static_cast<uint64_t>(retry_after));
    out += "\r\n";
  }
  out += keep_alive ? (version == 10 ? "Connection: keep-alive\r\n" : "") : "Connection: close\r\n";
  out += "\r\n";
  if (head) return;
  out += body;
  out += '\n';
}

struct ListenerState {
  GuestListener config;
  tcp::endpoint endpoint;  // with the real port once bound
  // The one listening socket every worker accepts from (each through its own
  // descriptor for it); owned by the first worker's acceptor.
  int listening_fd = -1;
  common::Counter* requests = nullptr;
};

// One I/O thread. Destruction order matters: idle pooled sockets first
// (~Worker), then the io_context and its suspended coroutine frames, then
// the pool and the deadlines those frames' connections are registered in.
struct SourceHash {
  size_t operator()(const common::IpAddress& a) const { return a.Hash(); }
};
// Requests being forwarded, by guest (http::ConnectionGate::SourceKey), on
// one I/O thread; only that thread touches it.
using InFlightBySource = std::unordered_map<common::IpAddress, uint32_t, SourceHash>;

// One forwarded request's place in its guest's count of requests in flight
// (GuestLimits::max_in_flight_per_source), given back when it goes.
class InFlightSlot {
 public:
  InFlightSlot(InFlightBySource& counts, const common::IpAddress& key, size_t cap)
      : counts_(counts), key_(key) {
    if (cap == 0) return;
    uint32_t& n = counts_[key_];
    if (n >= cap) {
      return;
    }
    ++n;
    held_ = true;
  }
  ~InFlightSlot() {
    if (!held_) return;
    auto it = counts_.find(key_);
    if (it != counts_.end() && --it->second == 0) counts_.erase(it);
  }
  InFlightSlot(const InFlightSlot&) = delete;
  InFlightSlot& operator=(const InFlightSlot&) = delete;
  // False when the guest had `cap` requests in flight already.
  bool admitted(size_t cap) const { return cap == 0 || held_; }

 private:
  InFlightBySource& counts_;
  const common::IpAddress key_;
  bool held_ = false;
};

struct Worker {
  ~Worker() {
    // Idle pooled sockets go while the io_context lives; the io_context then
    // destroys suspended coroutines, whose connections report to the pool.
    if (pool) pool->Stop();
  }
  // Outlives the io_context: suspended coroutines hold InFlightSlots.
  InFlightBySource in_flight;
  Deadlines deadlines;
  std::unique_ptr<UpstreamPool> pool;
  // One thread runs this context and every socket and acceptor on it is
  // touched only from that thread (other threads reach it through post(),
  // which keeps the scheduler's lock), so the reactor's per-descriptor
  // locking is pure overhead: UNSAFE_IO turns just that off (callgrind:
  // pthread_mutex_lock/unlock were ~4.5% of the server's instructions).
  asio::io_context ctx{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::vector<std::pair<std::unique_ptr<tcp::acceptor>, ListenerState*>> acceptors;
  std::unique_ptr<asio::steady_timer> reaper;
  std::thread thread;
  std::atomic<int> active{0};
};

}  // namespace

common::Status ProxyOptions::Validate() const {
  if (listeners.empty()) return common::InvalidArgument("the proxy needs at least one listener");
  if (upstreams.empty()) return common::InvalidArgument("the proxy needs at least one upstream");
  if (upstreams.size() > 64) return common::InvalidArgument("at most 64 upstreams");
  for (const auto& l : listeners) {
    if (l.network.empty()) {
      if (trusted_proxies.empty()) {
        return common::InvalidArgument("listener " + l.endpoint +
                                       " has no network (and the proxy serves no other proxies)");
      }
    } else if (!ValidNetworkName(l.network)) {
      return common::InvalidArgument("network name '" + l.network +
                                     "' must be 1-64 characters of [A-Za-z0-9._-]");
    }
    if (l.interface.size() >= IFNAMSIZ) {
      return common::InvalidArgument("interface name '" + l.interface + "' is too long");
    }
  }
  if (upstream.connect_timeout <= std::chrono::milliseconds(0) ||
      upstream.connect_timeout >= upstream_timeout) {
    return common::InvalidArgument(
        "the upstream connect timeout must be positive and below the "
        "upstream timeout (timeouts nest)");
  }
  if (budget_margin < std::chrono::milliseconds(0) || budget_margin >= upstream_timeout) {
    return common::InvalidArgument("the budget margin must be below the upstream timeout");
  }
  if (upstream.health_timeout <= std::chrono::milliseconds(0) ||
      upstream.health_timeout >= upstream.health_interval) {
    return common::InvalidArgument("the health check timeout must be below its interval");
  }
  if (upstream.max_attempts < 1) return common::InvalidArgument("max attempts must be >= 1");
  if (retry_after_seconds < 0) return common::InvalidArgument("Retry-After must be >= 0");
  if (upstream.health_path.empty() || upstream.health_path.front() != '/' ||
      !SafeHeaderText(upstream.health_path) ||
      upstream.health_path.find(' ') != std::string::npos) {
    return common::InvalidArgument("the health check path must start with '/'");
  }
  return common::Status::Ok();
}

struct ProxyServer::Impl {
  ProxyOptions options;
  // Holders made by the fixed-key constructor (null otherwise); declared
  // before the pointers below, which may point at them.
  std::unique_ptr<auth::SignerHolder> own_signer;
  std::unique_ptr<auth::SignerHolder> own_chain_verifier;
  // Read once per request with Get() (lock-free); see auth::Swappable.
  const auth::SignerHolder& signer;
  const auth::SignerHolder* chain_verifier;
  common::MetricsRegistry& metrics;
  std::optional<HeaderPolicy> policy;
  std::unique_ptr<UpstreamSet> upstreams;
  std::vector<std::unique_ptr<ListenerState>> listeners;
  std::vector<std::unique_ptr<Worker>> workers;
  std::atomic<bool> draining{false};
  std::atomic<bool> started{false};
  http::ConnectionGate gate;  // every guest connection, and per source address
  std::mutex shutdown_mu;
  std::unique_ptr<std::thread> shutdown_thread;  // guarded by shutdown_mu

  // Counters, registered in the constructor.
  common::Counter* connections;
  common::Counter* stripped;
  common::Counter* ttl_applied;
  common::Counter* chained;
  common::Counter* rejected_malformed;
  common::Counter* rejected_header_size;
  common::Counter* rejected_body_size;
  common::Counter* rejected_timeout;
  common::Counter* rejected_not_origin;
  common::Counter* rejected_no_network;
  common::Counter* rejected_identity;
  common::Counter* rejected_connections;
  common::Counter* rejected_source_connections;
  common::Counter* rejected_unavailable;
  common::Counter* rejected_upstream_timeout;
  common::Counter* rejected_upstream_busy;
  common::Counter* rejected_bad_upstream;
  common::Counter* rejected_unexpected_body;
  common::Counter* rejected_in_flight;

  Impl(ProxyOptions o, std::unique_ptr<auth::SignerHolder> own_s,
       std::unique_ptr<auth::SignerHolder> own_v, const auth::SignerHolder& s,
       const auth::SignerHolder* v, common::MetricsRegistry& m)
      : options(std::move(o)),
        own_signer(std::move(own_s)),
        own_chain_verifier(std::move(own_v)),
        signer(own_signer ? *own_signer : s),
        chain_verifier(own_chain_verifier ? own_chain_verifier.get() : v),
        metrics(m),
        gate(options.limits.max_connections) {
    connections = &m.GetCounter("proxy_connections_total", "Guest connections accepted.");
    stripped = &m.GetCounter("proxy_identity_headers_stripped_total",
                             "Guest requests that carried identity headers, which were removed.");
    ttl_applied = &m.GetCounter("proxy_hop_limit_applied_total",
                                "Responses sent with the server's IP TTL instruction.");
    chained = &m.GetCounter("proxy_chained_requests_total",
                            "Requests from trusted proxies whose identity was kept.");
    auto rejected = [&m](const char* reason) {
      return &m.GetCounter("proxy_rejected_total", "Requests or connections the proxy refused.",
                           std::string("reason=\"") + reason + "\"");
    };
    rejected_malformed = rejected("malformed");
    rejected_header_size = rejected("header_too_large");
    rejected_body_size = rejected("body_too_large");
    rejected_timeout = rejected("timeout");
    rejected_not_origin = rejected("not_origin_form");
    rejected_no_network = rejected("no_network");
    rejected_identity = rejected("untrusted_identity");
    rejected_connections = rejected("too_many_connections");
    rejected_source_connections = rejected("too_many_from_source");
    rejected_unavailable = rejected("unavailable");
    rejected_upstream_timeout = rejected("upstream_timeout");
    rejected_upstream_busy = rejected("upstream_busy");
    rejected_bad_upstream = rejected("bad_upstream_response");
    rejected_unexpected_body = rejected("unexpected_body");
    rejected_in_flight = rejected("too_many_in_flight_from_source");
  }

  // The per-source cap for a peer: none for trusted proxies, which carry
  // many guests' requests.
  size_t SourceCap(const common::IpAddress& peer) const {
    return !options.trusted_proxies.empty() && TrustedProxy(peer)
               ? 0
               : options.limits.max_connections_per_source;
  }

  bool TrustedProxy(const common::IpAddress& peer) const {
    for (const auto& c : options.trusted_proxies) {
      if (c.Contains(peer)) return true;
    }
    return false;
  }

  common::Status Bind(ListenerState& ls, Worker& w, bool first);
  void StartReaper(Worker& w);
  asio::awaitable<void> AcceptLoop(tcp::acceptor& acceptor, ListenerState& ls, Worker& w);
  asio::awaitable<void> Session(tcp::socket socket, common::IpAddress peer, ListenerState& ls,
                                Worker& w);
};

common::Status ProxyServer::Impl::Bind(ListenerState& ls, Worker& w, bool first) {
  auto acc = std::make_unique<tcp::acceptor>(w.ctx);
  boost::system::error_code ec;
  if (!first) {
    // The other workers accept from the first one's socket through
    // descriptors of their own (each polls it; accept sorts out the winner).
    const int dup_fd = ::fcntl(ls.listening_fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) {
      ec.assign(errno, boost::system::system_category());
    } else {
      acc->assign(ls.endpoint.protocol(), dup_fd, ec);
      if (ec) ::close(dup_fd);
    }
    if (ec) return common::Unavailable("cannot listen on " + ls.config.endpoint + ": " + ec.message());
    w.acceptors.emplace_back(std::move(acc), &ls);
    return common::Status::Ok();
  }
  // One socket, bound without SO_REUSEPORT: an address anyone else holds
  // fails here with "address already in use", and nobody can join this one
  // later and take a share of its guests.
  acc->open(ls.endpoint.protocol(), ec);
  if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
  int fd = ec ? -1 : acc->native_handle();
  if (!ec && !ls.config.interface.empty()) {
    // Accepted sockets inherit the device: replies leave where the guest is.
    if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ls.config.interface.c_str(),
                   static_cast<socklen_t>(ls.config.interface.size())) != 0) {
      ec.assign(errno, boost::system::system_category());
    }
  }
  if (!ec && ls.endpoint.address().is_v6()) acc->set_option(asio::ip::v6_only(true), ec);
  if (!ec) acc->bind(ls.endpoint, ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::string where = ls.config.endpoint;
    if (!ls.config.interface.empty()) where += " on interface " + ls.config.interface;
    return common::Unavailable("cannot listen on " + where + ": " + ec.message());
  }
  ls.endpoint = acc->local_endpoint();
  ls.listening_fd = fd;
  w.acceptors.emplace_back(std::move(acc), &ls);
  return common::Status::Ok();
}

void ProxyServer::Impl::StartReaper(Worker& w) {
  w.reaper = std::make_unique<asio::steady_timer>(w.ctx);
  auto tick = std::make_shared<std::function<void()>>();
  *tick = [this, &w, tick]() {
    w.reaper->expires_after(kReaperTick);
    w.reaper->async_wait([this, &w, tick](boost::system::error_code ec) {
      if (ec) return;
      w.deadlines.Sweep(Clock::now(), draining.load(std::memory_order_relaxed));
      common::FlushRefusalSummaries();  // held-back refusal lines, summarised
      (*tick)();
    });
  };
  (*tick)();
}

asio::awaitable<void> ProxyServer::Impl::AcceptLoop(tcp::acceptor& acceptor, ListenerState& ls,
                                                    Worker& w) {
  for (;;) {
    tcp::endpoint remote;  // comes with accept: no getpeername per connection
    auto [ec, socket] = co_await acceptor.async_accept(remote, kTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || draining.load()) co_return;
      common::LogRefusal("proxy", "accept on " + ls.config.endpoint + " failed: " + ec.message());
      asio::steady_timer t(w.ctx, std::chrono::milliseconds(50));
      co_await t.async_wait(kTuple);
      continue;
    }
    if (draining.load()) co_return;
    const common::IpAddress peer = http::ToIpAddress(remote.address());
    const auto verdict = gate.Admit(peer, SourceCap(peer));
    if (verdict != http::ConnectionGate::Verdict::kAdmitted) {
      const bool per_source = verdict == http::ConnectionGate::Verdict::kTooManyFromSource;
      (per_source ? rejected_source_connections : rejected_connections)->Inc();
      common::LogRefusal(
          "proxy", "closed a connection from " + peer.ToString() + " on " + ls.config.endpoint +
                       ": " +
                       (per_source ? std::to_string(SourceCap(peer)) +
                                         (peer.is_v4() ? " connections from that address are open"
                                                       : " connections from that /64 are open")
                                   : std::to_string(gate.max_open()) + " connections are open"));
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    asio::co_spawn(w.ctx, Session(std::move(socket), peer, ls, w), asio::detached);
  }
}

asio::awaitable<void> ProxyServer::Impl::Session(tcp::socket socket, common::IpAddress peer,
                                                 ListenerState& ls, Worker& w) {
  const GuestLimits& limits = options.limits;
  connections->Inc();
  w.active.fetch_add(1, std::memory_order_relaxed);
  bool is_v6 = false;
  {
    boost::system::error_code ec;
    socket.set_option(tcp::no_delay(true), ec);
    auto local = socket.local_endpoint(ec);
    if (!ec) is_v6 = local.address().is_v6();
  }
  // Constant for the connection: the guest's own identity, and whether it is
  // a trusted proxy instead.
  const std::string peer_text = peer.ToString();
  bool timed_out = false;
  Deadlines::Handle deadline =
      w.deadlines.Add([this, &socket, &timed_out, &ls, &peer_text](bool cut_short) {
        timed_out = true;
        if (cut_short) {
          // Counted here, before the guest can see the close.
          rejected_timeout->Inc();
          common::LogRefusal("proxy", "closing connection from " + peer_text + " on " +
                                          ls.config.endpoint + ": request not complete in time");
        }
        boost::system::error_code ignored;
        socket.close(ignored);
      });
  const bool from_proxy = !options.trusted_proxies.empty() && TrustedProxy(peer);

  http::ParsedRequest req;
  ParsedMessage upstream_response;  // pipelined exchanges parse here
  asio::steady_timer pipe_timer(w.ctx);
  std::string upstream_request;
  std::string out;
  boost::beast::flat_buffer buffer;
  http::HopLimitGuard ttl;

  try {
    for (;;) {
      // Wait for the next request with a read already posted. The buffers
      // stay allocated across requests, so a busy keep-alive connection
      // allocates nothing per request; an idle one holds about 1.5 KiB of
      // them (kFirstRead plus the small strings), and one a large request
      // grew gives the excess back here. (Waiting with async_wait and no
      // buffer instead cost an epoll_ctl re-arm and ~10 malloc/free pairs
      // per request: a fifth of the proxy's CPU under load.)
      deadline->idle = true;
      deadline->at = Clock::now() + limits.idle_timeout;
      if (buffer.size() == 0) {
        if (draining.load(std::memory_order_relaxed)) break;
        if (buffer.capacity() > kKeepBytes) buffer = boost::beast::flat_buffer();
        if (upstream_request.capacity() > kKeepBytes) std::string().swap(upstream_request);
        if (out.capacity() > kKeepBytes) std::string().swap(out);
        if (req.arena.capacity() > kKeepBytes || req.body.capacity() > kKeepBytes) {
          req = http::ParsedRequest();
        }
        if (upstream_response.arena.capacity() > kKeepBytes ||
            upstream_response.body.capacity() > kKeepBytes) {
          upstream_response = ParsedMessage();
        }
        auto [rec, rn] = co_await socket.async_read_some(buffer.prepare(kFirstRead), kTuple);
        if (rec) break;
        buffer.commit(rn);
      }
      deadline->idle = false;
      deadline->at = Clock::now() + limits.header_timeout;

      // The server core's parser, with the guest limits: header bytes (also
      // bounding chunk extensions and trailers), body bytes, one plain
      // "chunked" at most, no Content-Length beside it.
      http::RequestParser parser(
          req, http::RequestLimits{limits.max_header_bytes, limits.max_body_bytes});
      bool sent_continue = false;
      bool closed = false;
      bool body_refused = false;  // a GET or HEAD that announced a body
      while (!parser.done()) {
        if (buffer.size() > 0) {
          const auto data = buffer.data();
          size_t n =
              parser.Feed(std::string_view(static_cast<const char*>(data.data()), data.size()));
          buffer.consume(n);
          if (parser.refused() || parser.done()) break;
          if (parser.header_done() && BodylessWithBody(req)) {
            body_refused = true;  // on the header: the body is never read
            break;
          }
          if (parser.header_done() && req.expect_continue && !sent_continue) {
            sent_continue = true;
            static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
            deadline->at = Clock::now() + limits.write_timeout;
            auto [cec, cn] = co_await asio::async_write(
                socket, asio::buffer(kContinue.data(), kContinue.size()), kTuple);
            if (cec) {
              closed = true;
              break;
            }
            deadline->at = Clock::now() + limits.header_timeout;
          }
          if (n > 0 && buffer.size() > 0) continue;
        }
        auto [rec, rn] = co_await socket.async_read_some(buffer.prepare(kReadChunk), kTuple);
        if (rec) {
          closed = true;
          break;
        }
        buffer.commit(rn);
      }
      if (closed) break;
      // A body that came with its header.
      if (!parser.refused() && parser.done() && BodylessWithBody(req)) body_refused = true;

      const bool refused = parser.refused();
      int version = refused ? 11 : req.version;
      bool keep_alive = !refused && parser.keep_alive();
      std::optional<int> apply_ttl;
      const auto refuse = [&](common::Counter* counter, int status, std::string_view message) {
        counter->Inc();
        common::LogRefusal("proxy", "refused request from " + peer_text + " on " +
                                        ls.config.endpoint + ": " + std::string(message));
        keep_alive = false;
        const bool head = http::IsHeadRequest(
            req, std::string_view(static_cast<const char*>(buffer.data().data()), buffer.size()));
        SimpleResponse(out, version, status, message, false, head);
      };

      if (refused) {
        const int status = parser.status();
        refuse(status == 431   ? rejected_header_size
               : status == 413 ? rejected_body_size
                               : rejected_malformed,
               status, parser.message());
      } else if (body_refused) {
        refuse(rejected_unexpected_body, 400,
               std::string(req.View(req.method)) +
                   " requests take no body (send no Content-Length or Transfer-Encoding)");
      } else {
        ls.requests->Inc();
        const std::string_view method = req.View(req.method);
        const std::string_view target = req.View(req.target);

        std::string_view network = ls.config.network;
        std::string_view source = peer_text;
        auto budget = options.upstream_timeout;
        bool ok = true;
        if (target.empty() || target.front() != '/') {
          refuse(rejected_not_origin, 400, "the request target must be a path");
          ok = false;
        } else if (from_proxy) {
          // A chain: keep the first hop's identity if its signature holds.
          std::string_view n, s, ts, kid, sig, b;
          bool complete =
              req.Count(auth::kNetworkHeader) == 1 && req.Count(auth::kSourceHeader) == 1 &&
              req.Count(auth::kTimestampHeader) == 1 && req.Count(auth::kKeyIdHeader) == 1 &&
              req.Count(auth::kSignatureHeader) == 1;
          common::Status v = common::PermissionDenied("incomplete or repeated identity headers");
          if (complete && chain_verifier != nullptr) {
            req.Find(auth::kNetworkHeader, n);
            req.Find(auth::kSourceHeader, s);
            req.Find(auth::kTimestampHeader, ts);
            req.Find(auth::kKeyIdHeader, kid);
            req.Find(auth::kSignatureHeader, sig);
            v = chain_verifier->Get().Verify(method, target, n, s, kid, ts, sig);
            if (v.ok() && (!ValidNetworkName(n) || !common::IpAddress::Parse(s))) {
              v = common::PermissionDenied("signed network or source is malformed");
            }
          }
          if (!v.ok()) {
            refuse(rejected_identity, 403, "identity from proxy " + peer_text + ": " + v.message());
            ok = false;
          } else {
            chained->Inc();
            network = n;
            source = s;
            int64_t sender_ms = 0;
            if (req.Find(auth::kBudgetHeader, b)) {
              auto r = std::from_chars(b.data(), b.data() + b.size(), sender_ms);
              if (r.ec == std::errc() && r.ptr == b.data() + b.size() && sender_ms >= 0) {
                budget = std::min(budget, std::chrono::milliseconds(sender_ms));
              }
            }
          }
        } else if (network.empty()) {
          refuse(rejected_no_network, 403, "this listener serves no guest network");
          ok = false;
        }

        // One guest's requests in flight on this thread are capped, so it
        // cannot hold every upstream connection the thread has.
        std::optional<InFlightSlot> slot;
        if (ok) {
          const common::IpAddress guest =
              from_proxy ? common::IpAddress::Parse(source).value_or(peer) : peer;
          const size_t cap = limits.max_in_flight_per_source;
          slot.emplace(w.in_flight, http::ConnectionGate::SourceKey(guest), cap);
          if (!slot->admitted(cap)) {
            ok = false;
            rejected_in_flight->Inc();
            common::LogRefusal("proxy", "429 for " + std::string(source) + " in " +
                                            std::string(network) + ": " + std::to_string(cap) +
                                            " of its requests are in flight");
            SimpleResponse(out, version, 429,
                           "too many requests from this guest at once: retry after the number "
                           "of seconds in Retry-After",
                           keep_alive, common::EqualsIgnoreCase(method, "HEAD"),
                           options.retry_after_seconds);
          }
        }

        if (ok) {
          // The request as the next hop sees it.
          upstream_request.clear();
          upstream_request.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
          bool guest_forwarded = false;
          bool any_identity = false;
          for (const auto& [ns, vs] : req.fields) {
            const std::string_view name = req.View(ns);
            const std::string_view value = req.View(vs);
            switch (policy->Classify(name)) {
              case RequestHeaderAction::kForward:
                AppendHeader(upstream_request, name, value);
                break;
              case RequestHeaderAction::kStripIdentity:
                if (from_proxy) {
                  // The previous hop's own forwarding record passes on.
                  if (HeaderPolicy::IsForwardingHeader(name)) {
                    AppendHeader(upstream_request, name, value);
                  }
                } else {
                  any_identity = true;
                  guest_forwarded = guest_forwarded || HeaderPolicy::IsForwardingHeader(name);
                }
                break;
              case RequestHeaderAction::kDrop:
                break;
            }
          }
          if (any_identity) {
            stripped->Inc();
            common::Log(common::LogLevel::kDebug, "proxy",
                        "removed identity headers from " + peer_text + "'s request");
          }
          // A guest that sends X-Forwarded-For says it is relaying someone
          // else's request (an SSRF-prone proxy inside the guest). Its values
          // are dropped, but the fact is kept: the server sees this proxy's
          // own record of the hop, so policies such as EC2's "no token PUT
          // with X-Forwarded-For" hold as if the guest had asked directly.
          // The server never reads identity from it.
          if (guest_forwarded) AppendHeader(upstream_request, "X-Forwarded-For", source);

          auth::SignedIdentity sig = signer.Get().Sign(method, target, network, source);
          AppendHeader(upstream_request, auth::kNetworkHeader, network);
          AppendHeader(upstream_request, auth::kSourceHeader, source);
          upstream_request.append(auth::kTimestampHeader).append(": ");
          AppendNumber(upstream_request, static_cast<uint64_t>(sig.timestamp));
          upstream_request.append("\r\n");
          AppendHeader(upstream_request, auth::kKeyIdHeader, sig.key_id);
          AppendHeader(upstream_request, auth::kSignatureHeader, sig.signature);
          const auto next_budget = budget - options.budget_margin;
          upstream_request.append(auth::kBudgetHeader).append(": ");
          AppendNumber(upstream_request,
                       static_cast<uint64_t>(std::max<int64_t>(0, next_budget.count())));
          upstream_request.append("\r\n");
          const bool head = common::EqualsIgnoreCase(method, "HEAD");
          if (!req.body.empty() || !(head || common::EqualsIgnoreCase(method, "GET"))) {
            upstream_request.append("Content-Length: ");
            AppendNumber(upstream_request, req.body.size());
            upstream_request.append("\r\n");
          }
          upstream_request.append("\r\n");
          upstream_request.append(req.body);

          UpstreamPool::Exchange ex;
          ex.request = upstream_request;
          ex.head = head;
          ex.retryable = !common::EqualsIgnoreCase(method, "POST") &&
                         !common::EqualsIgnoreCase(method, "PATCH");
          if (head || common::EqualsIgnoreCase(method, "GET")) {
            // Safe and idempotent: may share an upstream connection with
            // other guests' requests of this turn (UpstreamOptions::pipeline_depth).
            ex.response_out = &upstream_response;
            ex.wait_timer = &pipe_timer;
          }
          // The inner hop is told budget - margin; this hop waits `budget`
          // minus its own margin, so each gives up before the one in front.
          ex.deadline =
              Clock::now() +
              (budget > options.budget_margin ? budget - options.budget_margin : budget / 2);
          // The guest's deadline covers the upstream exchange too.
          deadline->at = std::max(deadline->at, ex.deadline + limits.write_timeout);
          UpstreamPool::Lease lease = co_await w.pool->Forward(ex);
          if (timed_out) break;

          if (!lease.ok()) {
            if (lease.failure == UpstreamPool::Failure::kBadResponse) {
              rejected_bad_upstream->Inc();
              common::LogRefusal("proxy", "502 for " + peer_text + " in " + std::string(network) +
                                              ": " + lease.detail);
              SimpleResponse(out, version, 502, "bad response from the metadata server",
                             keep_alive, head);
            } else {
              (lease.failure == UpstreamPool::Failure::kTimeout ? rejected_upstream_timeout
               : lease.failure == UpstreamPool::Failure::kBusy  ? rejected_upstream_busy
                                                                : rejected_unavailable)
                  ->Inc();
              common::LogRefusal("proxy", "503 for " + peer_text + " in " + std::string(network) +
                                              ": " + lease.detail);
              SimpleResponse(out, version, 503,
                             "the metadata service is unavailable; retry shortly", keep_alive,
                             head, options.retry_after_seconds);
            }
          } else {
            const ParsedMessage& resp = lease.response();
            out.clear();
            out += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
            AppendNumber(out, static_cast<uint64_t>(resp.status));
            out += ' ';
            std::string_view reason = resp.View(resp.reason);
            out += reason.empty() || !SafeHeaderText(reason) ? ReasonPhrase(resp.status) : reason;
            out += "\r\n";
            AppendHeader(out, "Date", HttpDate());
            std::string_view head_length;
            for (const auto& [ns, vs] : resp.fields) {
              const std::string_view name = resp.View(ns);
              const std::string_view value = resp.View(vs);
              if (common::EqualsIgnoreCase(name, auth::kIpTtlHeader)) {
                if (from_proxy) {
                  AppendHeader(out, name, value);  // the first hop applies it
                } else {
                  apply_ttl = HeaderPolicy::ParseIpTtl(value);
                }
                continue;
              }
              if (head && common::EqualsIgnoreCase(name, "Content-Length")) head_length = value;
              if (!HeaderPolicy::ForwardResponseHeader(name) || !SafeHeaderText(value)) continue;
              AppendHeader(out, name, value);
            }
            const bool bodyless = resp.status < 200 || resp.status == 204 || resp.status == 304;
            if (!bodyless) {
              out += "Content-Length: ";
              if (head) {
                out += head_length.empty() || !SafeHeaderText(head_length) ? "0" : head_length;
              } else {
                AppendNumber(out, resp.body.size());
              }
              out += "\r\n";
            }
            if (draining.load(std::memory_order_relaxed)) keep_alive = false;
            if (!keep_alive) {
              out += "Connection: close\r\n";
            } else if (version == 10) {
              out += "Connection: keep-alive\r\n";
            }
            out += "\r\n";
            if (!head && !bodyless) out += resp.body;
            w.pool->Release(std::move(lease));
          }
        }
      }

      if (draining.load(std::memory_order_relaxed) && keep_alive) {
        // Refusals and 5xx built above may still say keep-alive; on drain
        // every response closes. Rebuilding is not worth it: tell the guest
        // by closing after this response.
        keep_alive = false;
      }
      // The token response leaves with the instance's hop limit; any later
      // response on this connection with the default again.
      if (apply_ttl) {
        ttl.Apply(socket.native_handle(), is_v6, *apply_ttl);
        ttl_applied->Inc();
      } else {
        ttl.Restore();
      }
      deadline->at = Clock::now() + limits.write_timeout;
      auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(out), kTuple);
      if (wec || !keep_alive) break;
    }
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_send, ignored);
  } catch (const std::exception& e) {
    // An exception escaping a detached coroutine would abort the process.
    common::LogError("proxy", std::string("connection failed: ") + e.what());
  }
  boost::system::error_code ignored;
  socket.close(ignored);
  w.deadlines.Remove(deadline);
  gate.Release(peer, SourceCap(peer));
  w.active.fetch_sub(1, std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------

namespace {

// A holder of a borrowed signer that never changes: the shared_ptr owns
// nothing (aliasing constructor), the caller keeps the signer alive.
std::unique_ptr<auth::SignerHolder> BorrowedHolder(const auth::RequestSigner* signer) {
  if (signer == nullptr) return nullptr;
  return std::make_unique<auth::SignerHolder>(
      std::shared_ptr<const auth::RequestSigner>(std::shared_ptr<void>(), signer));
}

}  // namespace

ProxyServer::ProxyServer(ProxyOptions options, const auth::SignerHolder& signer,
                         const auth::SignerHolder* chain_verifier,
                         common::MetricsRegistry& metrics)
    : impl_(std::make_unique<Impl>(std::move(options), nullptr, nullptr, signer, chain_verifier,
                                   metrics)) {}

ProxyServer::ProxyServer(ProxyOptions options, const auth::RequestSigner& signer,
                         const auth::RequestSigner* chain_verifier,
                         common::MetricsRegistry& metrics) {
  auto own_signer = BorrowedHolder(&signer);
  auto own_verifier = BorrowedHolder(chain_verifier);
  const auth::SignerHolder& s = *own_signer;
  const auth::SignerHolder* v = own_verifier.get();
  impl_ = std::make_unique<Impl>(std::move(options), std::move(own_signer),
                                 std::move(own_verifier), s, v, metrics);
}

ProxyServer::~ProxyServer() {
  Shutdown();
  std::lock_guard<std::mutex> lock(impl_->shutdown_mu);
  if (impl_->shutdown_thread && impl_->shutdown_thread->joinable()) impl_->shutdown_thread->join();
}

common::Status ProxyServer::Start() {
  Impl& im = *impl_;
  common::Status valid = im.options.Validate();
  if (!valid.ok()) return valid;
  if (!im.options.trusted_proxies.empty() && im.chain_verifier == nullptr) {
    return common::InvalidArgument("trusted proxies need keys to verify their signatures");
  }
  auto policy = HeaderPolicy::Create(im.options.forward_headers);
  if (!policy.ok()) return policy.status();
  im.policy.emplace(std::move(policy).value());

  std::vector<UpstreamEndpoint> endpoints;
  for (const auto& u : im.options.upstreams) {
    auto ep = ParseUpstream(u);
    if (!ep.ok()) return ep.status();
    endpoints.push_back(std::move(ep).value());
  }
  im.upstreams = std::make_unique<UpstreamSet>(std::move(endpoints), im.metrics);
  UpstreamSet* set = im.upstreams.get();
  im.metrics.AddGauge("proxy_upstreams_healthy", "Upstreams currently considered healthy.",
                      [set] { return static_cast<double>(set->healthy_count()); });
  im.metrics.AddGauge("proxy_open_connections", "Guest connections open now.",
                      [&im] { return static_cast<double>(im.gate.open()); });

  int n = im.options.threads;
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>();
    w->pool =
        std::make_unique<UpstreamPool>(w->ctx, w->deadlines, *im.upstreams, im.options.upstream);
    im.workers.push_back(std::move(w));
  }
  for (const auto& cfg : im.options.listeners) {
    auto ls = std::make_unique<ListenerState>();
    ls->config = cfg;
    auto ep = http::ParseTcpEndpoint(cfg.endpoint);
    if (!ep.ok()) return ep.status();
    ls->endpoint = *ep;
    const std::string network = cfg.network.empty() ? "(proxies)" : cfg.network;
    ls->requests = &im.metrics.GetCounter("proxy_requests_total", "Guest requests, by network.",
                                          "network=\"" + network + "\"");
    bool first = true;
    for (auto& w : im.workers) {
      common::Status s = im.Bind(*ls, *w, first);
      if (!s.ok()) return s;
      first = false;
    }
    im.listeners.push_back(std::move(ls));
  }
  for (auto& w : im.workers) {
    for (auto& [acc, ls] : w->acceptors) {
      asio::co_spawn(w->ctx, im.AcceptLoop(*acc, *ls, *w), asio::detached);
    }
    im.StartReaper(*w);
  }
  Worker& first = *im.workers.front();
  for (size_t i = 0; i < im.upstreams->size(); ++i) {
    asio::co_spawn(first.ctx, first.pool->HealthLoop(i), asio::detached);
  }
  im.started = true;
  return common::Status::Ok();
}

std::vector<std::string> ProxyServer::BoundEndpoints() const {
  std::vector<std::string> out;
  for (const auto& ls : impl_->listeners) {
    const auto& ep = ls->endpoint;
    if (ep.address().is_v6()) {
      out.push_back("[" + ep.address().to_string() + "]:" + std::to_string(ep.port()));
    } else {
      out.push_back(ep.address().to_string() + ":" + std::to_string(ep.port()));
    }
  }
  return out;
}

void ProxyServer::Run() {
  auto& workers = impl_->workers;
  for (size_t i = 1; i < workers.size(); ++i) {
    workers[i]->thread = std::thread([w = workers[i].get()] { w->ctx.run(); });
  }
  if (!workers.empty()) workers[0]->ctx.run();
  for (size_t i = 1; i < workers.size(); ++i) {
    if (workers[i]->thread.joinable()) workers[i]->thread.join();
  }
}

void ProxyServer::Shutdown() {
  Impl& im = *impl_;
  if (im.draining.exchange(true)) return;
  if (!im.started) return;
  std::vector<Worker*> workers;
  for (auto& w : im.workers) workers.push_back(w.get());
  // Phase 1: stop accepting and checking; idle connections close on the
  // next reaper tick; busy ones finish their request with Connection: close.
  for (Worker* w : workers) {
    asio::post(w->ctx, [w] {
      boost::system::error_code ignored;
      for (auto& a : w->acceptors) a.first->close(ignored);
      w->pool->Stop();
    });
  }
  // Phase 2 after the grace period, or as soon as every connection is gone.
  std::lock_guard<std::mutex> lock(im.shutdown_mu);
  im.shutdown_thread = std::make_unique<std::thread>([&im, workers] {
    const auto until = Clock::now() + im.options.shutdown_grace;
    for (;;) {
      int active = 0;
      for (Worker* w : workers) active += w->active.load();
      if (active == 0 || Clock::now() >= until) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    for (Worker* w : workers) {
      asio::post(w->ctx, [w] {
        w->deadlines.ExpireAll();
        if (w->reaper) w->reaper->cancel();
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (Worker* w : workers) w->ctx.stop();
  });
}

}  // namespace openimds::proxy
