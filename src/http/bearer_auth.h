#pragma once

#include <string>

#include "common/metrics.h"
#include "http/handler.h"

namespace openimds::http {

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
