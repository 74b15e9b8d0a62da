#pragma once

#include <string>

#include "common/metrics.h"
#include "common/result.h"
#include "http/handler.h"

namespace openimds::http {

// Reads the admin API's bearer token from `path`, for `serve
// --admin-token-file` and the `openimds instance --token-file` client alike:
// the rules of common::ReadSecretFile (mode 0600 or 0400, owner, size,
// whitespace, at least 16 bytes) and their errors, then InvalidArgument
// unless the token is one word of printable ASCII (it travels in an HTTP
// header). Anyone who can read the file can rewrite every instance.
common::Result<std::string> ReadBearerTokenFile(const std::string& path);

// Wraps a handler so that only requests with `Authorization: Bearer <token>`
// reach it (the admin API on TCP). Everything else gets 401 with a
// WWW-Authenticate header, a counter and a log line. The comparison takes
// time independent of where the tokens differ. Thread-safe.
class BearerAuthHandler final : public Handler {
 public:
  // `token` must not be empty.
  BearerAuthHandler(Handler& inner, std::string token, common::MetricsRegistry& metrics);
  void Handle(const common::Request& request, common::Response& out) override;
  // The same check on the header alone: an upload without the token is
  // refused before its body is read.
  bool Admit(const common::Request& head, common::Response& out) override;
  void ShapeRefusal(int status, std::string_view message, common::Response& out) override {
    inner_.ShapeRefusal(status, message, out);
  }

 private:
  bool Check(const common::Request& request, common::Response& out);

  Handler& inner_;
  const std::string token_;
  common::Counter& rejected_;
};

}  // namespace openimds::http
