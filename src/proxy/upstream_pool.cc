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
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
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
  pipes_.resize(upstreams_.size());
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

// Parses one response from `c` (bytes already buffered first, then reads)
// into `out`. A read error is kTimeout when the connection's deadline closed
// it, kStale when `stale_if_silent` and no byte arrived in this call, else
// kFailed; a malformed or oversized response is kBad. `abandoned`, if set,
// is checked after every read: once true the caller's entry is gone, so
// nothing more is parsed into `out`.
asio::awaitable<UpstreamPool::Io> UpstreamPool::ReadResponse(UpstreamConnection& c,
                                                             ParsedMessage& out, bool head,
                                                             bool stale_if_silent,
                                                             const bool* abandoned,
                                                             std::string& why, ResponseEnd& end) {
  const std::string& name = upstreams_.endpoint(c.index).text;
  ResponseParser parser(out);
  parser.eager(true);
  parser.header_limit(static_cast<uint32_t>(options_.max_response_header_bytes));
  parser.body_limit(options_.max_response_body_bytes);
  if (head) parser.skip(true);
  bool got_bytes = false;
  end = ResponseEnd{};
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
    if (abandoned != nullptr && *abandoned) co_return Io::kFailed;
    if (rec) {
      if (rec == asio::error::eof && parser.is_header_done()) {
        // A response delimited by the end of the connection.
        boost::system::error_code perr;
        parser.put_eof(perr);
        if (!perr) {
          end.eof = true;
          break;
        }
      }
      if (c.timed_out) {
        why = "no response from " + name + " in time";
        co_return Io::kTimeout;
      }
      why = "read from " + name + ": " + rec.message();
      co_return (!got_bytes && stale_if_silent) ? Io::kStale : Io::kFailed;
    }
    c.buffer.commit(rn);
    got_bytes = true;
  }
  end.keep_alive = parser.keep_alive();
  co_return Io::kOk;
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

  ResponseEnd end;
  const Io io = co_await ReadResponse(c, c.response, head, /*stale_if_silent=*/reused,
                                      /*abandoned=*/nullptr, why, end);
  if (io != Io::kOk) co_return io;
  ++c.uses;
  c.reusable = !end.eof && end.keep_alive && c.buffer.size() == 0;
  co_return Io::kOk;
}

asio::awaitable<UpstreamPool::Lease> UpstreamPool::Forward(const Exchange& ex) {
  if (ex.response_out != nullptr && ex.wait_timer != nullptr && ex.retryable &&
      options_.pipeline_depth > 1) {
    co_return co_await ForwardPipelined(ex);
  }
  co_return co_await ForwardExclusive(ex);
}

std::unique_ptr<UpstreamConnection> UpstreamPool::TakeIdlePipe(size_t index) {
  auto& list = pipes_[index];
  for (auto it = list.begin(); it != list.end(); ++it) {
    Pipe& p = **it;
    if (p.broken || p.connecting || p.reading || p.writing || p.flush_posted ||
        !p.inflight.empty() || !p.conn->socket.is_open()) {
      continue;
    }
    std::unique_ptr<UpstreamConnection> c = std::move(p.conn);
    p.broken = true;
    list.erase(it);
    return c;
  }
  return nullptr;
}

std::optional<UpstreamPool::Attempt> UpstreamPool::NextAttempt(const Exchange& ex,
                                                               uint64_t& tried, int& attempts,
                                                               Lease& lease) {
  const auto now = Clock::now();
  if (now >= ex.deadline) {
    lease.failure = Failure::kTimeout;
    lease.detail = "no time left for another upstream";
    return std::nullopt;
  }
  const int picked = Pick(tried);
  if (picked < 0) return std::nullopt;
  const size_t i = static_cast<size_t>(picked);
  tried |= uint64_t{1} << i;
  ++attempts;
  // Leave time for the attempts that may follow: each gets an equal share of
  // what remains.
  int healthy_left = 0;
  for (size_t k = 0; k < upstreams_.size(); ++k) {
    if ((tried & (uint64_t{1} << k)) == 0 && upstreams_.healthy(k)) ++healthy_left;
  }
  const int later = std::min(options_.max_attempts - attempts, healthy_left);
  return Attempt{i, now + (ex.deadline - now) / (later + 1)};
}

