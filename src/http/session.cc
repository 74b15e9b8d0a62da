// A connection of the server core: the read loop, the handler call and the
// writes (see session.h).
#include "http/session.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <type_traits>

#include "common/log.h"
#include "http/deferred_wait.h"
#include "http/hop_limit.h"
#include "http/request_parser.h"
#include "http/response_writer.h"
#include "http/wire_format.h"

namespace openimds::http {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using unix_socket = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// How much to ask the kernel for per read. Guest requests are ~200 bytes; a
// pipelined burst or an admin import fills several reads.
constexpr size_t kReadChunk = 16 * 1024;
// After a refusal that leaves request bytes unread: how long, and how many
// bytes at most, the connection is drained before it closes.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr size_t kLingerBytes = 64 * 1024 * 1024;
// Responses to pipelined requests are coalesced into one write up to this.
constexpr size_t kCoalesceBytes = 64 * 1024;

// The parser's defaults are the guest listener's.
static_assert(RequestLimits{}.max_header_bytes == Limits{}.max_header_bytes);
static_assert(RequestLimits{}.max_body_bytes == Limits{}.max_body_bytes);

// The connection's life (see StartSession). `raw_fd` (plain TCP only): an
// accepted, non-blocking descriptor that `socket` (then unopened) adopts only
// when the connection must wait.
template <typename Socket, typename Endpoint>
asio::awaitable<void> ServeConnection(Socket socket, Endpoint peer, ListenerState& ls, Worker& w,
                                      const std::atomic<bool>& draining, int raw_fd = -1) {
  const Limits& limits = ls.config.limits;
  ls.connections->Inc();
  w.active.fetch_add(1, std::memory_order_relaxed);

  bool idle = true;
  Clock::time_point deadline = Clock::now() + limits.idle_timeout;
  bool timed_out = false;
  w.sessions.push_front(Worker::SessionHandle{[&socket, &timed_out, &raw_fd]() {
                                                timed_out = true;
                                                if (raw_fd >= 0) {
                                                  // Never suspended while raw; be safe anyway:
                                                  // the next recv sees EOF.
                                                  ::shutdown(raw_fd, SHUT_RDWR);
                                                  return;
                                                }
                                                boost::system::error_code ignored;
                                                socket.lowest_layer().close(ignored);
                                              },
                                              &idle, &deadline, ls.timeouts, &ls.display, {}});
  auto handle_it = w.sessions.begin();

  // A connection accepted by TcpAcceptLoop is served on its raw descriptor:
  // recv/send straight away, as long as each completes at once (the request
  // is there, the response fits the socket buffer), which is the whole life
  // of a cloud-init connection. The first time it would have to wait, `adopt`
  // gives the descriptor to `socket` and asio's reactor takes over. Nothing
  // suspends while raw (adopt comes first), so the reaper never sees it.
  const auto adopt = [&]() -> bool {
    if (raw_fd < 0) return true;
    if constexpr (std::is_same_v<Socket, tcp::socket>) {
      boost::system::error_code aec;
      socket.assign(ls.tcp_endpoint.protocol(), raw_fd, aec);
      if (aec) {
        ::close(raw_fd);
        raw_fd = -1;
        return false;
      }
    }
    raw_fd = -1;
    return true;
  };
  const auto native_fd = [&]() -> int {
    return raw_fd >= 0 ? raw_fd : socket.lowest_layer().native_handle();
  };
  constexpr bool kTls = std::is_same_v<Socket, TlsSocket>;
  constexpr bool kTcp = std::is_same_v<Socket, tcp::socket> || kTls;

  std::unique_ptr<SessionState> state = w.TakeState();
  ParsedRequest& parsed = state->parsed;
  common::Request& req = state->req;
  // What the handler keeps for this connection (Request::connection_state);
  // dropped when the connection ends, before the state is reused.
  std::shared_ptr<void> connection_state;
  req.connection_state = &connection_state;
  common::Response& resp = state->resp;
  std::string& out = state->out;
  boost::beast::flat_buffer& buffer = state->buffer;
  req.listener_network = ls.config.network;
  bool is_v6_socket = false;
  if constexpr (kTcp) {
    // Per-connection syscalls matter for cloud-init's connection per request:
    // TCP_NODELAY is inherited from the listening socket (set in BindTcp),
    // the peer came with accept, and a listener bound to one address needs
    // no getsockname.
    boost::system::error_code ec;
    if (!ls.nodelay_inherited) socket.lowest_layer().set_option(tcp::no_delay(true), ec);
    req.peer = ToIpAddress(peer.address());
    if (!ls.tcp_endpoint.address().is_unspecified()) {
      req.local = ToIpAddress(ls.tcp_endpoint.address());
      req.local_port = ls.tcp_endpoint.port();
      is_v6_socket = ls.tcp_endpoint.address().is_v6();
    } else if (adopt()) {  // a wildcard listener: ask the socket (rare)
      auto local = socket.lowest_layer().local_endpoint(ec);
      if (!ec) {
        req.local = ToIpAddress(local.address());
        req.local_port = local.port();
        is_v6_socket = local.address().is_v6();
      }
    }
    handle_it->peer = req.peer;
  }

  bool handshake_failed = false;
  if constexpr (kTls) {
    // Under the header deadline: a peer that stalls the handshake is cut off
    // by the reaper like a slow request.
    idle = false;
    deadline = Clock::now() + limits.header_timeout;
    auto [hec] = co_await socket.async_handshake(asio::ssl::stream_base::server, kTuple);
    if (hec) {
      handshake_failed = true;
      ls.tls_failures->Inc();
      common::LogRefusal("http", "TLS handshake with " + req.peer.ToString() + " on " +
                                     ls.display + " failed: " + hec.message());
    }
  }

  HopLimitGuard ttl;
  uint32_t served = 0;
  bool linger = false;  // drain the peer before closing (see below)
  // Sends what `out` holds under the write deadline and empties it; false if
  // the write failed. For the flushes of coalesced responses (before a read
  // that would wait, a 100-continue, a deferral or a hop-limit change); the
  // per-request write below stays inline.
  // Most responses fit the socket buffer: one send(2) and no reactor round
  // trip; what is left (if any) goes through async_write.
  const auto finish_write = [&](std::string_view rest) -> asio::awaitable<bool> {
    if (!adopt()) co_return false;
    auto [ec, n] = co_await asio::async_write(socket, asio::buffer(rest), kTuple);
    co_return !ec;
  };
  const auto send_out = [&]() -> asio::awaitable<bool> {
    deadline = Clock::now() + limits.write_timeout;
    std::string_view rest = out;
    bool ok = true;
    if constexpr (!kTls) ok = SendNow(native_fd(), rest);
    if (ok && !rest.empty()) ok = co_await finish_write(rest);
    out.clear();
    co_return ok;
  };

  // The request as far as its header goes (the body is set separately).
  const auto fill_head = [&]() {
    req.method = parsed.View(parsed.method);
    req.target = parsed.View(parsed.target);
    auto q = req.target.find('?');
    req.path = req.target.substr(0, q);
    req.query = q == std::string_view::npos ? std::string_view() : req.target.substr(q + 1);
    req.headers.clear();
    for (const auto& [n, v] : parsed.fields) {
      req.headers.push_back(common::HeaderField{parsed.View(n), parsed.View(v)});
    }
    req.body = {};
    req.version = parsed.version;
  };

  try {
    for (; !handshake_failed;) {
      std::optional<RequestParser> parser;
      parser.emplace(parsed, RequestLimits{limits.max_header_bytes, limits.max_body_bytes});

      idle = buffer.size() == 0;
      deadline = Clock::now() + (idle ? limits.idle_timeout : limits.header_timeout);
      if (idle && draining.load(std::memory_order_relaxed)) break;

      bool sent_continue = false;
      bool closed = false;
      bool admission_checked = false;
      bool refused_at_head = false;  // Handler::Admit said no; resp holds the answer
      while (!parser->done()) {
        if (buffer.size() > 0) {
          const auto data = buffer.data();
          size_t n = parser->Feed(
              std::string_view(static_cast<const char*>(data.data()), data.size()));
          buffer.consume(n);
          if (parser->refused()) break;
          if (parser->done()) break;
          if (parser->header_done() && !admission_checked) {
            // A body is still to come: the handler may refuse on the header.
            admission_checked = true;
            fill_head();
            resp.Clear();
            if (!ls.config.handler->Admit(req, resp)) {
              refused_at_head = true;
              break;
            }
          }
          if (parser->header_done() && parsed.expect_continue && !sent_continue) {
            sent_continue = true;
            static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
            out.append(kContinue);  // after any coalesced responses, in order
            if (!co_await send_out()) {
              closed = true;
              break;
            }
            deadline = Clock::now() + limits.header_timeout;
          }
          if (n > 0 && buffer.size() > 0) continue;
        }
        if (!out.empty()) {
          // Coalesced responses to pipelined requests leave before this
          // connection waits for more bytes.
          if (!co_await send_out()) {
            closed = true;
            break;
          }
          deadline = Clock::now() + (idle ? limits.idle_timeout : limits.header_timeout);
        }
        // end_of_stream between requests is the normal end of a connection;
        // a deadline close was counted and logged by the reaper.
        size_t rn = 0;
        if (raw_fd >= 0) {
          const auto space = buffer.prepare(kReadChunk);
          const ssize_t got = ::recv(raw_fd, space.data(), space.size(), 0);
          if (got > 0) {
            rn = static_cast<size_t>(got);
          } else if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ||
                     !adopt()) {
            closed = true;
            break;
          }
        }
        if (rn == 0) {
          auto [rec, n] = co_await socket.async_read_some(buffer.prepare(kReadChunk), kTuple);
          if (rec) {
            closed = true;
            break;
          }
          rn = n;
        }
        buffer.commit(rn);
        if (idle) {
          idle = false;
          deadline = Clock::now() + limits.header_timeout;
        }
      }
      if (closed) break;

      const bool refused = parser->refused();
      if (!refused_at_head) resp.Clear();
      bool keep_alive = false;
      bool client_closes = false;  // the request itself said close (1.0, Connection: close)
      int version = parsed.version;
      if (refused_at_head) {
        // The answer Admit wrote; the body stays unread and the connection closes.
        ls.requests->Inc();
        resp.close = true;
      } else if (refused) {
        const int status = parser->status();
        common::Counter* counter = status == 431   ? ls.rejected_header_size
                                   : status == 413 ? ls.rejected_body_size
                                                   : ls.rejected_malformed;
        const std::string message = parser->message();
        counter->Inc();
        common::LogRefusal("http", "refused request from " + req.peer.ToString() + " on " +
                                    ls.display + ": " + message);
        SimpleError(resp, status, message);
        ls.config.handler->ShapeRefusal(status, message, resp);
        resp.close = true;
        // A refused HEAD gets no body either.
        resp.head = IsHeadRequest(
            parsed,
            std::string_view(static_cast<const char*>(buffer.data().data()), buffer.size()));
        version = 11;
      } else {
        idle = false;
        ls.requests->Inc();
        keep_alive = parser->keep_alive();
        client_closes = !keep_alive;
        fill_head();
        req.body = parsed.body;
        req.version = parsed.version;
        try {
          ls.config.handler->Handle(req, resp);
          if (resp.deferred) [[unlikely]] {
            // The handler waits on an upstream (common::Deferred): park this
            // request only; the reaper must not take the wait for a slowloris.
            if (!adopt()) break;  // the reaper may close it while parked
            if (!out.empty()) {
              // Responses coalesced before it do not wait with it.
              if (!co_await send_out()) break;
            }
            deadline = Clock::now() + DeferralBound(*resp.deferred) + limits.write_timeout;
            co_await ResumeDeferred(*ls.config.handler, req, resp);
          }
        } catch (const std::exception& e) {
          ls.handler_errors->Inc();
          common::LogError("http", "handler failed for " + std::string(req.method) + " " +
                                       std::string(req.path) + ": " + e.what());
          SimpleError(resp, 500, "internal error");
        }
        for (const auto& [name, value] : resp.headers) {
          if (!SafeHeaderText(name) || !SafeHeaderText(value)) {
            ls.handler_errors->Inc();
            common::LogError("http", "handler produced an unsafe header; answering 500");
            SimpleError(resp, 500, "internal error");
            break;
          }
        }
      }
      // Whatever the handler said: an answer to HEAD has no body.
      if ((!refused || refused_at_head) && req.method == "HEAD") resp.head = true;
      ++served;
      if (resp.close || draining.load(std::memory_order_relaxed) ||
          (limits.max_requests_per_connection != 0 &&
           served >= limits.max_requests_per_connection)) {
        keep_alive = false;
      }
      if (resp.ip_ttl && !out.empty()) {
        // The hop limit applies per write: earlier coalesced responses first.
        if (!co_await send_out()) break;
      }
      Serialize(resp, version, keep_alive, out);

      // Pipelining (the proxy sends a turn's GETs as one batch): while the
      // next request is already buffered, hold this response and send the
      // batch's responses in one write (flushed before any read that would
      // wait). Not across a hop-limit change, which applies per write.
      if (keep_alive && buffer.size() > 0 && out.size() < kCoalesceBytes && !resp.ip_ttl &&
          !ttl.active()) {
        continue;
      }

      if constexpr (std::is_same_v<Socket, tcp::socket>) {
        // The token response must leave with the instance's hop limit; any
        // later response on this connection leaves with the default again.
        if (resp.ip_ttl) {
          ttl.Apply(native_fd(), is_v6_socket, *resp.ip_ttl);
        } else {
          ttl.Restore();
        }
      }
      deadline = Clock::now() + limits.write_timeout;
      std::string_view rest = out;
      // The last answer to a client that asked to close leaves corked
      // (MSG_MORE): the close() just below then sends the FIN in the same
      // segment, and the client acknowledges both at once: 8 segments per
      // connection instead of 10. Only then: had the server chosen to close
      // while the client may have pipelined more (unread bytes make close()
      // send a reset), a corked answer would be lost with them.
      const int cork = !keep_alive && client_closes && buffer.size() == 0 ? MSG_MORE : 0;
      bool wrote = true;
      if constexpr (!kTls) wrote = SendNow(native_fd(), rest, cork);
      if (wrote && !rest.empty()) wrote = co_await finish_write(rest);
      out.clear();
      // Refused before the request was read to its end (on its header, or
      // over a limit): the peer may still be sending. Closing now would
      // answer its next bytes with a reset, which can destroy the refusal
      // in its receive buffer before it reads it; so send the FIN, then read
      // and discard (never buffer) until the peer closes or kLingerTime
      // passes (the reaper ends it), as nginx's lingering close does.
      if (wrote && (refused_at_head || refused) && !kTls) linger = true;
      if (!wrote || !keep_alive) break;
    }
    if (linger && adopt()) {
      ::shutdown(native_fd(), SHUT_WR);
      idle = true;  // the reaper ends it at the deadline without calling it a timeout
      deadline = Clock::now() + kLingerTime;
      size_t drained = 0;
      while (drained < kLingerBytes) {
        auto [lec, n] = co_await socket.async_read_some(buffer.prepare(kReadChunk), kTuple);
        if (lec) break;
        drained += n;  // not committed: the bytes are dropped
      }
    }
    // Otherwise no shutdown(SHUT_WR) before the close below: it sent the FIN
    // close() sends anyway, one syscall per connection for nothing.
  } catch (const std::exception& e) {
    // An exception escaping a detached coroutine would abort the process.
    common::LogError("http", std::string("connection failed: ") + e.what());
  }
  if (raw_fd >= 0) {
    ::close(raw_fd);
  } else {
    // A TLS session ends without close_notify: every answer carries its
    // length, and waiting for the peer's reply would only hold the socket.
    boost::system::error_code ignored;
    socket.lowest_layer().close(ignored);
  }
  w.sessions.erase(handle_it);
  state->req.connection_state = nullptr;
  connection_state.reset();
  w.ReturnState(std::move(state));
  w.active.fetch_sub(1, std::memory_order_relaxed);
  ls.gate->Release(GatePeer(peer), ls.max_per_source);
}

}  // namespace

void StartSession(tcp::socket socket, const tcp::endpoint& peer, ListenerState& ls, Worker& w,
                  const std::atomic<bool>& draining, int raw_fd) {
  asio::co_spawn(w.ctx, ServeConnection(std::move(socket), peer, ls, w, draining, raw_fd),
                 asio::detached);
}

void StartSession(TlsSocket socket, const tcp::endpoint& peer, ListenerState& ls, Worker& w,
                  const std::atomic<bool>& draining) {
  asio::co_spawn(w.ctx, ServeConnection(std::move(socket), peer, ls, w, draining),
                 asio::detached);
}

void StartSession(unix_socket::socket socket, const unix_socket::endpoint& peer,
                  ListenerState& ls, Worker& w, const std::atomic<bool>& draining) {
  asio::co_spawn(w.ctx, ServeConnection(std::move(socket), peer, ls, w, draining),
                 asio::detached);
}

}  // namespace openimds::http
