#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace openimds::http {

// Limits of one HttpClient. Every field has a safe default.
struct HttpClientOptions {
  // Name resolution plus TCP connect must finish within this time.
  std::chrono::milliseconds connect_timeout{5'000};
  // Once connected, writing the request and reading the whole response must
  // finish within this time. Stricter than python-requests' read timeout
  // (which bounds each gap between bytes): a slow-dripping peer cannot hold
  // an exchange open indefinitely.
  std::chrono::milliseconds read_timeout{5'000};
  // Status line + headers of a response (kTooLarge beyond).
  size_t max_response_header_bytes = 16 * 1024;
  // Response body (kTooLarge beyond, whether announced by Content-Length or
  // found while reading).
  size_t max_response_body_bytes = 1024 * 1024;
  // Exchanges in progress at once; more fail at once with kOverloaded rather
  // than opening an unbounded number of sockets.
  size_t max_in_flight = 256;
};

// Why an exchange produced no HTTP response. Stable names (ClientErrorName)
// are used as metric labels by callers.
enum class ClientError {
  kNone = 0,
  kBadUrl,          // "bad_url": not http://host[:port]/path (https is not supported)
  kResolve,         // "resolve": the host name does not resolve
  kConnect,         // "connect": refused, unreachable, reset before a response
  kConnectTimeout,  // "connect_timeout": resolve + connect exceeded connect_timeout
  kReadTimeout,     // "read_timeout": the response did not complete within read_timeout
  kTooLarge,        // "too_large": response header or body over the limits
  kProtocol,        // "protocol": not a valid HTTP/1.x response
  kOverloaded,      // "overloaded": max_in_flight exchanges already running
};
std::string_view ClientErrorName(ClientError error);

// One outgoing request. The URL must be http://HOST[:PORT][/PATH][?QUERY];
// HOST is a name, an IPv4 address or a bracketed IPv6 address. Host,
// Content-Length and Connection: close are added by the client.
struct ClientRequest {
  std::string method = "POST";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// The outcome of one exchange: either an HTTP response (error == kNone, any
// status code) or an error with a human-readable detail for logs.
struct ClientResponse {
  ClientError error = ClientError::kNone;
  std::string detail;
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  bool ok() const { return error == ClientError::kNone; }
  // Case-insensitive; the first match, or nullopt.
  std::optional<std::string_view> Header(std::string_view name) const;
};

// A small asynchronous HTTP/1.1 client over plain TCP (no TLS) on a thread
// of its own, for calls to deployment services (OpenStack DynamicJSON
// vendordata targets). One connection per exchange (Connection: close).
//
// Thread-safety: Send may be called from any thread. Callbacks run on the
// client's own thread, never inside Send, so a caller may hold its own lock
// around Send; they must not block. Destruction stops the thread: exchanges
// still running are abandoned and their callbacks are never called.
class HttpClient {
 public:
  using Callback = std::function<void(ClientResponse)>;

  explicit HttpClient(HttpClientOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Starts `request`; `done` is called exactly once with the outcome (unless
  // the client is destroyed first).
  void Send(ClientRequest request, Callback done);

  // Blocking convenience over Send, for tools and tests. Never call it on the
  // client's own thread (from a callback).
  ClientResponse SendAndWait(ClientRequest request);

  // OK when `url` is a URL Send accepts; InvalidArgument naming the problem
  // (https, user info, no host, bad port) otherwise. For config validation.
  static common::Status ValidateUrl(std::string_view url);

  const HttpClientOptions& options() const { return options_; }

 private:
  struct Impl;
  const HttpClientOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace openimds::http
