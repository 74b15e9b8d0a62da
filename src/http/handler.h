#pragma once

#include <charconv>
#include <cstdint>
#include <string_view>

#include "common/http_message.h"

namespace openimds::http {

// What a listener hands each parsed request to. Called on an I/O thread, so
// implementations must not block on the network (one that needs an upstream
// answer sets Response::deferred instead, see common::Deferred and
// deferred_wait.h); several threads call Handle concurrently, so
// implementations must be thread-safe.
class Handler {
 public:
  virtual ~Handler() = default;
  // Fills `out` (already cleared) for `request`. Must not throw; an exception
  // that escapes anyway is caught by the session and becomes a 500.
  virtual void Handle(const common::Request& request, common::Response& out) = 0;
  // Called for a request whose body is still to come, once its header has
  // arrived and before the body is read: false refuses it with `out` (then
  // sent with Connection: close, the body never read). For checks that need
  // no body, such as authentication, so a client that would be refused
  // cannot make the server buffer its upload first. `head` has no body.
  virtual bool Admit(const common::Request& /*head*/, common::Response& /*out*/) { return true; }
  // The HTTP core refused a request itself (malformed 400, header 431, body
  // 413; counted and logged there): `out` holds its plain-text answer. A
  // handler whose API words errors otherwise (the admin API's JSON) rewrites
  // the body here; the status stays and the connection closes after it.
  virtual void ShapeRefusal(int /*status*/, std::string_view /*message*/,
                            common::Response& /*out*/) {}
};

// True when `head` says a body follows: a Content-Length other than 0 (one
// that does not parse counts too), or any Transfer-Encoding. The core has
// already refused repeated or conflicting framing headers. For handlers
// whose routes take no body, which refuse such a request in Admit, on the
// header, before the body is read.
inline bool AnnouncesBody(const common::Request& head) {
  if (head.Header("Transfer-Encoding")) return true;
  auto length = head.Header("Content-Length");
  if (!length) return false;
  uint64_t bytes = 0;
  auto [end, ec] = std::from_chars(length->data(), length->data() + length->size(), bytes);
  return ec != std::errc() || end != length->data() + length->size() || bytes != 0;
}

}  // namespace openimds::http
