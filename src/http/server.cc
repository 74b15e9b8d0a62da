#include "http/server.h"

#include "common/thread_priority.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <list>
#include <mutex>
#include <optional>
#include <thread>

#include "common/log.h"
#include "http/deferred_wait.h"
#include "http/hop_limit.h"
#include "http/wire_format.h"

namespace openimds::http {
namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using unix_socket = asio::local::stream_protocol;
using tls_socket = asio::ssl::stream<tcp::socket>;
using Clock = std::chrono::steady_clock;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// How much to ask the kernel for per read. Guest requests are ~200 bytes; a
// pipelined burst or an admin import fills several reads.
constexpr size_t kReadChunk = 16 * 1024;
// After a refusal that leaves request bytes unread: how long, and how many
// bytes at most, the connection is drained before it closes.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr size_t kLingerBytes = 64 * 1024 * 1024;
// Body bytes reserved when a Content-Length announces them; a larger body
// grows the buffer as it arrives.
constexpr size_t kReserveBody = 1024 * 1024;
// Connections a listener accepts in a row before it lets them run.
constexpr int kAcceptBatch = 64;
// Responses to pipelined requests are coalesced into one write up to this.
constexpr size_t kCoalesceBytes = 64 * 1024;

// ---------------------------------------------------------------------------
// Request parsing: Beast's basic_parser, with every piece copied into
// per-connection storage whose capacity is reused across requests, so a
// steady keep-alive connection parses without allocating.

struct Span {
  uint32_t offset = 0;
  uint32_t length = 0;
};

struct ParsedRequest {
  std::string arena;  // method, target, header names and values, back to back
  Span method, target;
  std::vector<std::pair<Span, Span>> fields;
  std::string body;
  int version = 11;
  bool expect_continue = false;
  // Bytes of chunk extensions seen so far, and whether they or the trailers
  // went past the header limit (Beast bounds neither).
  size_t chunk_extension_bytes = 0;
  bool chunk_framing_too_large = false;
  // Transfer-Encoding headers seen, and the first one's value.
  int transfer_encodings = 0;
  Span transfer_encoding;

  void Clear() {
    arena.clear();
    fields.clear();
    body.clear();
    expect_continue = false;
    chunk_extension_bytes = 0;
    chunk_framing_too_large = false;
    transfer_encodings = 0;
    transfer_encoding = Span();
  }
  Span Append(std::string_view s) {
    Span sp{static_cast<uint32_t>(arena.size()), static_cast<uint32_t>(s.size())};
    arena.append(s.data(), s.size());
    return sp;
  }
  std::string_view View(Span s) const { return std::string_view(arena).substr(s.offset, s.length); }
};

std::string_view SV(boost::beast::string_view s) { return std::string_view(s.data(), s.size()); }

class RequestParser final : public bhttp::basic_parser<true> {
 public:
  // `framing_limit`: the most bytes of chunk extensions one request may carry
  // (the header limit; the trailers are bounded by the read loop).
  RequestParser(ParsedRequest& out, size_t framing_limit)
      : out_(out), framing_limit_(framing_limit) {}

