#include "proxy/upstream_pool.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <charconv>

#include "common/log.h"

namespace openimds::proxy {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using generic_stream = asio::generic::stream_protocol;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
// Per read; a metadata response is usually one segment.
constexpr size_t kReadChunk = 16 * 1024;

}  // namespace

UpstreamConnection::UpstreamConnection(asio::io_context& ctx, Deadlines& deadlines,
                                       UpstreamPool& pool, size_t i, bool counted)
    : socket(ctx), index(i), deadlines_(deadlines), pool_(pool), counted_(counted) {
  if (counted_) ++pool_.open_[index];
  handle_ = deadlines_.Add([this](bool) {
    timed_out = true;
    boost::system::error_code ignored;
    socket.close(ignored);
  });
}

UpstreamConnection::~UpstreamConnection() {
  deadlines_.Remove(handle_);
  if (counted_) pool_.OnClosed(index);
}

void UpstreamConnection::Arm(Deadlines::Clock::time_point at) {
  timed_out = false;
  handle_->at = at;
  handle_->idle = false;
}

void UpstreamConnection::ArmIdle(Deadlines::Clock::time_point at) {
  handle_->at = at;
  handle_->idle = true;
}

// ---------------------------------------------------------------------------

common::Result<UpstreamEndpoint> ParseUpstream(std::string_view text) {
  UpstreamEndpoint out;
  out.text = std::string(text);
  if (text.rfind("unix:", 0) == 0) {
    std::string path(text.substr(5));
    if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path)) {
      return common::InvalidArgument("bad unix socket path in upstream '" + out.text + "'");
    }
    out.is_unix = true;
    out.endpoint = generic_stream::endpoint(asio::local::stream_protocol::endpoint(path));
    return out;
  }
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return common::InvalidArgument("bad upstream '" + out.text + "' (want [addr]:port)");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return common::InvalidArgument("bad upstream '" + out.text +
                                     "' (want addr:port or unix:/path)");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned p = 0;
  auto r = std::from_chars(port.data(), port.data() + port.size(), p);
  if (r.ec != std::errc() || r.ptr != port.data() + port.size() || p == 0 || p > 65535) {
    return common::InvalidArgument("bad port in upstream '" + out.text + "'");
  }
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(std::string(host), ec);
  if (ec) {
    return common::InvalidArgument("bad address in upstream '" + out.text +
                                   "' (an IP address; names are not resolved)");
  }
  out.endpoint =
      generic_stream::endpoint(asio::ip::tcp::endpoint(addr, static_cast<unsigned short>(p)));
  return out;
}

// ---------------------------------------------------------------------------

UpstreamSet::UpstreamSet(std::vector<UpstreamEndpoint> endpoints,
                         common::MetricsRegistry& metrics) {
  for (auto& ep : endpoints) {
    auto s = std::make_unique<State>();
    const std::string label = "upstream=\"" + ep.text + "\"";
    s->down = &metrics.GetCounter("proxy_upstream_down_total", "Times an upstream was marked down.",
                                  label);
    const char* kErr = "proxy_upstream_errors_total";
    const char* kErrHelp = "Failed exchanges with an upstream, by reason.";
    const char* reasons[] = {"connect", "reset", "timeout", "bad_response", "too_large"};
    for (int i = 0; i < 5; ++i) {
      s->errors[i] = &metrics.GetCounter(kErr, kErrHelp, label + ",reason=\"" + reasons[i] + "\"");
    }
    s->endpoint = std::move(ep);
    upstreams_.push_back(std::move(s));
  }
}

size_t UpstreamSet::healthy_count() const {
  size_t n = 0;
  for (const auto& u : upstreams_) n += u->healthy.load(std::memory_order_relaxed) ? 1 : 0;
  return n;
}

void UpstreamSet::MarkDown(size_t i, std::string_view why) {
  if (upstreams_[i]->healthy.exchange(false)) {
    upstreams_[i]->down->Inc();
    common::LogWarn(
        "proxy", "upstream " + upstreams_[i]->endpoint.text + " marked down: " + std::string(why));
  }
}

void UpstreamSet::MarkUp(size_t i) {
  if (!upstreams_[i]->healthy.exchange(true)) {
    common::LogInfo("proxy", "upstream " + upstreams_[i]->endpoint.text + " is up");
  }
}

void UpstreamSet::CountError(size_t i, Error e) {
  upstreams_[i]->errors[static_cast<int>(e)]->Inc();
}

// ---------------------------------------------------------------------------

UpstreamPool::UpstreamPool(asio::io_context& ctx, Deadlines& deadlines, UpstreamSet& upstreams,
                           const UpstreamOptions& options)
    : ctx_(ctx), deadlines_(deadlines), upstreams_(upstreams), options_(options) {
  idle_.resize(upstreams_.size());
  open_.resize(upstreams_.size());
  waiters_.resize(upstreams_.size());
  health_timers_.resize(upstreams_.size());
}

void UpstreamPool::OnClosed(size_t index) {
  --open_[index];
  if (stopped_ || waiters_[index].empty()) return;
  Waiter* w = waiters_[index].front();
  waiters_[index].pop_front();
  w->slot = true;
  w->timer.cancel();
}