// Counts a failed attempt on upstream `i` and says what the caller gets. A
// malformed or oversized response is the response's fault, not the
// upstream's health; everything else marks the upstream down.
UpstreamPool::Failure UpstreamPool::RecordFailure(size_t i, Io io, const std::string& why) {
  if (io == Io::kBad) {
    upstreams_.CountError(i, why.find("limit") != std::string::npos
                                 ? UpstreamSet::Error::kTooLarge
                                 : UpstreamSet::Error::kBadResponse);
    return Failure::kBadResponse;
  }
  upstreams_.CountError(i, io == Io::kConnect   ? UpstreamSet::Error::kConnect
                           : io == Io::kTimeout ? UpstreamSet::Error::kTimeout
                                                : UpstreamSet::Error::kReset);
  upstreams_.MarkDown(i, why);
  return io == Io::kTimeout ? Failure::kTimeout : Failure::kUnavailable;
}

asio::awaitable<UpstreamPool::Lease> UpstreamPool::ForwardExclusive(const Exchange& ex) {
  Lease lease;
  lease.failure = Failure::kUnavailable;
  lease.detail = "no healthy upstream";
  uint64_t tried = 0;
  int attempts = 0;
  while (attempts < options_.max_attempts) {
    const auto next = NextAttempt(ex, tried, attempts, lease);
    if (!next) break;
    const size_t i = next->upstream;
    const auto attempt_deadline = next->deadline;

    for (;;) {
      std::unique_ptr<UpstreamConnection> c = TakeIdle(i);
      if (!c) c = TakeIdlePipe(i);
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
          lease.failure = RecordFailure(i, Io::kConnect, why);
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
      lease.failure = RecordFailure(i, io, why);
      if (lease.failure == Failure::kBadResponse) co_return lease;
      // The request may have reached the server: repeat only what is safe.
      if (!ex.retryable) co_return lease;
      break;
    }
  }
  co_return lease;
}

// ---------------------------------------------------------------------------
// Pipelining. A batch forms while one event-loop turn runs the guests'
// sessions: each appends its request to the chosen connection's `pending`
// and the first posts the flush, which runs after the rest of the turn's
// completions, so the whole batch leaves in one write. One reader per busy
// connection parses the responses in order into each caller's storage.

std::shared_ptr<UpstreamPool::Pipe> UpstreamPool::PickPipe(size_t index, bool* may_open) {
  *may_open = false;
  auto& list = pipes_[index];
  std::erase_if(list, [](const std::shared_ptr<Pipe>& p) {
    return p->broken || (!p->connecting && !p->conn->socket.is_open());
  });
  // A batch still forming in this turn, with room: the point of pipelining.
  for (auto& p : list) {
    if (p->flush_posted && p->inflight.size() < options_.pipeline_depth) return p;
  }
  // A connection being opened in this turn, with room.
  for (auto& p : list) {
    if (p->connecting && p->inflight.size() < options_.pipeline_depth) return p;
  }
  // An idle connection: nothing in flight that a new request could wait on.
  for (auto& p : list) {
    if (p->inflight.empty()) return p;
  }
  *may_open = open_[index] < options_.max_connections_per_upstream;
  if (*may_open) return nullptr;  // open one
  // At the connection cap: the shortest queue (null if every connection is
  // held by exclusive exchanges).
  std::shared_ptr<Pipe> best;
  for (auto& p : list) {
    if (!p->connecting && (!best || p->inflight.size() < best->inflight.size())) best = p;
  }
  return best;
}

