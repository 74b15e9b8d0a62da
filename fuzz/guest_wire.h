#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/server.h"

namespace openimds::fuzz {

// The guest listener's request framing without a socket: the server's own
// parser (http::ParseRequest, http/request_parser.h) with the listener's
// limits, its result copied into owned strings that the target may rewrite.

// One request as the session would hand it to its handler (owned copies).
struct WireRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  int version = 11;
  bool keep_alive = true;
};

struct WireResult {
  enum class Kind {
    kRequest,     // a complete request: `request`
    kRefused,     // the session answers `status` (400/413/431) and closes
    kIncomplete,  // the bytes end inside a request: the session would read on
  };
  Kind kind = Kind::kIncomplete;
  WireRequest request;
  int status = 0;
  std::string message;  // for kRefused, as the session's error body says
  size_t consumed = 0;  // bytes of the input this request took
};

// Parses the first request in `bytes` under `limits` (max_header_bytes,
// max_body_bytes), as the session does with a buffer that holds `bytes`.
WireResult ParseOne(std::string_view bytes, const http::Limits& limits);

}  // namespace openimds::fuzz
