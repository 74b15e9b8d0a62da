// The listener side of the server core: binding, admission at accept and
// the accept loops.
#include "http/listener.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "http/session.h"
#include "http/wire_format.h"

namespace openimds::http {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using unix_socket = asio::local::stream_protocol;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// Connections a listener accepts in a row before it lets them run.
constexpr int kAcceptBatch = 64;

// Counts a new connection in, or says (counter, rate-limited log line) why
// it is to be closed at once.
bool Admit(ListenerState& ls, const common::IpAddress& peer) {
  const auto verdict = ls.gate->Admit(peer, ls.max_per_source);
  if (verdict == ConnectionGate::Verdict::kAdmitted) return true;
  if (verdict == ConnectionGate::Verdict::kTooManyFromSource) {
    ls.refused_per_source->Inc();
    common::LogRefusal("http", "closed a connection from " + peer.ToString() + " on " + ls.display +
                                   ": " + std::to_string(ls.max_per_source) +
                                   (peer.is_v4() ? " connections from that address are open"
                                                 : " connections from that /64 are open"));
  } else {
    ls.refused_open->Inc();
    common::LogRefusal("http", "closed a connection from " + peer.ToString() + " on " +
                                   ls.display + ": " + std::to_string(ls.gate->max_open()) +
                                   " connections are open");
  }
  return false;
}

// True when something accepts connections on the unix socket at `path`
// (or its backlog is full, which only a live listener has): connect(2)
// answers ECONNREFUSED for a socket file whose listener is gone.
bool UnixSocketAnswers(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    ::close(fd);
    return false;
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  const int err = errno;
  ::close(fd);
  if (rc == 0) return true;
  return err == EAGAIN || err == EINPROGRESS;
}

}  // namespace

std::unique_ptr<ListenerState> MakeListenerState(ListenerConfig config,
                                                 common::MetricsRegistry& metrics,
                                                 ConnectionGate& shared_gate) {
  auto ls = std::make_unique<ListenerState>();
  ls->config = std::move(config);
  const std::string l = "listener=\"" + ls->config.name + "\"";
  ls->requests = &metrics.GetCounter("http_requests_total", "Requests parsed, by listener.", l);
  ls->connections =
      &metrics.GetCounter("http_connections_total", "Connections accepted, by listener.", l);
  const char* kRejected = "http_rejected_total";
  const char* kRejectedHelp = "Requests refused by the HTTP core, by listener and reason.";
  ls->rejected_malformed =
      &metrics.GetCounter(kRejected, kRejectedHelp, l + ",reason=\"malformed\"");
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
  ls->tls_failures =
      &metrics.GetCounter(kRejected, kRejectedHelp, l + ",reason=\"tls_handshake\"");
  if (ls->config.dedicated_thread) {
    ls->own_gate = std::make_unique<ConnectionGate>(ls->config.limits.max_connections);
    ls->gate = ls->own_gate.get();
  } else {
    ls->gate = &shared_gate;
  }
  ls->max_per_source = ls->config.endpoint.rfind("unix:", 0) == 0
                           ? 0
                           : ls->config.limits.max_connections_per_source;
  return ls;
}

common::Result<std::unique_ptr<asio::ssl::context>> MakeTlsContext(
    const ListenerConfig& config) {
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

common::Status BindTcp(ListenerState& ls, Worker& w, bool first) {
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

common::Status BindUnix(ListenerState& ls, Worker& w) {
  struct stat st {};
  if (lstat(ls.unix_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return common::Unavailable("cannot listen on " + ls.config.endpoint +
                                 ": path exists and is not a socket");
    }
    // Unlinking a socket that a live process still listens on would take
    // its admin API away without either process noticing: only a socket
    // nobody answers on (left by a process that died) is replaced.
    if (UnixSocketAnswers(ls.unix_path)) {
      return common::Unavailable("cannot listen on " + ls.config.endpoint +
                                 ": address already in use: " + ls.unix_path +
                                 " (another process listens there)");
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

template <typename Acceptor>
asio::awaitable<void> AcceptLoop(Acceptor& acceptor, ListenerState& ls, Worker& w,
                                 const std::atomic<bool>& draining) {
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
        StartSession(TlsSocket(std::move(socket), *ls.tls), peer, ls, w, draining);
        continue;
      }
    }
    if constexpr (std::is_same_v<Acceptor, tcp::acceptor>) {
      StartSession(std::move(socket), peer, ls, w, draining, /*raw_fd=*/-1);
    } else {
      StartSession(std::move(socket), peer, ls, w, draining);
    }
  }
}

// TCP listeners accept with accept4(SOCK_NONBLOCK) themselves instead of
// async_accept: an asio socket is registered with epoll (EPOLL_CTL_ADD) when
// it is created, set non-blocking with an ioctl at its first operation and,
// being "assigned", deregistered (EPOLL_CTL_DEL) before close: three syscalls
// per connection that a connection answered at once never needs. Session
// serves such a connection on the raw descriptor and hands it to asio only
// when it has to wait (see `adopt` there).
asio::awaitable<void> TcpAcceptLoop(tcp::acceptor& acceptor, ListenerState& ls, Worker& w,
                                    const std::atomic<bool>& draining) {
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
        StartSession(tcp::socket(w.ctx), peer, ls, w, draining, fd);
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

template asio::awaitable<void> AcceptLoop(tcp::acceptor&, ListenerState&, Worker&,
                                          const std::atomic<bool>&);
template asio::awaitable<void> AcceptLoop(unix_socket::acceptor&, ListenerState&, Worker&,
                                          const std::atomic<bool>&);

}  // namespace openimds::http