 private:
  void on_request_impl(bhttp::verb, boost::beast::string_view method, boost::beast::string_view target, int version,
                       boost::system::error_code&) override {
    out_.method = out_.Append(SV(method));
    out_.target = out_.Append(SV(target));
    out_.version = version;
  }
  void on_response_impl(int, boost::beast::string_view, int, boost::system::error_code&) override {}
  void on_field_impl(bhttp::field f, boost::beast::string_view name, boost::beast::string_view value,
                     boost::system::error_code&) override {
    if (f == bhttp::field::expect && common::EqualsIgnoreCase(SV(value), "100-continue")) {
      out_.expect_continue = true;
    }
    Span n = out_.Append(SV(name));
    Span v = out_.Append(SV(value));
    out_.fields.emplace_back(n, v);
    if (f == bhttp::field::transfer_encoding && out_.transfer_encodings++ == 0) {
      out_.transfer_encoding = v;
    }
  }
  void on_header_impl(boost::system::error_code& ec) override {
    if (out_.transfer_encodings > 0 &&
        !AcceptableTransferEncoding(out_.transfer_encodings,
                                    out_.View(out_.transfer_encoding))) {
      ec = bhttp::error::bad_transfer_encoding;
    }
  }
  void on_body_init_impl(const boost::optional<std::uint64_t>& length,
                         boost::system::error_code&) override {
    // body_limit() has already refused lengths over the limit. Reserve no
    // more than a first slice up front: the body has not arrived (nor has
    // the handler admitted it) yet.
    if (length) out_.body.reserve(std::min<size_t>(static_cast<size_t>(*length), kReserveBody));
  }
  size_t on_body_impl(boost::beast::string_view body, boost::system::error_code&) override {
    out_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, boost::beast::string_view extensions,
                            boost::system::error_code& ec) override {
    out_.chunk_extension_bytes += extensions.size();
    if (out_.chunk_extension_bytes > framing_limit_) {
      out_.chunk_framing_too_large = true;
      ec = bhttp::error::header_limit;
    }
  }
  size_t on_chunk_body_impl(std::uint64_t, boost::beast::string_view body,
                            boost::system::error_code&) override {
    out_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(boost::system::error_code&) override {}

  ParsedRequest& out_;
  const size_t framing_limit_;
};

// ---------------------------------------------------------------------------
// Response serialisation into one buffer: headers and body leave in one
// write (with TCP_NODELAY), avoiding the Nagle/delayed-ACK stall clients.md
// describes.



bool SafeHeaderText(std::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}


// Appends: pipelined responses may be coalesced into one write. The status
// line and fixed headers are built in a stack buffer and appended at once
// (a dozen std::string::append calls were 12% of the hot path's
// instructions); extra headers, rare, are appended one by one.
void Serialize(const common::Response& r, int version, bool keep_alive, std::string& out) {
  const bool has_body = r.status != 204 && r.status != 304;
  char head[256];
  char* p = head;
  const auto put = [&p](std::string_view v) {
    std::memcpy(p, v.data(), v.size());
    p += v.size();
  };
  const auto put_number = [&p](uint64_t n) { p = std::to_chars(p, p + 20, n).ptr; };
  // Fixed pieces: 9 + 3 + 1 + reason (<= 40) + 8 + date (29) + 16 + type
  // (bounded below) + 18 + 20 + 24 + 2 < 256 for a content type <= 64.
  const std::string_view reason = ReasonPhrase(r.status);
  const bool type_fits = r.content_type.size() <= 64 && reason.size() <= 40;
  if (!type_fits) {
    // Never seen in practice; keep the general path correct anyway.
    out.append(version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
    AppendNumber(out, static_cast<size_t>(r.status));
    out += ' ';
    out.append(reason);
    out.append("\r\nDate: ");
    out.append(HttpDate());
    if (has_body) {
      out.append("\r\nContent-Type: ");
      out.append(r.content_type);
      out.append("\r\nContent-Length: ");
      AppendNumber(out, r.body.size());
    }
  } else {
    put(version == 10 ? std::string_view("HTTP/1.0 ") : std::string_view("HTTP/1.1 "));
    put_number(static_cast<uint64_t>(r.status));
    *p++ = ' ';
    put(reason);
    put("\r\nDate: ");
    put(HttpDate());
    if (has_body) {
      put("\r\nContent-Type: ");
      put(r.content_type);
      put("\r\nContent-Length: ");
      put_number(r.body.size());
    }
    out.append(head, static_cast<size_t>(p - head));
  }
  for (const auto& [name, value] : r.headers) {
    out.append("\r\n");
    out.append(name);
    out.append(": ");
    out.append(value);
  }
  if (!keep_alive) {
    out.append("\r\nConnection: close\r\n\r\n");
  } else if (version == 10) {
    out.append("\r\nConnection: keep-alive\r\n\r\n");
  } else {
    out.append("\r\n\r\n");
  }
  if (!r.head && has_body) out.append(r.body);
}

// Sends what it can of `data` without waiting and leaves the rest in it;
// false if the connection failed. MSG_DONTWAIT: a socket not yet used by
// asio may still be in blocking mode (the unix listener's).
bool SendNow(int fd, std::string_view& data, int extra_flags = 0) {
  while (!data.empty()) {
    const ssize_t n =
        ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT | extra_flags);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
  }
  return true;
}

// The address a connection counts against at the gate (none for unix sockets).
common::IpAddress GatePeer(const tcp::endpoint& peer) { return ToIpAddress(peer.address()); }
common::IpAddress GatePeer(const unix_socket::endpoint&) { return {}; }

// Whether raw request bytes begin with the HEAD method.
bool StartsWithHead(std::string_view raw) { return raw.substr(0, 5) == "HEAD "; }

void SimpleError(common::Response& r, int status, std::string_view message) {
  r.Clear();
  r.status = status;
  r.content_type = "text/plain";
  r.body.assign(message);
  r.body += '\n';
  r.close = true;
}

// ---------------------------------------------------------------------------

struct ListenerState;

// A server context for `config`'s certificate chain and key (PEM): TLS 1.2
// and later, no renegotiation, no compression. InvalidArgument naming the
// file and OpenSSL's reason when either cannot be loaded or they do not match.
common::Result<std::unique_ptr<asio::ssl::context>> MakeTlsContext(const ListenerConfig& config) {
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  boost::system::error_code ec;
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1 | asio::ssl::context::no_compression,
                   ec);
  ::SSL_CTX_set_options(ctx->native_handle(), SSL_OP_NO_RENEGOTIATION);
  const std::string where = "TLS for " + config.endpoint + ": ";
  ctx->use_certificate_chain_file(config.tls_certificate_file, ec);
  if (ec) {
    return common::InvalidArgument(where + "cannot load certificate " +
                                   config.tls_certificate_file + ": " + ec.message());
  }
  ctx->use_private_key_file(config.tls_key_file, asio::ssl::context::pem, ec);
  if (ec) {
    return common::InvalidArgument(where + "cannot load key " + config.tls_key_file + ": " +
                                   ec.message());
  }
  if (::SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    return common::InvalidArgument(where + "key " + config.tls_key_file +
                                   " does not match certificate " + config.tls_certificate_file);
  }
  return ctx;
}

// A connection's buffers. A worker keeps those of closed connections and
// hands them to new ones, so a connection per request (cloud-init) does not
// pay a dozen malloc/free pairs for its request, parse and response storage.
struct SessionState {
  ParsedRequest parsed;
  common::Request req;
  common::Response resp;
  std::string out;
  boost::beast::flat_buffer buffer;
};
// Kept per worker at most, and only while their storage stays small: one
// large upload must not pin its memory for the life of the process.
constexpr size_t kSpareStates = 256;
constexpr size_t kSpareStateBytes = 64 * 1024;

// One I/O thread: its io_context and the connections it owns. Everything in
// here is touched only from its own thread, except through asio::post.
struct Worker {
  // One thread runs this context and every socket and acceptor on it is
  // touched only from that thread (other threads reach it through post(),
  // which keeps the scheduler's lock), so the reactor's per-descriptor
  // locking is pure overhead: UNSAFE_IO turns just that off (callgrind:
  // pthread_mutex_lock/unlock were ~4.5% of the server's instructions).
  asio::io_context ctx{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  std::thread thread;
  bool background = false;  // a dedicated worker of a ListenerConfig::background listener
  struct SessionHandle {
    std::function<void()> close;
    bool* idle;
    Clock::time_point* deadline;
    common::Counter* timeouts;  // counted here, before the close is visible to the peer
    const std::string* endpoint;
    common::IpAddress peer;  // formatted only when a line is logged
  };
  std::list<SessionHandle> sessions;  // owned by this thread
  std::vector<std::unique_ptr<SessionState>> spare_states;

  std::unique_ptr<SessionState> TakeState() {
    if (spare_states.empty()) {
      auto st = std::make_unique<SessionState>();
      st->parsed.arena.reserve(1024);
      st->parsed.fields.reserve(16);
      st->req.headers.reserve(16);
      st->out.reserve(1024);
      return st;
    }
    auto st = std::move(spare_states.back());
    spare_states.pop_back();
    return st;
  }
  void ReturnState(std::unique_ptr<SessionState> st) {
    if (spare_states.size() >= kSpareStates || st->parsed.arena.capacity() > kSpareStateBytes ||
        st->parsed.body.capacity() > kSpareStateBytes || st->out.capacity() > kSpareStateBytes ||
        st->resp.body.capacity() > kSpareStateBytes || st->buffer.capacity() > kSpareStateBytes) {
      return;
    }
    st->parsed.Clear();
    auto headers = std::move(st->req.headers);
    headers.clear();
    st->req = common::Request{};
    st->req.headers = std::move(headers);
    st->resp.Clear();
    st->out.clear();
    st->buffer.clear();
    spare_states.push_back(std::move(st));
  }
  std::unique_ptr<asio::steady_timer> reaper;
  // Each acceptor with the listener it serves.
  std::vector<std::pair<std::unique_ptr<tcp::acceptor>, ListenerState*>> tcp_acceptors;
  std::vector<std::pair<std::unique_ptr<unix_socket::acceptor>, ListenerState*>> unix_acceptors;
  std::atomic<int> active{0};
};

struct ListenerState {
  ListenerConfig config;
  bool is_unix = false;
  tcp::endpoint tcp_endpoint;  // resolved, with the real port once bound
  // The one listening socket every worker accepts from (each through its own
  // descriptor for it); owned by the first worker's acceptor.
  int listening_fd = -1;
  bool nodelay_inherited = false;  // TCP_NODELAY set on the listening sockets
  std::string unix_path;
  std::string display;  // the endpoint as bound (real port), for logs
  common::Counter* requests = nullptr;
  common::Counter* connections = nullptr;
  common::Counter* rejected_malformed = nullptr;
  common::Counter* rejected_header_size = nullptr;
  common::Counter* rejected_body_size = nullptr;
  common::Counter* timeouts = nullptr;
  common::Counter* handler_errors = nullptr;
  common::Counter* refused_open = nullptr;        // over the connection cap
  common::Counter* refused_per_source = nullptr;  // over the per-source cap
  // Admission at accept: the shared guest gate, or this listener's own.
  ConnectionGate* gate = nullptr;
  std::unique_ptr<ConnectionGate> own_gate;
  std::unique_ptr<asio::ssl::context> tls;  // set when the listener speaks TLS
  common::Counter* tls_failures = nullptr;
  size_t max_per_source = 0;  // 0 on unix sockets
};




}  // namespace

struct Server::Impl {
  ServerOptions options;
  common::MetricsRegistry& metrics;
  std::vector<std::unique_ptr<ListenerState>> listeners;
  std::vector<std::unique_ptr<Worker>> shared_workers;
  std::vector<std::unique_ptr<Worker>> dedicated_workers;  // one per dedicated listener
  ConnectionGate shared_gate;  // every shared listener's connections
  std::atomic<bool> draining{false};
  std::atomic<bool> started{false};
  std::mutex shutdown_mu;
  std::unique_ptr<std::thread> shutdown_thread;  // guarded by shutdown_mu