void UpstreamPool::PipeFail(Pipe& p, Io first, Io rest, const std::string& why) {
  p.broken = true;
  boost::system::error_code ignored;
  if (p.conn) p.conn->socket.close(ignored);
  bool is_first = true;
  for (PipeEntry* e : p.inflight) {
    e->done = true;
    e->io = is_first ? first : rest;
    e->why = why;
    e->ex->wait_timer->cancel();
    is_first = false;
  }
  p.inflight.clear();
  p.pending.clear();
}

void UpstreamPool::PipeFlush(const std::shared_ptr<Pipe>& p) {
  if (p->writing || p->broken || p->connecting || p->pending.empty()) return;
  p->writing = true;
  p->sending.swap(p->pending);
  p->pending.clear();
  asio::async_write(p->conn->socket, asio::buffer(p->sending),
                    [this, p](boost::system::error_code ec, size_t) {
                      p->writing = false;
                      p->sending.clear();
                      if (p->broken) return;
                      if (ec) {
                        const Io io = p->conn->timed_out ? Io::kTimeout
                                      : p->reused        ? Io::kStale
                                                         : Io::kFailed;
                        PipeFail(*p, io, io == Io::kTimeout ? Io::kTimeout : Io::kStale,
                                 "send to " + upstreams_.endpoint(p->conn->index).text + ": " +
                                     ec.message());
                        return;
                      }
                      PipeFlush(p);  // what was appended while this write ran
                    });
}

asio::awaitable<void> UpstreamPool::PipeReader(std::shared_ptr<Pipe> p) {
  UpstreamConnection& c = *p->conn;
  try {
    while (!p->inflight.empty() && !p->broken) {
      PipeEntry* e = p->inflight.front();
      ParsedMessage& out = *e->ex->response_out;
      out.Clear();
      std::string why;
      ResponseEnd end;
      // Closed before any byte since it went idle: the server had dropped
      // the kept-alive connection; not the upstream's fault.
      const Io io = co_await ReadResponse(c, out, e->ex->head,
                                          p->reused && !p->answered_since_idle, &p->broken, why,
                                          end);
      if (p->broken) co_return;  // failed meanwhile (deadline, Stop): entries are ended
      if (io != Io::kOk) {
        PipeFail(*p, io, io == Io::kTimeout ? Io::kTimeout : Io::kStale, why);
        co_return;
      }
      p->answered_since_idle = true;
      ++c.uses;
      p->inflight.pop_front();
      e->done = true;
      e->io = Io::kOk;
      e->ex->wait_timer->cancel();
      if (end.eof || !end.keep_alive) {
        // The server ends the connection here: what follows was not
        // answered and is safe to send again (GET/HEAD only pipeline).
        PipeFail(*p, Io::kStale, Io::kStale, "the server closed a pipelined connection");
        co_return;
      }
    }
  } catch (const std::exception& ex) {
    PipeFail(*p, Io::kFailed, Io::kStale, std::string("pipeline reader: ") + ex.what());
    co_return;
  }
  p->reading = false;
  if (!p->broken && p->inflight.empty()) {
    p->reused = true;
    p->answered_since_idle = false;
    p->latest = {};
    if (!waiters_[c.index].empty() && !p->writing && !p->flush_posted && !stopped_) {
      // An exclusive exchange waits for a connection: this one is free.
      const size_t index = c.index;
      Waiter* w = waiters_[index].front();
      waiters_[index].pop_front();
      w->handed = std::move(p->conn);
      p->broken = true;
      std::erase(pipes_[index], p);
      w->timer.cancel();
      co_return;
    }
    c.ArmIdle(Clock::now() + options_.pool_idle_timeout);
  }
}

