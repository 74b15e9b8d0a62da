// The request parser: Beast's basic_parser with callbacks that copy into a
// ParsedRequest, and the limits Beast leaves to its user.
#include "http/request_parser.h"

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>

#include "common/http_message.h"
#include "http/wire_format.h"

namespace openimds::http {
namespace {

namespace bhttp = boost::beast::http;

// Body bytes reserved when a Content-Length announces them; a larger body
// grows the buffer as it arrives.
constexpr size_t kReserveBody = 1024 * 1024;

std::string_view SV(boost::beast::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace

bool ParsedRequest::Find(std::string_view name, std::string_view& value) const {
  for (const auto& [n, v] : fields) {
    if (common::EqualsIgnoreCase(View(n), name)) {
      value = View(v);
      return true;
    }
  }
  return false;
}

int ParsedRequest::Count(std::string_view name) const {
  int n = 0;
  for (const auto& f : fields) {
    if (common::EqualsIgnoreCase(View(f.first), name)) ++n;
  }
  return n;
}

int StatusFor(RequestError error) {
  switch (error) {
    case RequestError::kNone:
      return 0;
    case RequestError::kMalformed:
    case RequestError::kBadTransferEncoding:
      return 400;
    case RequestError::kHeaderTooLarge:
    case RequestError::kFramingTooLarge:
      return 431;
    case RequestError::kBodyTooLarge:
      return 413;
  }
  return 400;
}

RequestParser::RequestParser(ParsedRequest& out, const RequestLimits& limits)
    : out_(out), limits_(limits) {
  out_.Clear();
  // Eager: the body is parsed in the same call as the header when it is
  // there, so a small request takes one call.
  eager(true);
  header_limit(static_cast<uint32_t>(limits.max_header_bytes));
  body_limit(limits.max_body_bytes);
}

size_t RequestParser::Feed(std::string_view bytes) {
  ec_t ec;
  const size_t n = put(boost::asio::const_buffer(bytes.data(), bytes.size()), ec);
  if (ec == bhttp::error::need_more) {
    // Past the header, the parser leaves bytes untaken only while it waits
    // for the end of a chunk-size line (with its extensions) or of the
    // trailers: Beast puts no limit on either, so the header limit applies
    // to them here.
    if (is_header_done() && bytes.size() - n > limits_.max_header_bytes) {
      framing_too_large_ = true;
      error_ = RequestError::kFramingTooLarge;
    }
  } else if (ec) {
    beast_error_ = ec;
    if (ec == bhttp::error::header_limit) {
      error_ = framing_too_large_ ? RequestError::kFramingTooLarge : RequestError::kHeaderTooLarge;
    } else if (ec == bhttp::error::bad_transfer_encoding) {
      error_ = RequestError::kBadTransferEncoding;
    } else if (ec == bhttp::error::body_limit) {
      error_ = RequestError::kBodyTooLarge;
    } else {
      error_ = RequestError::kMalformed;
    }
  }
  return n;
}

std::string RequestParser::message() const {
  switch (error_) {
    case RequestError::kNone:
      return {};
    case RequestError::kHeaderTooLarge:
      return "request header larger than " + std::to_string(limits_.max_header_bytes) + " bytes";
    case RequestError::kFramingTooLarge:
      return "chunk extensions or trailers larger than " +
             std::to_string(limits_.max_header_bytes) + " bytes";
    case RequestError::kBadTransferEncoding:
      return "unsupported Transfer-Encoding (only \"chunked\" is accepted)";
    case RequestError::kBodyTooLarge:
      return "request body larger than " + std::to_string(limits_.max_body_bytes) + " bytes";
    case RequestError::kMalformed:
      break;
  }
  return "bad request: " + beast_error_.message();
}

void RequestParser::on_request_impl(bhttp::verb, sv method, sv target, int version, ec_t&) {
  out_.method = out_.Append(SV(method));
  out_.target = out_.Append(SV(target));
  out_.version = version;
}

void RequestParser::on_field_impl(bhttp::field f, sv name, sv value, ec_t&) {
  if (f == bhttp::field::expect && common::EqualsIgnoreCase(SV(value), "100-continue")) {
    out_.expect_continue = true;
  }
  Span n = out_.Append(SV(name));
  Span v = out_.Append(SV(value));
  out_.fields.emplace_back(n, v);
  if (f == bhttp::field::transfer_encoding && transfer_encodings_++ == 0) {
    transfer_encoding_ = v;
  }
}

void RequestParser::on_header_impl(ec_t& ec) {
  if (transfer_encodings_ > 0 &&
      !AcceptableTransferEncoding(transfer_encodings_, out_.View(transfer_encoding_))) {
    ec = bhttp::error::bad_transfer_encoding;
  }
}

void RequestParser::on_body_init_impl(const boost::optional<std::uint64_t>& length, ec_t&) {
  // body_limit() has already refused lengths over the limit. Reserve no more
  // than a first slice up front: the body has not arrived (nor has the
  // handler admitted it) yet.
  if (length) out_.body.reserve(std::min<size_t>(static_cast<size_t>(*length), kReserveBody));
}

size_t RequestParser::on_body_impl(sv body, ec_t&) {
  out_.body.append(body.data(), body.size());
  return body.size();
}

void RequestParser::on_chunk_header_impl(std::uint64_t, sv extensions, ec_t& ec) {
  chunk_extension_bytes_ += extensions.size();
  if (chunk_extension_bytes_ > limits_.max_header_bytes) {
    framing_too_large_ = true;
    ec = bhttp::error::header_limit;
  }
}

size_t RequestParser::on_chunk_body_impl(std::uint64_t, sv body, ec_t&) {
  out_.body.append(body.data(), body.size());
  return body.size();
}

bool IsHeadRequest(const ParsedRequest& parsed, std::string_view unparsed) {
  return parsed.method.length > 0 ? parsed.View(parsed.method) == "HEAD"
                                  : unparsed.substr(0, 5) == "HEAD ";
}

ParseOutcome ParseRequest(std::string_view bytes, const RequestLimits& limits,
                          ParsedRequest& out) {
  ParseOutcome r;
  RequestParser parser(out, limits);
  std::string_view rest = bytes;
  // The session's loop over a buffer that never grows: feed what is left
  // while the parser takes some.
  while (!rest.empty()) {
    const size_t n = parser.Feed(rest);
    rest.remove_prefix(n);
    r.consumed += n;
    if (parser.done() || parser.refused() || n == 0) break;
  }
  if (parser.refused()) {
    r.kind = ParseOutcome::Kind::kRefused;
    r.error = parser.error();
    r.status = parser.status();
    r.message = parser.message();
  } else if (parser.done()) {
    r.kind = ParseOutcome::Kind::kRequest;
    r.keep_alive = parser.keep_alive();
  }
  return r;
}

}  // namespace openimds::http
