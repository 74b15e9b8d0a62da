#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "common/result.h"
#include "http/connection_gate.h"
#include "http/handler.h"

namespace openimds::http {

// Limits and deadlines of one listener. Every field has a safe default.
struct Limits {
  // Request line + headers. EC2 clients send < 1 KiB; 8 KiB leaves room for
  // long tokens and proxies while refusing header floods (431 beyond).
  size_t max_header_bytes = 8 * 1024;
  // Request body. Guests only PUT an empty token request; the admin listener
  // raises this for imports (413 beyond).
  size_t max_body_bytes = 4 * 1024;
  // The whole request header must arrive within this time once its first
  // byte has (slowloris defence); the body within the same time again.
  std::chrono::milliseconds header_timeout{10'000};
  // A kept-alive connection with no request in flight is closed after this.
  std::chrono::milliseconds idle_timeout{60'000};
  // A response that the peer does not read is abandoned after this.
  std::chrono::milliseconds write_timeout{10'000};
  // Requests served on one connection before it is closed (0 = unlimited).
  uint32_t max_requests_per_connection = 0;
  // Connections open at once from one source address (0 = no cap); more are
  // closed at accept. Guests need a handful; a proxy-mode listener, where
  // every guest arrives from the proxy's address, sets none.
  size_t max_connections_per_source = 0;
  // A dedicated_thread listener's own cap on open connections (0 = none);
  // shared listeners count against ServerOptions::max_connections instead.
  size_t max_connections = 0;
};

// One place to accept connections.
struct ListenerConfig {
  // "127.0.0.1:8169", "[::1]:80", "0.0.0.0:0" (port 0: the kernel picks; read
  // it back with Server::BoundEndpoints), or "unix:/run/openimds/admin.sock".
  std::string endpoint;
  // The tenant network this listener serves (copied into Request::listener_network).
  std::string network;
  // Not owned; must outlive the Server.
  Handler* handler = nullptr;
  Limits limits;
  // Run this listener's connections on a thread of their own instead of the
  // shared per-core I/O threads (the admin API does blocking store writes).
  bool dedicated_thread = false;
  // With dedicated_thread: run that thread below normal CPU priority
  // (common::kBackgroundNice), so the shared guest I/O threads come first.
  bool background = false;
  // Name used in logs and metrics labels ("guest", "admin").
  std::string name = "guest";
  // For unix sockets: file mode after bind.
  uint32_t unix_mode = 0600;
  // TCP only: speak TLS with this certificate chain and private key (PEM
  // files, read at Start; both or neither).
  std::string tls_certificate_file;
  std::string tls_key_file;
};

struct ServerOptions {
  // I/O threads for shared listeners, each with its own io_context, accepting
  // from each TCP listener's one socket (bound exclusively; an address in use
  // fails Start). 0 = one per core.
  int threads = 0;
  // Connections open at once across every shared (guest) listener (0 = no
  // cap). Set it below the descriptor limit with room for the dedicated
  // listeners' own caps, so a guest flood never takes the admin API's
  // descriptors. More are closed at accept.
  size_t max_connections = 0;
  // After Shutdown(): how long in-flight requests may take before connections
  // are closed forcibly.
  std::chrono::milliseconds shutdown_grace{5'000};
};

// The HTTP/1.1 server core: listeners, sessions (keep-alive, pipelining one
// request at a time, deadlines, size limits), graceful shutdown.
// Thread-safety: Start, Run and Shutdown may be called from different threads;
// Shutdown is async-signal-unsafe (call it from a signal-watching thread).
class Server {
 public:
  Server(ServerOptions options, std::vector<ListenerConfig> listeners,
         common::MetricsRegistry& metrics);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds every listener. Unavailable with the endpoint and OS error when a
  // bind fails (address in use, no permission, address not on this host).
  common::Status Start();

  // The bound endpoints in listener order, with real ports ("127.0.0.1:40123").
  std::vector<std::string> BoundEndpoints() const;

  // Runs the I/O threads; returns after Shutdown() has completed.
  void Run();

  // Phase 1: stop accepting, close idle connections, let in-flight requests
  // finish (their responses carry Connection: close). Phase 2, after
  // shutdown_grace: close everything. Idempotent.
  void Shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace openimds::http