UpstreamPool::~UpstreamPool() = default;

const ParsedMessage& UpstreamPool::Lease::response() const { return conn->response; }

int UpstreamPool::Pick(uint64_t tried) {
  const size_t n = upstreams_.size();
  for (size_t k = 0; k < n; ++k) {
    size_t i = (next_ + k) % n;
    if ((tried & (uint64_t{1} << i)) == 0 && upstreams_.healthy(i)) {
      next_ = i + 1;
      return static_cast<int>(i);
    }
  }
  return -1;
}

std::unique_ptr<UpstreamConnection> UpstreamPool::TakeIdle(size_t index) {
  auto& list = idle_[index];
  while (!list.empty()) {
    std::unique_ptr<UpstreamConnection> c = std::move(list.back());
    list.pop_back();
    // Closed by its idle deadline. One the server closed meanwhile is not
    // probed here (a syscall per request): RoundTrip sees the EOF before any
    // response byte and Forward retries on another connection.
    if (c->socket.is_open()) return c;
  }
  return nullptr;
}

asio::awaitable<std::unique_ptr<UpstreamConnection>> UpstreamPool::Connect(
    size_t index, Clock::time_point deadline, std::string& why, bool counted) {
  auto c = std::make_unique<UpstreamConnection>(ctx_, deadlines_, *this, index, counted);
  c->Arm(std::min(deadline, Clock::now() + options_.connect_timeout));
  auto [ec] = co_await c->socket.async_connect(upstreams_.endpoint(index).endpoint, kTuple);
  if (ec) {
    why = "connect to " + upstreams_.endpoint(index).text + ": " +
          (c->timed_out ? std::string("timed out") : ec.message());
    co_return nullptr;
  }
  if (!upstreams_.endpoint(index).is_unix) {
    int one = 1;
    ::setsockopt(c->socket.native_handle(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  co_return c;
}

asio::awaitable<UpstreamPool::Io> UpstreamPool::RoundTrip(UpstreamConnection& c,
                                                          std::string_view request, bool head,
                                                          Clock::time_point deadline,
                                                          std::string& why) {
  c.Arm(deadline);
  c.reusable = false;
  c.response.Clear();
  c.buffer.clear();
  const bool reused = c.uses > 0;
  const std::string& name = upstreams_.endpoint(c.index).text;

  auto [wec, wn] =
      co_await asio::async_write(c.socket, asio::buffer(request.data(), request.size()), kTuple);
  if (wec) {
    why = "send to " + name + ": " + (c.timed_out ? std::string("timed out") : wec.message());
    co_return c.timed_out ? Io::kTimeout : reused ? Io::kStale : Io::kFailed;
  }

  ResponseParser parser(c.response);
  parser.eager(true);
  parser.header_limit(static_cast<uint32_t>(options_.max_response_header_bytes));
  parser.body_limit(options_.max_response_body_bytes);
  if (head) parser.skip(true);
  bool got_bytes = false;
  bool eof = false;
  while (!parser.is_done()) {
    if (c.buffer.size() > 0) {
      boost::system::error_code perr;
      size_t n = parser.put(c.buffer.data(), perr);
      c.buffer.consume(n);
      if (perr == bhttp::error::need_more) {
        perr = {};
      } else if (perr) {
        why = "response from " + name + ": " + perr.message();
        co_return Io::kBad;
      }
      if (parser.is_done()) break;
      if (n > 0 && c.buffer.size() > 0) continue;
    }
    auto [rec, rn] = co_await c.socket.async_read_some(c.buffer.prepare(kReadChunk), kTuple);
    if (rec) {
      if (rec == asio::error::eof && parser.is_header_done()) {
        // A response delimited by the end of the connection.
        boost::system::error_code perr;
        parser.put_eof(perr);
        if (!perr) {
          eof = true;
          break;
        }
      }
      if (c.timed_out) {
        why = "no response from " + name + " in time";
        co_return Io::kTimeout;
      }
      why = "read from " + name + ": " + rec.message();
      co_return (!got_bytes && reused) ? Io::kStale : Io::kFailed;
    }
    c.buffer.commit(rn);
    got_bytes = true;
  }
  ++c.uses;
  c.reusable = !eof && parser.keep_alive() && c.buffer.size() == 0;
  co_return Io::kOk;
}

asio::awaitable<UpstreamPool::Lease> UpstreamPool::Forward(const Exchange& ex) {
  Lease lease;
  lease.failure = Failure::kUnavailable;
  lease.detail = "no healthy upstream";
  uint64_t tried = 0;
  int attempts = 0;
  const size_t n = upstreams_.size();
  while (attempts < options_.max_attempts) {
    const auto now = Clock::now();
    if (now >= ex.deadline) {
      lease.failure = Failure::kTimeout;
      lease.detail = "no time left for another upstream";
      break;
    }
    int picked = Pick(tried);
    if (picked < 0) break;
    const size_t i = static_cast<size_t>(picked);
    tried |= uint64_t{1} << i;
    ++attempts;
    // Leave time for the attempts that may follow: each gets an equal share
    // of what remains.
    int healthy_left = 0;
    for (size_t k = 0; k < n; ++k) {
      if ((tried & (uint64_t{1} << k)) == 0 && upstreams_.healthy(k)) ++healthy_left;
    }
    const int later = std::min(options_.max_attempts - attempts, healthy_left);
    const auto attempt_deadline = now + (ex.deadline - now) / (later + 1);

    for (;;) {
      std::unique_ptr<UpstreamConnection> c = TakeIdle(i);
      if (!c && open_[i] >= options_.max_connections_per_upstream) {
        // Wait for a connection to come back, or for room to open one.
        Waiter w(ctx_);
        w.timer.expires_at(attempt_deadline);
        waiters_[i].push_back(&w);
        co_await w.timer.async_wait(kTuple);
        std::erase(waiters_[i], &w);  // still queued if the deadline came first
        if (w.handed) {
          c = std::move(w.handed);
        } else if (!w.slot || stopped_) {
          lease.failure = Failure::kBusy;
          lease.detail = "all " + std::to_string(options_.max_connections_per_upstream) +
                         " connections to " + upstreams_.endpoint(i).text + " stayed busy";
          co_return lease;
        }
      }
      const bool reused = c != nullptr && c->uses > 0;
      std::string why;
      if (!c) {
        c = co_await Connect(i, attempt_deadline, why);
        if (!c) {
          upstreams_.CountError(i, UpstreamSet::Error::kConnect);
          upstreams_.MarkDown(i, why);
          lease.failure = Failure::kUnavailable;
          lease.detail = why;
          break;  // next upstream
        }
      }
      Io io = co_await RoundTrip(*c, ex.request, ex.head, attempt_deadline, why);
      if (io == Io::kOk) {
        lease.conn = std::move(c);
        lease.failure = Failure::kNone;
        lease.detail.clear();
        co_return lease;
      }
      if (io == Io::kStale && reused) continue;  // the server closed an idle connection
      lease.detail = why;
      if (io == Io::kBad) {
        upstreams_.CountError(i, why.find("limit") != std::string::npos
                                     ? UpstreamSet::Error::kTooLarge
                                     : UpstreamSet::Error::kBadResponse);
        lease.failure = Failure::kBadResponse;
        co_return lease;
      }
      if (io == Io::kTimeout) {
        upstreams_.CountError(i, UpstreamSet::Error::kTimeout);
        lease.failure = Failure::kTimeout;
      } else {
        upstreams_.CountError(i, UpstreamSet::Error::kReset);
        lease.failure = Failure::kUnavailable;
      }
      upstreams_.MarkDown(i, why);
      // The request may have reached the server: repeat only what is safe.
      if (!ex.retryable) co_return lease;
      break;
    }
  }
  co_return lease;
}

void UpstreamPool::Release(Lease lease) {
  if (!lease.conn) return;
  UpstreamConnection* c = lease.conn.get();
  auto& list = idle_[c->index];
  if (!c->reusable || stopped_ || !c->socket.is_open()) {
    return;  // closed by the destructor, which makes room for a waiter
  }
  if (!waiters_[c->index].empty()) {
    // Straight to the oldest waiting request, still kept alive.
    Waiter* w = waiters_[c->index].front();
    waiters_[c->index].pop_front();
    w->handed = std::move(lease.conn);
    w->timer.cancel();
    return;
  }
  if (list.size() >= options_.max_idle_per_upstream) return;
  c->ArmIdle(Clock::now() + options_.pool_idle_timeout);
  list.push_back(std::move(lease.conn));
}

asio::awaitable<void> UpstreamPool::HealthLoop(size_t index) {
  health_timers_[index] = std::make_unique<asio::steady_timer>(ctx_);
  asio::steady_timer& timer = *health_timers_[index];
  std::string probe = "GET " + options_.health_path +
                      " HTTP/1.1\r\nHost: openimds-health-check\r\n"
                      "User-Agent: openimds-proxy\r\nConnection: close\r\n\r\n";
  while (!stopped_) {
    std::string why;
    const auto deadline = Clock::now() + options_.health_timeout;
    auto c = co_await Connect(index, deadline, why, /*counted=*/false);
    bool ok = false;
    if (c) {
      Io io = co_await RoundTrip(*c, probe, /*head=*/false, deadline, why);
      if (io == Io::kOk && c->response.status < 500) {
        ok = true;
      } else if (io == Io::kOk) {
        why = "health check answered " + std::to_string(c->response.status);
      }
    }
    if (stopped_) break;
    if (ok) {
      upstreams_.MarkUp(index);
    } else {
      upstreams_.MarkDown(index, why);
    }
    timer.expires_after(options_.health_interval);
    auto [ec] = co_await timer.async_wait(kTuple);
    if (ec) break;
  }
}

void UpstreamPool::Stop() {
  stopped_ = true;
  for (auto& q : waiters_) q.clear();
  for (auto& t : health_timers_) {
    if (t) t->cancel();
  }
  for (auto& list : idle_) list.clear();
}

}  // namespace openimds::proxy
