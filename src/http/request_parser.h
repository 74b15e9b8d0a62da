#pragma once

// The one HTTP/1.1 request parser of the project: the guest listeners of
// `openimds serve` (session.cc), the guest side of `openimds proxy` and the
// guest_request fuzz target all frame requests with it. Socket-free: the
// caller feeds it the bytes it has buffered and learns how many it took,
// whether the request is complete, or why it is refused (status and reason).
//
// Rules it enforces beyond Beast's grammar:
//   - the request line and headers within RequestLimits::max_header_bytes
//     (431); chunk extensions and the trailers within the same limit, which
//     Beast 1.81 does not bound (431);
//   - the body within RequestLimits::max_body_bytes, announced or chunked
//     (413); 0 for a listener that takes no body;
//   - Transfer-Encoding: none, or exactly one header naming just "chunked"
//     (400, see AcceptableTransferEncoding); never together with a
//     Content-Length (400), nor two Content-Lengths that differ (400).
// Every piece of the request is copied into a ParsedRequest whose capacity is
// reused across requests, so a kept-alive connection parses without
// allocating.

#include <boost/beast/http/basic_parser.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace openimds::http {

// Size limits of one request.
struct RequestLimits {
  // Request line + headers; also the most bytes of chunk extensions (summed
  // over the request) and of one pending chunk-size line or trailer part.
  // The guest listener's default: Limits::max_header_bytes (server.h).
  size_t max_header_bytes = 8 * 1024;
  // Body bytes, announced by Content-Length or summed over the chunks.
  // The guest listener's default: Limits::max_body_bytes (server.h).
  size_t max_body_bytes = 4 * 1024;
};

// A slice of ParsedRequest::arena.
struct Span {
  uint32_t offset = 0;
  uint32_t length = 0;
};

// One parsed request. Clear() keeps the capacity of every buffer.
// Not thread-safe; one per connection.
struct ParsedRequest {
  std::string arena;  // method, target, header names and values, back to back
  Span method, target;
  std::vector<std::pair<Span, Span>> fields;  // (name, value) in arrival order
  std::string body;                           // de-chunked
  int version = 11;                           // 10 or 11
  bool expect_continue = false;               // "Expect: 100-continue"

  void Clear() {
    arena.clear();
    // The spans too: a request refused before its request line parsed must
    // not show the last request's method (IsHeadRequest).
    method = target = Span();
    fields.clear();
    body.clear();
    version = 11;
    expect_continue = false;
  }
  Span Append(std::string_view s) {
    Span sp{static_cast<uint32_t>(arena.size()), static_cast<uint32_t>(s.size())};
    arena.append(s.data(), s.size());
    return sp;
  }
  std::string_view View(Span s) const { return std::string_view(arena).substr(s.offset, s.length); }
  // The first header named `name` (ASCII case-insensitive): true and its
  // value in `value`, or false.
  bool Find(std::string_view name, std::string_view& value) const;
  // How many headers are named `name` (ASCII case-insensitive).
  int Count(std::string_view name) const;
};

// Why a request was refused.
enum class RequestError {
  kNone,
  kMalformed,                // 400: Beast's grammar, Content-Length rules, ...
  kBadTransferEncoding,      // 400: a coding other than one plain "chunked"
  kHeaderTooLarge,           // 431: request line + headers over the limit
  kFramingTooLarge,          // 431: chunk extensions or trailers over the limit
  kBodyTooLarge,             // 413: body over the limit
};

// The status a refusal is answered with: 400, 413 or 431 (0 for kNone).
int StatusFor(RequestError error);

// Parses one request into a ParsedRequest. Make one per request (cheap: no
// allocation); feed it until done() or refused().
class RequestParser final : private boost::beast::http::basic_parser<true> {
 public:
  // Clears `out`, which must outlive the parser and is filled as bytes come.
  RequestParser(ParsedRequest& out, const RequestLimits& limits);

  // Parses what it can of `bytes` (everything the caller holds unparsed,
  // starting with the bytes not taken by the previous call) and returns how
  // many it took; the caller drops those and keeps the rest. Afterwards:
  // done(), refused(), or neither: more bytes are needed (when it took some
  // and bytes remain, call again before reading more). Not to be called once
  // done() or refused().
  size_t Feed(std::string_view bytes);

  // The request line and every header have arrived (body may follow).
  bool header_done() const { return is_header_done(); }
  // The whole request has arrived: `out` holds it.
  bool done() const { return is_done(); }
  bool refused() const { return error_ != RequestError::kNone; }
  // After done(): whether the client lets the connection stay open
  // (HTTP/1.1 without "Connection: close", or 1.0 with keep-alive).
  bool keep_alive() const { return basic_parser::keep_alive(); }

  RequestError error() const { return error_; }
  // After refused(): the status (400, 413 or 431) and a sentence for the
  // error body and the log line, e.g. "request header larger than 8192 bytes".
  int status() const { return StatusFor(error_); }
  std::string message() const;

 private:
  using sv = boost::beast::string_view;
  using ec_t = boost::system::error_code;

  void on_request_impl(boost::beast::http::verb, sv method, sv target, int version,
                       ec_t&) override;
  void on_response_impl(int, sv, int, ec_t&) override {}
  void on_field_impl(boost::beast::http::field f, sv name, sv value, ec_t&) override;
  void on_header_impl(ec_t& ec) override;
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, ec_t&) override;
  size_t on_body_impl(sv body, ec_t&) override;
  void on_chunk_header_impl(std::uint64_t, sv extensions, ec_t& ec) override;
  size_t on_chunk_body_impl(std::uint64_t, sv body, ec_t&) override;
  void on_finish_impl(ec_t&) override {}

  ParsedRequest& out_;
  const RequestLimits limits_;
  // Bytes of chunk extensions seen so far, and whether they or the trailers
  // went past the header limit.
  size_t chunk_extension_bytes_ = 0;
  bool framing_too_large_ = false;
  // Transfer-Encoding headers seen, and the first one's value.
  int transfer_encodings_ = 0;
  Span transfer_encoding_;
  RequestError error_ = RequestError::kNone;
  ec_t beast_error_;  // for kMalformed's message
};

// Whether a refused request was a HEAD (its answer then carries no body).
// Beast reports the request line once all of it has arrived; for one that
// never did (a request line over the header limit) the method is read from
// `unparsed`, the bytes the parser did not take.
bool IsHeadRequest(const ParsedRequest& parsed, std::string_view unparsed);

// The first request in `bytes`, parsed as a session parses a buffer that
// holds exactly `bytes` and never receives more.
struct ParseOutcome {
  enum class Kind {
    kRequest,     // complete: in the ParsedRequest
    kRefused,     // `error`, answered with `status` and `message`
    kIncomplete,  // the bytes end inside the request
  };
  Kind kind = Kind::kIncomplete;
  size_t consumed = 0;  // bytes the request took (kRequest), or the parser took
  bool keep_alive = false;  // kRequest: see RequestParser::keep_alive
  RequestError error = RequestError::kNone;
  int status = 0;
  std::string message;
};
ParseOutcome ParseRequest(std::string_view bytes, const RequestLimits& limits,
                          ParsedRequest& out);

}  // namespace openimds::http
