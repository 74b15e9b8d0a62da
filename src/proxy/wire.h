#pragma once

// HTTP/1.1 wire helpers shared by the proxy's two sides: incremental request
// and response parsers on Beast's basic_parser that copy every piece into
// per-connection storage whose capacity is reused, so a kept-alive
// connection parses without allocating; and the small formatting pieces of a
// response head. Internal to the proxy module (no Beast type leaves it).

#include <boost/beast/http/basic_parser.hpp>
#include <cstdint>
#include <limits>
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

// Storage for one parsed message; Clear() keeps capacity.
struct ParsedMessage {
  std::string arena;  // start line pieces, header names and values, back to back
  Span method, target, reason;
  int status = 0;    // responses
  int version = 11;  // 10 or 11
  std::vector<std::pair<Span, Span>> fields;
  std::string body;
  bool expect_continue = false;  // requests: "Expect: 100-continue"
  // Bytes of chunk extensions seen so far, and whether they or the trailers
  // went past the framing limit (Beast bounds neither).
  size_t chunk_extension_bytes = 0;
  bool chunk_framing_too_large = false;
  // Requests: Transfer-Encoding headers seen, and the first one's value.
  int transfer_encodings = 0;
  Span transfer_encoding;

  void Clear() {
    arena.clear();
    fields.clear();
    body.clear();
    status = 0;
    expect_continue = false;
    chunk_extension_bytes = 0;
    chunk_framing_too_large = false;
    transfer_encodings = 0;
    transfer_encoding = Span();
  }
  Span Append(std::string_view s) {
    Span sp{static_cast<uint32_t>(arena.size()), static_cast<uint32_t>(s.size())};
    arena.append(s.data(), s.size());
    return sp;
  }
  std::string_view View(Span s) const { return std::string_view(arena).substr(s.offset, s.length); }
  // First header with this name (case-insensitive), or empty view + false.
  bool Find(std::string_view name, std::string_view& value) const;
  int Count(std::string_view name) const;
};

// Fills a ParsedMessage from a request (isRequest = true) or a response.
template <bool isRequest>
class MessageParser final : public boost::beast::http::basic_parser<isRequest> {
 public:
  // `framing_limit`: the most bytes of chunk extensions one message may carry
  // (the header limit where the peer is untrusted; the trailers are bounded
  // by the read loop).
  explicit MessageParser(ParsedMessage& out,
                         size_t framing_limit = std::numeric_limits<size_t>::max())
      : out_(out), framing_limit_(framing_limit) {}

 private:
  using sv = boost::beast::string_view;
  using ec_t = boost::system::error_code;
  static std::string_view SV(sv s) { return std::string_view(s.data(), s.size()); }

  void on_request_impl(boost::beast::http::verb, sv method, sv target, int version,
                       ec_t&) override {
    out_.method = out_.Append(SV(method));
    out_.target = out_.Append(SV(target));
    out_.version = version;
  }
  void on_response_impl(int code, sv reason, int version, ec_t&) override {
    out_.status = code;
    out_.reason = out_.Append(SV(reason));
    out_.version = version;
  }
  void on_field_impl(boost::beast::http::field f, sv name, sv value, ec_t&) override;
  void on_header_impl(ec_t& ec) override {
    if constexpr (isRequest) {
      if (out_.transfer_encodings > 0 &&
          !http::AcceptableTransferEncoding(out_.transfer_encodings,
                                            out_.View(out_.transfer_encoding))) {
        ec = boost::beast::http::error::bad_transfer_encoding;
      }
    }
  }
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, ec_t&) override {
    // body_limit() has already refused lengths over the limit.
    if (length) out_.body.reserve(static_cast<size_t>(*length));
  }
  size_t on_body_impl(sv body, ec_t&) override {
    out_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, sv extensions, ec_t& ec) override {
    out_.chunk_extension_bytes += extensions.size();
    if (out_.chunk_extension_bytes > framing_limit_) {
      out_.chunk_framing_too_large = true;
      ec = boost::beast::http::error::header_limit;
    }
  }
  size_t on_chunk_body_impl(std::uint64_t, sv body, ec_t&) override {
    out_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(ec_t&) override {}

  ParsedMessage& out_;
  const size_t framing_limit_;
};

using RequestParser = MessageParser<true>;
using ResponseParser = MessageParser<false>;

// Shared with the server core.
using http::AppendNumber;
using http::HttpDate;
using http::ReasonPhrase;

// True if the value may be written into a header line as is.
bool SafeHeaderText(std::string_view s);

// ASCII case-insensitive prefix test.
bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix);

}  // namespace openimds::proxy