  Impl(ServerOptions o, common::MetricsRegistry& m)
      : options(o), metrics(m), shared_gate(o.max_connections) {}

  // Counts a new connection in, or says (counter, rate-limited log line) why
  // it is to be closed at once.
  bool Admit(ListenerState& ls, const common::IpAddress& peer) {
    const auto verdict = ls.gate->Admit(peer, ls.max_per_source);
    if (verdict == ConnectionGate::Verdict::kAdmitted) return true;
    if (verdict == ConnectionGate::Verdict::kTooManyFromSource) {
      ls.refused_per_source->Inc();
      common::LogRefusal("http", "closed a connection from " + peer.ToString() + " on " +
                                     ls.display + ": " + std::to_string(ls.max_per_source) +
                                     " connections from that address are open");
    } else {
      ls.refused_open->Inc();
      common::LogRefusal("http", "closed a connection from " + peer.ToString() + " on " +
                                     ls.display + ": " + std::to_string(ls.gate->max_open()) +
                                     " connections are open");
    }
    return false;
  }

  std::vector<Worker*> AllWorkers() {
    std::vector<Worker*> all;
    for (auto& w : shared_workers) all.push_back(w.get());
    for (auto& w : dedicated_workers) all.push_back(w.get());
    return all;
  }

  common::Status BindTcp(ListenerState& ls, Worker& w, bool first);
  common::Status BindUnix(ListenerState& ls, Worker& w);
  void StartReaper(Worker& w);

