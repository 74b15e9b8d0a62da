#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/ip_address.h"

namespace openimds::common {

// One request header as views into the connection's read buffer.
struct HeaderField {
  std::string_view name;
  std::string_view value;
};

class Deferred;

// A parsed HTTP request as plain views. It does not own its bytes: every view
// points into the connection's buffer and is valid only while the handler runs.
// No Beast or Asio type leaks past the http module through this struct.
struct Request {
  std::string_view method;  // as sent, e.g. "GET"
  std::string_view target;  // raw request-target, e.g. "/latest/meta-data/?x=1"
  std::string_view path;    // target up to '?', not percent-decoded
  std::string_view query;   // after '?', without it; empty if none
  std::vector<HeaderField> headers;
  std::string_view body;
  int version = 11;  // 10 or 11
  // True when the http core calls the handler a second time for this request
  // because the first call answered with Response::deferred (at most once).
  // A handler that still cannot answer must now fail rather than defer.
  bool resumed = false;
  // On that second call, the Deferred the first call returned (null
  // otherwise): a handler that keeps its result in its own Deferred type
  // reads it back from here.
  std::shared_ptr<const Deferred> resumed_from;

  // Where the request arrived. `listener_network` is the tenant network the
  // guest-facing listener serves (empty on the admin listener).
  IpAddress peer;
  IpAddress local;
  uint16_t local_port = 0;
  std::string_view listener_network;
  // State a handler keeps for the connection this request came on, across
  // its requests (such as a per-instance connection slot): the http core
  // drops it when the connection closes. Null where there is no connection
  // (a handler called directly).
  std::shared_ptr<void>* connection_state = nullptr;

  // Case-insensitive header lookup; the first match, or nullopt.
  std::optional<std::string_view> Header(std::string_view name) const;
  // Number of headers with this name (case-insensitive); used to refuse duplicates.
  int HeaderCount(std::string_view name) const;
};

// A render that waits for something slow (an upstream fetch). A handler that
// cannot answer without blocking starts the work, sets Response::deferred and
// returns; the http core then parks that one request without blocking its
// thread and calls the handler again (Request::resumed) once the Deferred is
// ready or MaxWait() has passed. Implementations are thread-safe.
class Deferred {
 public:
  virtual ~Deferred() = default;
  // Calls `ready` exactly once, on any thread, once the result is available;
  // at once (inside this call) if it already is. `ready` must be cheap and
  // must not block (it typically posts to an executor). A Deferred whose
  // answer is due only once MaxWait() has passed (an answer held back on
  // purpose) may never call it: the caller's wait ends at MaxWait() anyway.
  virtual void OnReady(std::function<void()> ready) = 0;
  // The longest the caller should wait before calling the handler again.
  virtual std::chrono::milliseconds MaxWait() const = 0;
};

// A response as a plain value. The http core keeps one per connection and
// calls Clear() between requests so string capacity is reused (no allocation
// per request on the hot path).
struct Response {
  int status = 200;
  // Must point to storage that outlives the response (a literal in practice).
  std::string_view content_type = "text/plain";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  // If set, the IP TTL / IPv6 hop limit with which this response must leave
  // (IMDSv2 token PUT); the http core restores the default afterwards.
  std::optional<int> ip_ttl;
  // Close the connection after this response.
  bool close = false;
  // HEAD: send headers with the body's Content-Length but no body.
  bool head = false;
  // Set by a handler that cannot answer yet (see Deferred); the rest of the
  // response is then ignored. Null on every ordinary response, so clearing
  // it costs no atomic operation.
  std::shared_ptr<Deferred> deferred;

  void Clear() {
    status = 200;
    content_type = "text/plain";
    body.clear();
    headers.clear();
    ip_ttl.reset();
    close = false;
    head = false;
    if (deferred) deferred.reset();
  }
  void AddHeader(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
  }
};

// ASCII case-insensitive equality (HTTP header names, tokens).
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

}  // namespace openimds::common
