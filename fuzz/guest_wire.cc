#include "fuzz/guest_wire.h"

#include "http/request_parser.h"

namespace openimds::fuzz {

WireResult ParseOne(std::string_view bytes, const http::Limits& limits) {
  WireResult r;
  http::ParsedRequest parsed;
  const http::ParseOutcome o = http::ParseRequest(
      bytes, http::RequestLimits{limits.max_header_bytes, limits.max_body_bytes}, parsed);
  r.consumed = o.consumed;
  switch (o.kind) {
    case http::ParseOutcome::Kind::kRefused:
      r.kind = WireResult::Kind::kRefused;
      r.status = o.status;
      r.message = o.message;
      return r;
    case http::ParseOutcome::Kind::kIncomplete:
      // The session would read more (or the idle/header deadline would
      // close it); nothing is handled.
      r.kind = WireResult::Kind::kIncomplete;
      return r;
    case http::ParseOutcome::Kind::kRequest:
      break;
  }
  r.kind = WireResult::Kind::kRequest;
  r.request.method = parsed.View(parsed.method);
  r.request.target = parsed.View(parsed.target);
  r.request.headers.reserve(parsed.fields.size());
  for (const auto& [n, v] : parsed.fields) {
    r.request.headers.emplace_back(std::string(parsed.View(n)), std::string(parsed.View(v)));
  }
  r.request.body = std::move(parsed.body);
  r.request.version = parsed.version;
  r.request.keep_alive = o.keep_alive;
  return r;
}

}  // namespace openimds::fuzz
