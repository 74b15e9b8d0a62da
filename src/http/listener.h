#pragma once

// The listener side of the server core: one listener's state (its config,
// bound socket, counters, admission gate, TLS context), binding it, and the
// accept loops that admit each connection and start its session on a
// worker. Internal to the http module.

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <memory>
#include <string>

#include "common/ip_address.h"
#include "common/metrics.h"
#include "common/result.h"
#include "http/connection_gate.h"
#include "http/server.h"
#include "http/wire_format.h"
#include "http/worker.h"

namespace openimds::http {

using TlsSocket = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;

struct ListenerState {
  ListenerConfig config;
  bool is_unix = false;
  boost::asio::ip::tcp::endpoint tcp_endpoint;  // resolved, with the real port once bound
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
  std::unique_ptr<boost::asio::ssl::context> tls;  // set when the listener speaks TLS
  common::Counter* tls_failures = nullptr;
  size_t max_per_source = 0;  // 0 on unix sockets
};

// The address a connection counts against at the gate (none for unix sockets).
inline common::IpAddress GatePeer(const boost::asio::ip::tcp::endpoint& peer) {
  return ToIpAddress(peer.address());
}
inline common::IpAddress GatePeer(const boost::asio::local::stream_protocol::endpoint&) {
  return {};
}

// The state of the listener `config`, with its counters registered in
// `metrics`; its connections count against `shared_gate` unless it runs on
// a dedicated thread (then against a gate of its own).
std::unique_ptr<ListenerState> MakeListenerState(ListenerConfig config,
                                                 common::MetricsRegistry& metrics,
                                                 ConnectionGate& shared_gate);

// A server context for `config`'s certificate chain and key (PEM): TLS 1.2
// and later, no renegotiation, no compression. InvalidArgument naming the
// file and OpenSSL's reason when either cannot be loaded or they do not match.
common::Result<std::unique_ptr<boost::asio::ssl::context>> MakeTlsContext(
    const ListenerConfig& config);

// Adds an acceptor for the TCP listener `ls` to `w`. The `first` worker's
// binds the one socket (no SO_REUSEPORT: Unavailable when the address is in
// use) and sets ls.tcp_endpoint to the real port; the others accept from
// that socket through descriptors of their own.
common::Status BindTcp(ListenerState& ls, Worker& w, bool first);

// Binds the unix socket listener `ls` on `w`. A socket file that nobody
// answers on is stale and replaced; Unavailable ("address already in use:
// <path>") when a live process listens there, and for any other kind of file.
common::Status BindUnix(ListenerState& ls, Worker& w);

// Accept loops, run on `w` until the acceptor closes or `draining`; each
// admitted connection becomes a session on `w`. TcpAcceptLoop (plain TCP)
// accepts with accept4 and serves on the raw descriptor; AcceptLoop serves
// TLS listeners (with a tcp acceptor) and unix sockets.
boost::asio::awaitable<void> TcpAcceptLoop(boost::asio::ip::tcp::acceptor& acceptor,
                                           ListenerState& ls, Worker& w,
                                           const std::atomic<bool>& draining);
template <typename Acceptor>
boost::asio::awaitable<void> AcceptLoop(Acceptor& acceptor, ListenerState& ls, Worker& w,
                                        const std::atomic<bool>& draining);

}  // namespace openimds::http
