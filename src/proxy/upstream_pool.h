#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/metrics.h"
#include "common/result.h"
#include "proxy/deadlines.h"
#include "proxy/wire.h"

namespace openimds::proxy {

// How the proxy talks to its servers. Every field has a safe default.
struct UpstreamOptions {
  // A TCP connect (or unix-socket connect) that takes longer counts as a
  // failed attempt; the upstream is marked down and the next one is tried.
  std::chrono::milliseconds connect_timeout{300};
  // Servers tried for one request (distinct upstreams, in round-robin order).
  int max_attempts = 2;
  // Upstream response limits (502 beyond). User-data is at most 64 KiB; the
  // largest metadata documents are far below 1 MiB.
  size_t max_response_header_bytes = 16 * 1024;
  size_t max_response_body_bytes = 1024 * 1024;
  // Idle keep-alive connections kept per upstream per I/O thread, and how
  // long one may sit idle. The idle time stays below the server's own idle
  // timeout (60 s) so the proxy, not the server, closes idle connections.
  size_t max_idle_per_upstream = 64;
  // Connections (busy and idle) per upstream per I/O thread. Requests beyond
  // wait for one to come free, within their deadline: a boot storm of
  // thousands of guests becomes a bounded number of server connections.
  size_t max_connections_per_upstream = 128;
  std::chrono::milliseconds pool_idle_timeout{30'000};
  // GET and HEAD requests that guests send in the same event-loop turn are
  // pipelined on one upstream connection, up to this many in flight on it,
  // and leave in one write; the server answers a pipelined batch in one
  // write too. That halves the syscalls per request on both hops under
  // load (bench/proxy_bench.sh). Other methods never pipeline (RFC 9112
  // §9.3.2). 1 turns pipelining off.
  size_t pipeline_depth = 16;
  // Health checks: every `health_interval`, each upstream gets
  // "GET health_path" on a new connection; a response with a status below
  // 500 within `health_timeout` marks it up, anything else down.
  std::chrono::milliseconds health_interval{1'000};
  std::chrono::milliseconds health_timeout{500};
  std::string health_path = "/healthz";
};

// An upstream address: "10.0.0.2:8775", "[fd00::2]:8775" or
// "unix:/run/openimds/proxy.sock".
struct UpstreamEndpoint {
  std::string text;
  bool is_unix = false;
  boost::asio::generic::stream_protocol::endpoint endpoint;
};
common::Result<UpstreamEndpoint> ParseUpstream(std::string_view text);

// The upstreams and their health, shared by every I/O thread. Health flags
// are atomics: any thread may mark an upstream down (a failed connect on the
// request path) and the health checker marks it up again.
class UpstreamSet {
 public:
  UpstreamSet(std::vector<UpstreamEndpoint> endpoints, common::MetricsRegistry& metrics);

  size_t size() const { return upstreams_.size(); }
  const UpstreamEndpoint& endpoint(size_t i) const { return upstreams_[i]->endpoint; }
  bool healthy(size_t i) const { return upstreams_[i]->healthy.load(std::memory_order_relaxed); }
  size_t healthy_count() const;
  // Transitions log one line and count; repeated marks are silent.
  void MarkDown(size_t i, std::string_view why);
  void MarkUp(size_t i);

  enum class Error { kConnect, kReset, kTimeout, kBadResponse, kTooLarge };
  void CountError(size_t i, Error e);

 private:
  struct State {
    UpstreamEndpoint endpoint;
    std::atomic<bool> healthy{true};
    common::Counter* down = nullptr;
    common::Counter* errors[5] = {};
  };
  std::vector<std::unique_ptr<State>> upstreams_;  // fixed after construction
};

// One connection to one upstream, with its read buffer and the storage its
// responses are parsed into (capacity reused while kept alive). Registered
// in its thread's Deadlines for its whole life.
class UpstreamPool;

class UpstreamConnection {
 public:
  // `counted`: towards max_connections_per_upstream (health probes are not).
  UpstreamConnection(boost::asio::io_context& ctx, Deadlines& deadlines, UpstreamPool& pool,
                     size_t index, bool counted);
  ~UpstreamConnection();
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  void Arm(Deadlines::Clock::time_point at);      // in use until `at`
  void ArmIdle(Deadlines::Clock::time_point at);  // pooled until `at`

  boost::asio::generic::stream_protocol::socket socket;
  boost::beast::flat_buffer buffer;
  ParsedMessage response;
  size_t index;
  bool timed_out = false;  // closed by its deadline
  bool reusable = false;   // the last response left the connection usable
  uint32_t uses = 0;       // completed exchanges

 private:
  Deadlines& deadlines_;
  UpstreamPool& pool_;
  bool counted_;
  Deadlines::Handle handle_;
};

// One I/O thread's connections to the upstreams: keep-alive reuse, bounded
// idle lists, round-robin over healthy upstreams with failover. Not
// thread-safe: used only on the io_context it was built with.
class UpstreamPool {
 public:
  using Clock = Deadlines::Clock;

  UpstreamPool(boost::asio::io_context& ctx, Deadlines& deadlines, UpstreamSet& upstreams,
               const UpstreamOptions& options);
  ~UpstreamPool();

  // One request to forward. `request` is the complete serialized request.
  struct Exchange {
    std::string_view request;
    bool head = false;       // response has no body whatever its headers say
    bool retryable = false;  // safe to send to another upstream after a failure
    Clock::time_point deadline;
    // Pipelining (GET/HEAD with retryable set): where the response is parsed
    // and a timer of the caller's executor to wait on; both owned by the
    // caller and reused across its requests. Null: one exchange per
    // connection at a time.
    ParsedMessage* response_out = nullptr;
    boost::asio::steady_timer* wait_timer = nullptr;
  };
  enum class Failure {
    kNone,
    kUnavailable,  // no healthy upstream, or none could be reached
    kTimeout,      // the deadline passed before a response
    kBusy,         // every allowed connection stayed busy until the deadline
    kBadResponse,  // malformed or oversized response
  };
  // The response of a successful exchange, on the connection that carried it.
  // Give it back with Release() once the response has been used.
  struct Lease {
    std::unique_ptr<UpstreamConnection> conn;  // null for a pipelined exchange
    const ParsedMessage* pipelined = nullptr;  // its response (Exchange::response_out)
    Failure failure = Failure::kNone;
    std::string detail;  // why, for the log line (no secrets)
    const ParsedMessage& response() const { return pipelined ? *pipelined : conn->response; }
    bool ok() const { return failure == Failure::kNone; }
  };

  // Sends the request and reads the response, trying up to max_attempts
  // healthy upstreams. A reused keep-alive connection that turns out closed
  // before any byte of the response is replaced transparently (that is not
  // the upstream's fault). Never throws.
  boost::asio::awaitable<Lease> Forward(const Exchange& exchange);

  // Returns the connection to the idle list if the response allows reuse.
  void Release(Lease lease);

  // Health-checks upstream `index` forever (until Stop()).
  boost::asio::awaitable<void> HealthLoop(size_t index);

  // Closes every idle connection, stops health loops, forgets waiters. The
  // owner calls it before destroying the io_context.
  void Stop();

 private:
  friend class UpstreamConnection;
  struct Waiter {
    explicit Waiter(boost::asio::io_context& ctx) : timer(ctx) {}
    boost::asio::steady_timer timer;
    std::unique_ptr<UpstreamConnection> handed;  // a kept-alive connection passed on
    bool slot = false;                           // or room to open a new one
  };
  void OnClosed(size_t index);  // a connection to `index` was destroyed

  enum class Io { kOk, kStale, kFailed, kTimeout, kBad, kConnect, kNoPipe };

  // Pipelined exchanges on one connection (Options::pipeline_depth). The
  // entries live in their callers' coroutine frames; every path that ends an
  // entry (response, failure, deadline, Stop) removes it from `inflight`
  // and cancels its caller's timer, so no pointer outlives its frame.
  struct PipeEntry {
    const Exchange* ex = nullptr;
    bool done = false;
    Io io = Io::kOk;
    std::string why;
  };
  struct Pipe {
    std::unique_ptr<UpstreamConnection> conn;
    std::deque<PipeEntry*> inflight;  // in request order
    std::string pending;              // requests of this turn, not yet written
    std::string sending;              // the write in progress
    Clock::time_point latest{};       // latest deadline in flight
    bool answered_since_idle = false; // a response arrived since it was last idle
    bool reused = false;              // carried exchanges before this batch
    bool connecting = false;          // conn is null until the connect completes
    bool flush_posted = false;
    bool writing = false;
    bool reading = false;
    bool broken = false;
  };
  std::shared_ptr<Pipe> PickPipe(size_t index, bool* may_open);
  boost::asio::awaitable<Io> PipelinedRoundTrip(size_t index, const Exchange& ex,
                                                Clock::time_point deadline, std::string& why);
  void PipeFlush(const std::shared_ptr<Pipe>& pipe);
  boost::asio::awaitable<void> PipeReader(std::shared_ptr<Pipe> pipe);
  // Ends every entry in flight: the first with `first`, the rest with
  // `rest` (GETs behind a failed one are safe to retry), and closes it.
  void PipeFail(Pipe& pipe, Io first, Io rest, const std::string& why);
  boost::asio::awaitable<Lease> ForwardPipelined(const Exchange& exchange);
  // One exchange per connection (the original path; other methods, and
  // pipelined requests when the connection cap is held by exclusive ones).
  boost::asio::awaitable<Lease> ForwardExclusive(const Exchange& exchange);
  // An idle pipelined connection to `index`, taken out of pipelining for an
  // exclusive exchange; null if none.
  std::unique_ptr<UpstreamConnection> TakeIdlePipe(size_t index);
  // The next upstream to try for an exchange and the deadline of that
  // attempt; nullopt when no time or no untried healthy upstream is left
  // (`lease` then says which). Marks the pick in `tried`, counts `attempts`.
  struct Attempt {
    size_t upstream;
    Clock::time_point deadline;
  };
  std::optional<Attempt> NextAttempt(const Exchange& exchange, uint64_t& tried, int& attempts,
                                     Lease& lease);
  Failure RecordFailure(size_t index, Io io, const std::string& why);

  boost::asio::awaitable<std::unique_ptr<UpstreamConnection>> Connect(size_t index,
                                                                      Clock::time_point deadline,
                                                                      std::string& why,
                                                                      bool counted = true);
  struct ResponseEnd {
    bool eof = false;         // delimited by the connection's end
    bool keep_alive = false;  // the response allows another on the connection
  };
  boost::asio::awaitable<Io> ReadResponse(UpstreamConnection& c, ParsedMessage& out, bool head,
                                          bool stale_if_silent, const bool* abandoned,
                                          std::string& why, ResponseEnd& end);
  boost::asio::awaitable<Io> RoundTrip(UpstreamConnection& c, std::string_view request, bool head,
                                       Clock::time_point deadline, std::string& why);
  std::unique_ptr<UpstreamConnection> TakeIdle(size_t index);
  int Pick(uint64_t tried);

  boost::asio::io_context& ctx_;
  Deadlines& deadlines_;
  UpstreamSet& upstreams_;
  const UpstreamOptions& options_;
  std::vector<std::vector<std::unique_ptr<UpstreamConnection>>> idle_;  // per upstream, LIFO
  std::vector<size_t> open_;                  // per upstream: connections alive
  std::vector<std::deque<Waiter*>> waiters_;  // per upstream: requests waiting for one
  std::vector<std::vector<std::shared_ptr<Pipe>>> pipes_;  // per upstream
  uint64_t next_ = 0;                         // round-robin cursor
  bool stopped_ = false;
  std::vector<std::unique_ptr<boost::asio::steady_timer>> health_timers_;
};

}  // namespace openimds::proxy
