#include "fuzz/guest_wire.h"

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/asio/buffer.hpp>

#include "common/http_message.h"
#include "http/wire_format.h"

namespace openimds::fuzz {
namespace {

namespace bhttp = boost::beast::http;

std::string_view SV(boost::beast::string_view s) { return std::string_view(s.data(), s.size()); }

// server.cc's RequestParser, writing owned strings instead of arena spans.
class Parser final : public bhttp::basic_parser<true> {
 public:
  Parser(WireRequest& out, size_t framing_limit) : out_(out), framing_limit_(framing_limit) {}

  bool chunk_framing_too_large = false;

 private:
  void on_request_impl(bhttp::verb, boost::beast::string_view method,
                       boost::beast::string_view target, int version,
                       boost::system::error_code&) override {
    out_.method = SV(method);
    out_.target = SV(target);
    out_.version = version;
  }
  void on_response_impl(int, boost::beast::string_view, int, boost::system::error_code&) override {}
  void on_field_impl(bhttp::field f, boost::beast::string_view name,
                     boost::beast::string_view value, boost::system::error_code&) override {
    out_.headers.emplace_back(std::string(SV(name)), std::string(SV(value)));
    if (f == bhttp::field::transfer_encoding && transfer_encodings_++ == 0) {
      transfer_encoding_ = SV(value);
    }
  }
  void on_header_impl(boost::system::error_code& ec) override {
    if (transfer_encodings_ > 0 &&
        !http::AcceptableTransferEncoding(transfer_encodings_, transfer_encoding_)) {
      ec = bhttp::error::bad_transfer_encoding;
    }
  }
  void on_body_init_impl(const boost::optional<std::uint64_t>& length,
                         boost::system::error_code&) override {
    if (length) out_.body.reserve(static_cast<size_t>(*length));
  }
  size_t on_body_impl(boost::beast::string_view body, boost::system::error_code&) override {
    out_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, boost::beast::string_view extensions,
                            boost::system::error_code& ec) override {
    chunk_extension_bytes_ += extensions.size();
    if (chunk_extension_bytes_ > framing_limit_) {
      chunk_framing_too_large = true;
      ec = bhttp::error::header_limit;
    }
  }
  size_t on_chunk_body_impl(std::uint64_t, boost::beast::string_view body,
                            boost::system::error_code&) override {
    out_.body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(boost::system::error_code&) override {}

  WireRequest& out_;
  const size_t framing_limit_;
  size_t chunk_extension_bytes_ = 0;
  int transfer_encodings_ = 0;
  std::string transfer_encoding_;
};

}  // namespace

WireResult ParseOne(std::string_view bytes, const http::Limits& limits) {
  WireResult r;
  Parser parser(r.request, limits.max_header_bytes);
  parser.eager(true);
  parser.header_limit(static_cast<uint32_t>(limits.max_header_bytes));
  parser.body_limit(limits.max_body_bytes);

  boost::system::error_code perr;
  std::string_view buffer = bytes;
  // The session's loop: put what is buffered, consume what the parser took;
  // need_more with bytes left past the header is the chunk-line / trailer
  // case the header limit bounds.
  while (!parser.is_done() && !buffer.empty()) {
    perr = {};
    const size_t n = parser.put(boost::asio::buffer(buffer.data(), buffer.size()), perr);
    buffer.remove_prefix(n);
    r.consumed += n;
    if (perr == bhttp::error::need_more) {
      perr = {};
      if (parser.is_header_done() && buffer.size() > limits.max_header_bytes) {
        parser.chunk_framing_too_large = true;
        perr = bhttp::error::header_limit;
        break;
      }
      if (n == 0) break;  // the rest of the request has not arrived
    } else if (perr) {
      break;
    }
  }
  if (perr) {
    r.kind = WireResult::Kind::kRefused;
    r.status = 400;
    r.message = "bad request: " + perr.message();
    if (perr == bhttp::error::header_limit) {
      r.status = 431;
    } else if (perr == bhttp::error::body_limit) {
      r.status = 413;
    }
    return r;
  }
  if (!parser.is_done()) {
    // The session would read more (or the idle/header deadline would close
    // it); nothing is handled.
    r.kind = WireResult::Kind::kIncomplete;
    return r;
  }
  r.kind = WireResult::Kind::kRequest;
  r.request.keep_alive = parser.keep_alive();
  return r;
}

}  // namespace openimds::fuzz