  // `raw_fd` (TCP only): an accepted, non-blocking descriptor that `socket`
  // (then unopened) adopts only when the connection must wait; see Session.
  template <typename Socket, typename Endpoint>
  asio::awaitable<void> Session(Socket socket, Endpoint peer, ListenerState& ls, Worker& w,
                                int raw_fd = -1);
  template <typename Acceptor>
  asio::awaitable<void> AcceptLoop(Acceptor& acceptor, ListenerState& ls, Worker& w);
  asio::awaitable<void> TcpAcceptLoop(tcp::acceptor& acceptor, ListenerState& ls, Worker& w);
};

common::Status Server::Impl::BindTcp(ListenerState& ls, Worker& w, bool first) {
  auto acc = std::make_unique<tcp::acceptor>(w.ctx);
  boost::system::error_code ec;
  if (first) {
    // One socket, bound without SO_REUSEPORT: an address anyone else holds
    // (another process, another listener of this one, the admin API) fails
    // here with "address already in use", and nobody can join this one
    // later and take a share of its guests.
    acc->open(ls.tcp_endpoint.protocol(), ec);
    if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && ls.tcp_endpoint.address().is_v6()) {
      // An IPv6 listener serves IPv6 only; IPv4 gets its own listener so each
      // can carry its own network name.
      acc->set_option(asio::ip::v6_only(true), ec);
    }
    if (!ec) acc->bind(ls.tcp_endpoint, ec);
    if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
    if (!ec) ls.listening_fd = acc->native_handle();
  } else {
    // The other workers accept from the same socket through descriptors of
    // their own (each polls it; accept4 sorts out who gets a connection).
    const int fd = ::fcntl(ls.listening_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
      ec.assign(errno, boost::system::system_category());
    } else {
      acc->assign(ls.tcp_endpoint.protocol(), fd, ec);
      if (ec) ::close(fd);
    }
  }
  if (ec) {
    return common::Unavailable("cannot listen on " + ls.config.endpoint + ": " + ec.message());
  }
  // TcpAcceptLoop drains the backlog with accept4 until EAGAIN.
  acc->non_blocking(true, ec);
  if (ec) return common::Unavailable("cannot listen on " + ls.config.endpoint + ": " + ec.message());
  {
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux.
    boost::system::error_code nec;
    acc->set_option(tcp::no_delay(true), nec);
    if (first) ls.nodelay_inherited = !nec;
    else if (nec) ls.nodelay_inherited = false;
  }
  if (first) {
    ls.tcp_endpoint = acc->local_endpoint();
    const auto& a = ls.tcp_endpoint.address();
    ls.display = (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" +
                 std::to_string(ls.tcp_endpoint.port());
  }
  w.tcp_acceptors.emplace_back(std::move(acc), &ls);
  return common::Status::Ok();
}

common::Status Server::Impl::BindUnix(ListenerState& ls, Worker& w) {
  struct stat st {};
  if (lstat(ls.unix_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return common::Unavailable("cannot listen on " + ls.config.endpoint +
                                 ": path exists and is not a socket");
    }
    ::unlink(ls.unix_path.c_str());  // a stale socket from an earlier run
  }
  auto acc = std::make_unique<unix_socket::acceptor>(w.ctx);
  boost::system::error_code ec;
  unix_socket::endpoint ep(ls.unix_path);
  acc->open(ep.protocol(), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return common::Unavailable("cannot listen on " + ls.config.endpoint + ": " + ec.message());
  }
  ::chmod(ls.unix_path.c_str(), ls.config.unix_mode);
  ls.display = ls.config.endpoint;
  w.unix_acceptors.emplace_back(std::move(acc), &ls);
  return common::Status::Ok();
}

void Server::Impl::StartReaper(Worker& w) {
  // One coarse timer per thread enforces every deadline of that thread's
  // connections: the hot path only stores a time point, no timer per request.
  w.reaper = std::make_unique<asio::steady_timer>(w.ctx);
  auto tick = std::make_shared<std::function<void()>>();
  *tick = [this, &w, tick]() {
    w.reaper->expires_after(std::chrono::milliseconds(250));
    w.reaper->async_wait([this, &w, tick](boost::system::error_code ec) {
      if (ec) return;
      const auto now = Clock::now();
      const bool drain = draining.load(std::memory_order_relaxed);
      for (auto& s : w.sessions) {
        if (*s.deadline <= now) {
          if (!*s.idle) {
            s.timeouts->Inc();
            common::LogRefusal("http", "closing connection from " + s.peer.ToString() + " on " +
                                           *s.endpoint + ": request not complete in time");
          }
          s.close();
        } else if (drain && *s.idle) {
          s.close();
        }
      }
      (*tick)();
    });
  };
  (*tick)();
}

template <typename Acceptor>
asio::awaitable<void> Server::Impl::AcceptLoop(Acceptor& acceptor, ListenerState& ls, Worker& w) {
  for (;;) {
    // The peer's address comes with accept(2): no getpeername per connection.
    typename Acceptor::endpoint_type peer;
    auto [ec, socket] = co_await acceptor.async_accept(peer, kTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || draining.load()) co_return;
      // EMFILE and friends: say so, back off briefly, keep serving.
      common::LogRefusal("http", "accept on " + ls.config.endpoint + " failed: " + ec.message());
      asio::steady_timer t(w.ctx, std::chrono::milliseconds(50));
      co_await t.async_wait(kTuple);
      continue;
    }
    if (draining.load()) co_return;
    if (!Admit(ls, GatePeer(peer))) {
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    if constexpr (std::is_same_v<Acceptor, tcp::acceptor>) {
      if (ls.tls) {
        // The session does the handshake under the header deadline.
        asio::co_spawn(w.ctx, Session(tls_socket(std::move(socket), *ls.tls), peer, ls, w),
                       asio::detached);
        continue;
      }
    }
    asio::co_spawn(w.ctx, Session(std::move(socket), peer, ls, w), asio::detached);
  }
}

// TCP listeners accept with accept4(SOCK_NONBLOCK) themselves instead of
// async_accept: an asio socket is registered with epoll (EPOLL_CTL_ADD) when
// it is created, set non-blocking with an ioctl at its first operation and,
// being "assigned", deregistered (EPOLL_CTL_DEL) before close: three syscalls
// per connection that a connection answered at once never needs. Session
// serves such a connection on the raw descriptor and hands it to asio only
// when it has to wait (see `adopt` there).
asio::awaitable<void> Server::Impl::TcpAcceptLoop(tcp::acceptor& acceptor, ListenerState& ls,
                                                  Worker& w) {
  const int listen_fd = acceptor.native_handle();
  for (;;) {
    // Drain the backlog: the listener is edge-triggered in asio's reactor,
    // so the next wake-up comes only after accept4 said EAGAIN. Every
    // kAcceptBatch connections, yield so the sessions already accepted run.
    for (int accepted = 0;; ++accepted) {
      if (accepted == kAcceptBatch) {
        accepted = 0;
        co_await asio::post(w.ctx, asio::use_awaitable);
        if (draining.load() || !acceptor.is_open()) co_return;
      }
      tcp::endpoint peer;  // the peer comes with accept4: no getpeername
      socklen_t len = static_cast<socklen_t>(peer.capacity());
      const int fd = ::accept4(listen_fd, peer.data(), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        if (draining.load()) {
          ::close(fd);
          co_return;
        }
        peer.resize(len);
        if (!Admit(ls, ToIpAddress(peer.address()))) {
          ::close(fd);
          continue;
        }
        asio::co_spawn(w.ctx, Session(tcp::socket(w.ctx), peer, ls, w, fd), asio::detached);
        continue;
      }
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      if (err == EINTR || err == ECONNABORTED) continue;
      if (draining.load() || !acceptor.is_open()) co_return;
      // EMFILE and friends: say so, back off briefly, try again (the
      // pending connections raise no new edge).
      common::LogRefusal("http", "accept on " + ls.config.endpoint + " failed: " +
                                  std::string(std::strerror(err)));
      asio::steady_timer t(w.ctx, std::chrono::milliseconds(50));
      co_await t.async_wait(kTuple);
      if (draining.load() || !acceptor.is_open()) co_return;
    }
    auto [ec] = co_await acceptor.async_wait(tcp::acceptor::wait_read, kTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || draining.load()) co_return;
      common::LogWarn("http", "waiting on " + ls.config.endpoint + " failed: " + ec.message());
      asio::steady_timer t(w.ctx, std::chrono::milliseconds(50));
      co_await t.async_wait(kTuple);
    }
    if (draining.load()) co_return;
  }
}