asio::awaitable<UpstreamPool::Io> UpstreamPool::PipelinedRoundTrip(size_t index,
                                                                   const Exchange& ex,
                                                                   Clock::time_point deadline,
                                                                   std::string& why) {
  bool may_open = false;
  std::shared_ptr<Pipe> p = PickPipe(index, &may_open);
  if (!p && !may_open) co_return Io::kNoPipe;
  PipeEntry entry;
  entry.ex = &ex;
  const auto start = [this](const std::shared_ptr<Pipe>& pipe) {
    if (!pipe->flush_posted) {
      pipe->flush_posted = true;
      asio::post(ctx_, [this, pipe] {
        pipe->flush_posted = false;
        PipeFlush(pipe);
      });
    }
    if (!pipe->reading) {
      pipe->reading = true;
      asio::co_spawn(ctx_, PipeReader(pipe), asio::detached);
    }
  };
  if (!p) {
    // Open one; requests of this turn that find it connecting queue on it
    // (so the connection cap holds) and leave once it is up.
    p = std::make_shared<Pipe>();
    p->connecting = true;
    pipes_[index].push_back(p);
    p->pending.append(ex.request);
    p->inflight.push_back(&entry);
    p->latest = deadline;
    auto c = co_await Connect(index, deadline, why);
    p->connecting = false;
    if (!c) {
      PipeFail(*p, Io::kConnect, Io::kConnect, why);
      co_return Io::kConnect;
    }
    p->conn = std::move(c);
    if (p->broken) {  // Stop() meanwhile
      why = entry.why;
      co_return entry.io;
    }
    p->conn->Arm(p->latest);
    start(p);
  } else {
    if (p->inflight.empty()) p->reused = p->conn->uses > 0;
    p->pending.append(ex.request);
    p->inflight.push_back(&entry);
    p->latest = std::max(p->latest, deadline);
    if (!p->connecting) {
      p->conn->Arm(p->latest);
      start(p);
    }
  }
  ex.wait_timer->expires_at(deadline);
  while (!entry.done) {
    co_await ex.wait_timer->async_wait(kTuple);  // cancelled when the entry ends
    if (entry.done) break;
    if (Clock::now() >= deadline || stopped_) {
      // This caller's deadline: the responses queued behind it cannot be
      // told apart any more, so the connection goes (they retry).
      PipeFail(*p, Io::kTimeout, Io::kStale,
               "no response from " + upstreams_.endpoint(index).text + " in time");
      break;
    }
  }
  why = std::move(entry.why);
  co_return entry.io;
}

asio::awaitable<UpstreamPool::Lease> UpstreamPool::ForwardPipelined(const Exchange& ex) {
  Lease lease;
  lease.failure = Failure::kUnavailable;
  lease.detail = "no healthy upstream";
  uint64_t tried = 0;
  int attempts = 0;
  int stale_retries = 0;
  while (attempts < options_.max_attempts && !stopped_) {
    const auto next = NextAttempt(ex, tried, attempts, lease);
    if (!next) break;
    const size_t i = next->upstream;
    const auto attempt_deadline = next->deadline;
    for (;;) {
      std::string why;
      Io io = co_await PipelinedRoundTrip(i, ex, attempt_deadline, why);
      if (io == Io::kNoPipe) {
        // Exclusive exchanges hold every allowed connection: wait for one
        // the way they do.
        co_return co_await ForwardExclusive(ex);
      }
      if (io == Io::kOk) {
        lease.pipelined = ex.response_out;
        lease.failure = Failure::kNone;
        lease.detail.clear();
        co_return lease;
      }
      lease.detail = why;
      // A dropped kept-alive connection, or a request queued behind another
      // one that ended the connection: send it again on this upstream. Each
      // round answers or fails the head of a batch, so a batch of N needs
      // at most N rounds; the deadline bounds it too.
      if (io == Io::kStale && ++stale_retries <= static_cast<int>(options_.pipeline_depth) + 2 &&
          Clock::now() < attempt_deadline) {
        continue;
      }
      lease.failure = RecordFailure(i, io, why);
      if (lease.failure == Failure::kBadResponse) co_return lease;
      break;  // next upstream (GET/HEAD are retryable)
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
  for (auto& list : pipes_) {
    for (auto& p : list) PipeFail(*p, Io::kFailed, Io::kFailed, "the proxy is stopping");
    list.clear();
  }
  for (auto& q : waiters_) q.clear();
  for (auto& t : health_timers_) {
    if (t) t->cancel();
  }
  for (auto& list : idle_) list.clear();
}

}  // namespace openimds::proxy
