#pragma once

// HTTP/1.1 wire helpers of the proxy: the incremental parser of upstream
// responses, on Beast's basic_parser, that copies every piece into
// per-connection storage whose capacity is reused, so a kept-alive
// connection parses without allocating; and the small formatting pieces of a
// response head. Guest requests are parsed by the server core's parser
// (http/request_parser.h). Internal to the proxy module (no Beast type
// leaves it).

#include <boost/beast/http/basic_parser.hpp>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/wire_format.h"

namespace openimds::proxy {

// A slice of an arena string.
struct Span {
  uint32_t offset = 0;
  uint32_t length = 0;
};

// Storage for one parsed upstream response; Clear() keeps capacity.
struct ParsedMessage {
  std::string arena;  // reason phrase, header names and values, back to back
  Span reason;
  int status = 0;
  int version = 11;  // 10 or 11
  std::vector<std::pair<Span, Span>> fields;
  std::string body;

  void Clear() {
    arena.clear();
    fields.clear();
    body.clear();
    status = 0;
  }
  Span Append(std::string_view s) {
    Span sp{static_cast<uint32_t>(arena.size()), static_cast<uint32_t>(s.size())};
    arena.append(s.data(), s.size());
    return sp;
  }
  std::string_view View(Span s) const { return std::string_view(arena).substr(s.offset, s.length); }
};

// Fills a ParsedMessage from an upstream's response. The upstream is trusted
// for framing (Beast's grammar and the caller's header and body limits
// apply; chunk extensions and trailers are not bounded further).
class ResponseParser final : public boost::beast::http::basic_parser<false> {
 public:
  explicit ResponseParser(ParsedMessage& out) : out_(out) {}

 private:
  using sv = boost::beast::string_view;
  using ec_t = boost::system::error_code;
  static std::string_view SV(sv s) { return std::string_view(s.data(), s.size()); }

  void on_request_impl(boost::beast::http::verb, sv, sv, int, ec_t&) override {}
  void on_response_impl(int code, sv reason, int version, ec_t&) override {
    out_.status = code;
    out_.reason = out_.Append(SV(reason));
    out_.version = version;
  }
  void on_field_impl(boost::beast::http::field, sv name, sv value, ec_t&) override {
    Span n = out_.Append(SV(name));
    Span v = out_.Append(SV(value));
    out_.fields.emplace_back(n, v);
  }
  void on_header_impl(ec_t&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, ec_t&) override {
    // body_limit() has already refused lengths over the limit.
    if (length) out_.body.reserve(static_cast<size_t>(*length));
  }
  size_t on_body_impl(sv body, ec_t&) override {
    out_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, sv, ec_t&) override {}
  size_t on_chunk_body_impl(std::uint64_t, sv body, ec_t&) override {
    out_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(ec_t&) override {}

  ParsedMessage& out_;
};

// Shared with the server core.
using http::AppendNumber;
using http::HttpDate;
using http::ReasonPhrase;

// True if the value may be written into a header line as is.
bool SafeHeaderText(std::string_view s);

// ASCII case-insensitive prefix test.
bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix);

}  // namespace openimds::proxy