template <typename Socket, typename Endpoint>
asio::awaitable<void> Server::Impl::Session(Socket socket, Endpoint peer, ListenerState& ls,
                                            Worker& w, int raw_fd) {
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
  constexpr bool kTls = std::is_same_v<Socket, tls_socket>;
  constexpr bool kTcp = std::is_same_v<Socket, tcp::socket> || kTls;

  std::unique_ptr<SessionState> state = w.TakeState();
  ParsedRequest& parsed = state->parsed;
  common::Request& req = state->req;
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
      parsed.Clear();
      std::optional<RequestParser> parser;
      parser.emplace(parsed, limits.max_header_bytes);
      parser->eager(true);
      parser->header_limit(static_cast<uint32_t>(limits.max_header_bytes));
      parser->body_limit(limits.max_body_bytes);

      idle = buffer.size() == 0;
      deadline = Clock::now() + (idle ? limits.idle_timeout : limits.header_timeout);
      if (idle && draining.load(std::memory_order_relaxed)) break;

      boost::system::error_code perr;
      bool sent_continue = false;
      bool closed = false;
      bool admission_checked = false;
      bool refused_at_head = false;  // Handler::Admit said no; resp holds the answer
      while (!parser->is_done()) {
        if (buffer.size() > 0) {
          perr = {};
          size_t n = parser->put(buffer.data(), perr);
          buffer.consume(n);
          if (perr == bhttp::error::need_more) {
            perr = {};
            // Past the header, the parser leaves bytes unconsumed only while
            // it waits for the end of a chunk-size line (with its
            // extensions) or of the trailers: Beast puts no limit on either,
            // so the header limit applies to them here.
            if (parser->is_header_done() && buffer.size() > limits.max_header_bytes) {
              parsed.chunk_framing_too_large = true;
              perr = bhttp::error::header_limit;
              break;
            }
          } else if (perr) {
            break;
          }
          if (parser->is_done()) break;
          if (parser->is_header_done() && !admission_checked) {
            // A body is still to come: the handler may refuse on the header.
            admission_checked = true;
            fill_head();
            resp.Clear();
            if (!ls.config.handler->Admit(req, resp)) {
              refused_at_head = true;
              break;
            }
          }
          if (parser->is_header_done() && parsed.expect_continue && !sent_continue) {
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

      if (!refused_at_head) resp.Clear();
      bool keep_alive = false;
      bool client_closes = false;  // the request itself said close (1.0, Connection: close)
      int version = parsed.version;
      if (refused_at_head) {
        // The answer Admit wrote; the body stays unread and the connection closes.
        ls.requests->Inc();
        resp.close = true;
      } else if (perr) {
        int status = 400;
        common::Counter* counter = ls.rejected_malformed;
        std::string message = "bad request: " + perr.message();
        if (perr == bhttp::error::header_limit) {
          status = 431;
          counter = ls.rejected_header_size;
          message = parsed.chunk_framing_too_large
                        ? "chunk extensions or trailers larger than " +
                              std::to_string(limits.max_header_bytes) + " bytes"
                        : "request header larger than " +
                              std::to_string(limits.max_header_bytes) + " bytes";
        } else if (perr == bhttp::error::bad_transfer_encoding) {
          message = "unsupported Transfer-Encoding (only \"chunked\" is accepted)";
        } else if (perr == bhttp::error::body_limit) {
          status = 413;
          counter = ls.rejected_body_size;
          message =
              "request body larger than " + std::to_string(limits.max_body_bytes) + " bytes";
        }
        counter->Inc();
        common::LogRefusal("http", "refused request from " + req.peer.ToString() + " on " +
                                    ls.display + ": " + message);
        SimpleError(resp, status, message);
        ls.config.handler->ShapeRefusal(status, message, resp);
        resp.close = true;
        // A refused HEAD gets no body either. Beast reports the request line
        // only with the whole header, so a header over the limit is read
        // for its method here.
        resp.head = parsed.method.length > 0
                        ? parsed.View(parsed.method) == "HEAD"
                        : StartsWithHead(std::string_view(
                              static_cast<const char*>(buffer.data().data()), buffer.size()));
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
      if ((!perr || refused_at_head) && req.method == "HEAD") resp.head = true;
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
      if (wrote && (refused_at_head || perr) && !kTls) linger = true;
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
  w.ReturnState(std::move(state));
  w.active.fetch_sub(1, std::memory_order_relaxed);
  ls.gate->Release(GatePeer(peer), ls.max_per_source);
}

Server::Server(ServerOptions options, std::vector<ListenerConfig> listeners,
               common::MetricsRegistry& metrics)
    : impl_(std::make_unique<Impl>(options, metrics)) {
  for (auto& cfg : listeners) {
    auto ls = std::make_unique<ListenerState>();
    ls->config = std::move(cfg);
    const std::string l = "listener=\"" + ls->config.name + "\"";
    ls->requests = &metrics.GetCounter("http_requests_total", "Requests parsed, by listener.", l);
    ls->connections =
        &metrics.GetCounter("http_connections_total", "Connections accepted, by listener.", l);
    const char* kRejected = "http_rejected_total";
    const char* kRejectedHelp = "Requests refused by the HTTP core, by listener and reason.";
    ls->rejected_malformed = &metrics.GetCounter(kRejected, kRejectedHelp, l + ",reason=\"malformed\"");
    ls->rejected_header_size =
        &metrics.GetCounter(kRejected, kRejectedHelp, l + ",reason=\"header_too_large\"");
    ls->rejected_body_size =
        &metrics.GetCounter(kRejected, kRejectedHelp, l + ",reason=\"body_too_large\"");
    ls->timeouts = &metrics.GetCounter(kRejected, kRejectedHelp, l + ",reason=\"timeout\"");
    ls->handler_errors = &metrics.GetCounter("http_handler_errors_total",
                                             "Handler exceptions or unsafe responses.", l);
    const char* kRefused = "http_connections_refused_total";
    const char* kRefusedHelp =
        "Connections closed at accept, by listener and cap (open: all connections; "
        "per_source: from one address).";
    ls->refused_open = &metrics.GetCounter(kRefused, kRefusedHelp, l + ",reason=\"open\"");
    ls->refused_per_source =
        &metrics.GetCounter(kRefused, kRefusedHelp, l + ",reason=\"per_source\"");
    ls->tls_failures = &metrics.GetCounter(kRejected, kRejectedHelp, l + ",reason=\"tls_handshake\"");
    if (ls->config.dedicated_thread) {
      ls->own_gate = std::make_unique<ConnectionGate>(ls->config.limits.max_connections);
      ls->gate = ls->own_gate.get();
    } else {
      ls->gate = &impl_->shared_gate;
    }
    ls->max_per_source = ls->config.endpoint.rfind("unix:", 0) == 0
                             ? 0
                             : ls->config.limits.max_connections_per_source;
    impl_->listeners.push_back(std::move(ls));
  }
}

Server::~Server() {
  Shutdown();
  std::lock_guard<std::mutex> lock(impl_->shutdown_mu);
  if (impl_->shutdown_thread && impl_->shutdown_thread->joinable()) impl_->shutdown_thread->join();
}

common::Status Server::Start() {
  int n = impl_->options.threads;
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < n; ++i) impl_->shared_workers.push_back(std::make_unique<Worker>());

  for (auto& ls : impl_->listeners) {
    if (ls->config.handler == nullptr) {
      return common::InvalidArgument("listener " + ls->config.endpoint + " has no handler");
    }
    std::vector<Worker*> targets;
    if (ls->config.dedicated_thread) {
      impl_->dedicated_workers.push_back(std::make_unique<Worker>());
      impl_->dedicated_workers.back()->background = ls->config.background;
      targets.push_back(impl_->dedicated_workers.back().get());
    } else {
      for (auto& w : impl_->shared_workers) targets.push_back(w.get());
    }
    if (!ls->config.tls_certificate_file.empty()) {
      if (ls->config.endpoint.rfind("unix:", 0) == 0) {
        return common::InvalidArgument("listener " + ls->config.endpoint +
                                       ": TLS is for TCP listeners");
      }
      auto ctx = MakeTlsContext(ls->config);
      if (!ctx.ok()) return ctx.status();
      ls->tls = std::move(*ctx);
    }
    if (ls->config.endpoint.rfind("unix:", 0) == 0) {
      ls->is_unix = true;
      ls->unix_path = ls->config.endpoint.substr(5);
      if (ls->unix_path.empty()) return common::InvalidArgument("empty unix socket path");
      // A unix socket: one acceptor, on the first worker.
      common::Status s = impl_->BindUnix(*ls, *targets.front());
      if (!s.ok()) return s;
    } else {
      auto ep = ParseTcpEndpoint(ls->config.endpoint);
      if (!ep.ok()) return ep.status();
      ls->tcp_endpoint = *ep;
      bool first = true;
      for (Worker* w : targets) {
        common::Status s = impl_->BindTcp(*ls, *w, first);
        if (!s.ok()) return s;
        first = false;
      }
    }
  }
  auto workers = impl_->AllWorkers();
  for (Worker* w : workers) {
    for (auto& [acc, ls] : w->tcp_acceptors) {
      if (ls->tls) {
        // TLS: async_accept (AcceptLoop), no raw-descriptor fast path.
        asio::co_spawn(w->ctx, impl_->AcceptLoop(*acc, *ls, *w), asio::detached);
      } else {
        asio::co_spawn(w->ctx, impl_->TcpAcceptLoop(*acc, *ls, *w), asio::detached);
      }
    }
    for (auto& [acc, ls] : w->unix_acceptors) {
      asio::co_spawn(w->ctx, impl_->AcceptLoop(*acc, *ls, *w), asio::detached);
    }
  }
  for (Worker* w : workers) impl_->StartReaper(*w);
  impl_->started = true;
  return common::Status::Ok();
}

std::vector<std::string> Server::BoundEndpoints() const {
  std::vector<std::string> out;
  for (const auto& ls : impl_->listeners) {
    if (ls->is_unix) {
      out.push_back("unix:" + ls->unix_path);
    } else if (ls->tcp_endpoint.address().is_v6()) {
      out.push_back("[" + ls->tcp_endpoint.address().to_string() + "]:" +
                    std::to_string(ls->tcp_endpoint.port()));
    } else {
      out.push_back(ls->tcp_endpoint.address().to_string() + ":" +
                    std::to_string(ls->tcp_endpoint.port()));
    }
  }
  return out;
}

void Server::Run() {
  auto workers = impl_->AllWorkers();
  for (size_t i = 1; i < workers.size(); ++i) {
    workers[i]->thread = std::thread([w = workers[i]] {
      if (w->background) common::LowerCurrentThreadPriority();
      w->ctx.run();
    });
  }
  if (!workers.empty()) workers[0]->ctx.run();
  for (size_t i = 1; i < workers.size(); ++i) {
    if (workers[i]->thread.joinable()) workers[i]->thread.join();
  }
  for (auto& ls : impl_->listeners) {
    if (ls->is_unix) ::unlink(ls->unix_path.c_str());
  }
}

void Server::Shutdown() {
  if (impl_->draining.exchange(true)) return;
  if (!impl_->started) return;
  auto workers = impl_->AllWorkers();
  // Phase 1: stop accepting; idle connections are closed by each reaper on
  // its next tick; busy ones finish their request with Connection: close.
  for (Worker* w : workers) {
    asio::post(w->ctx, [w] {
      boost::system::error_code ignored;
      for (auto& a : w->tcp_acceptors) a.first->close(ignored);
      for (auto& a : w->unix_acceptors) a.first->close(ignored);
      for (auto& s : w->sessions) {
        if (*s.idle) s.close();
      }
    });
  }
  // Phase 2 after the grace period, or as soon as every connection is gone.
  std::lock_guard<std::mutex> lock(impl_->shutdown_mu);
  impl_->shutdown_thread = std::make_unique<std::thread>([this, workers] {
    const auto until = Clock::now() + impl_->options.shutdown_grace;
    for (;;) {
      int active = 0;
      for (Worker* w : workers) active += w->active.load();
      if (active == 0 || Clock::now() >= until) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    for (Worker* w : workers) {
      asio::post(w->ctx, [w] {
        for (auto& s : w->sessions) s.close();
        if (w->reaper) w->reaper->cancel();
      });
    }
    // Let the closes run, then stop the loops.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (Worker* w : workers) w->ctx.stop();
  });
}

}  // namespace openimds::http
