#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace openimds::client {

// Where the admin API listens.
struct AdminEndpoint {
  enum class Kind { kUnix, kTcp };
  Kind kind = Kind::kUnix;
  std::string socket_path;  // kUnix: file system path of the socket
  std::string host;         // kTcp: "127.0.0.1", "::1" (no brackets) or a host name
  uint16_t port = 0;        // kTcp
  bool tls = false;         // kTcp: https://
  std::string text;         // as given, for messages

  // Accepts "unix:/run/openimds/admin.sock" (relative paths too: "unix:./a.sock"),
  // "http://127.0.0.1:8170", "http://[::1]:8170", "http://localhost" (port 80),
  // "https://admin.example:8170" (TLS; port 443 when none), an optional
  // trailing "/" after the authority, and "127.0.0.1:8170" / "[::1]:8170"
  // (http implied, as `openimds serve --admin` spells it). InvalidArgument
  // for anything else.
  static common::Result<AdminEndpoint> Parse(std::string_view text);
};

// One HTTP response as the admin API sent it.
struct AdminReply {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // Case-insensitive lookup of the first header named `name`.
  std::optional<std::string> Header(std::string_view name) const;
};

// A synchronous HTTP/1.1 client for the admin API (Boost.Beast), one
// connection per call. Used by `openimds instance ...`.
// Thread-compatible: distinct objects may be used from distinct threads.
class AdminClient {
 public:
  struct Options {
    // See AdminEndpoint::Parse.
    std::string endpoint = "unix:/run/openimds/admin.sock";
    // File holding the bearer token (see http::ReadBearerTokenFile). Empty: no
    // Authorization header (what a unix socket listener expects).
    std::string token_file;
    // https: PEM file of the certificate authorities that may have signed
    // the server's certificate (its host name is checked too). Empty: the
    // system's trust store.
    std::string ca_file;
    // Connecting, including name resolution for a TCP host name.
    std::chrono::milliseconds connect_timeout{5'000};
    // Each step after connecting: sending the headers, each body chunk, and
    // the whole response (which includes the server's work: an import of tens of
    // thousands of instances is one transaction, so this is generous).
    std::chrono::milliseconds io_timeout{300'000};
    // Largest response body accepted (a list of every instance can be large).
    uint64_t max_response_bytes = 1024ull * 1024 * 1024;
    // Request bodies are written in chunks of this size, with a progress
    // callback after each.
    size_t chunk_bytes = 256 * 1024;
  };

  // Called after each body chunk is written: bytes sent so far, total bytes.
  using Progress = std::function<void(uint64_t sent, uint64_t total)>;

  // Parses the endpoint and reads the token file; the errors of
  // AdminEndpoint::Parse and http::ReadBearerTokenFile.
  static common::Result<AdminClient> Create(Options options);

  // Sends one request and returns the response, whatever its status.
  // `target` is the request-target ("/v1/instances?network=a"), already
  // percent-encoded. `headers` are added as given; Host, Content-Length,
  // Authorization, User-Agent and Connection are set by the client.
  // Unavailable: cannot connect ("cannot reach admin API at unix:/x: No such
  //   file or directory (is `openimds serve` running?)") or connect timed out.
  // Internal: the connection failed after connecting (reset, timeout, a reply
  //   that is not HTTP or larger than max_response_bytes).
  common::Result<AdminReply> Call(std::string_view method, std::string_view target,
                                  const std::vector<std::pair<std::string, std::string>>& headers,
                                  std::string_view body, const Progress& progress = {}) const;

  const AdminEndpoint& endpoint() const { return endpoint_; }

 private:
  AdminClient(Options options, AdminEndpoint endpoint, std::string token)
      : options_(std::move(options)), endpoint_(std::move(endpoint)), token_(std::move(token)) {}

  Options options_;
  AdminEndpoint endpoint_;
  std::string token_;  // empty: none
};

// Percent-encodes everything but RFC 3986 unreserved characters (and, when
// `keep_slash`, '/'), for building targets from ids, paths and query values.
std::string PercentEncode(std::string_view text, bool keep_slash = false);

}  // namespace openimds::client
