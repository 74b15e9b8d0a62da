#include "client/admin_client.h"

#include <sys/un.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <exception>

#include "http/bearer_auth.h"

namespace openimds::client {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

common::Status BadEndpoint(std::string_view text, std::string_view why) {
  return common::InvalidArgument("admin endpoint \"" + std::string(text) +
                                 "\": " + std::string(why) +
                                 " (expected unix:/path/to/admin.sock or http://127.0.0.1:PORT)");
}

std::string CannotReach(const AdminEndpoint& endpoint, const std::string& why) {
  return "cannot reach admin API at " + endpoint.text + ": " + why +
         " (is `openimds serve` running?)";
}

// Runs `ioc` until every started operation has completed. Operations on a
// beast::basic_stream carry their own deadline (expires_after), so this
// returns once the operation finishes or times out.
void RunAll(net::io_context& ioc) {
  ioc.restart();
  ioc.run();
}

template <class Stream>
common::Result<AdminReply> Exchange(net::io_context& ioc, Stream& stream,
                                    const AdminClient::Options& options,
                                    const AdminEndpoint& endpoint, std::string_view host_header,
                                    const std::string& token, std::string_view method,
                                    std::string_view target,
                                    const std::vector<std::pair<std::string, std::string>>& headers,
                                    std::string_view body, const AdminClient::Progress& progress) {
  http::request<http::empty_body> request;
  request.method_string(method);
  request.target(target);
  request.version(11);
  request.set(http::field::host, host_header);
  request.set(http::field::user_agent, "openimds-cli");
  request.set(http::field::connection, "close");
  for (const auto& [name, value] : headers) request.set(name, value);
  if (!token.empty()) request.set(http::field::authorization, "Bearer " + token);
  const bool sends_body = !body.empty() || method == "PUT" || method == "POST" || method == "PATCH";
  // The body is written by hand below, in chunks, so progress can be shown;
  // the header announces its length.
  if (sends_body) request.set(http::field::content_length, std::to_string(body.size()));

  const std::string where = "admin API at " + endpoint.text;
  error_code write_ec;
  http::request_serializer<http::empty_body> serializer(request);
  beast::get_lowest_layer(stream).expires_after(options.io_timeout);
  http::async_write_header(stream, serializer, [&](error_code ec, size_t) { write_ec = ec; });
  RunAll(ioc);
  if (write_ec) return common::Internal(where + ": sending the request: " + write_ec.message());

  uint64_t sent = 0;
  while (sent < body.size() && !write_ec) {
    const size_t n = std::min<size_t>(std::max<size_t>(options.chunk_bytes, 1), body.size() - sent);
    beast::get_lowest_layer(stream).expires_after(options.io_timeout);
    net::async_write(stream, net::buffer(body.data() + sent, n),
                     [&](error_code ec, size_t) { write_ec = ec; });
    RunAll(ioc);
    if (write_ec) break;
    sent += n;
    if (progress) progress(sent, body.size());
  }

  // Read even after a failed write: a server that refuses a body early (413)
  // answers and closes while the rest is still being sent.
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(options.max_response_bytes);
  if (method == "HEAD") parser.skip(true);
  error_code read_ec;
  beast::get_lowest_layer(stream).expires_after(options.io_timeout);
  http::async_read(stream, buffer, parser, [&](error_code ec, size_t) { read_ec = ec; });
  RunAll(ioc);
  if (read_ec) {
    if (write_ec) return common::Internal(where + ": sending the request: " + write_ec.message());
    if (read_ec == beast::error::timeout) {
      return common::Internal(where + ": no response within " +
                              std::to_string(options.io_timeout.count() / 1000) + " s");
    }
    return common::Internal(where + ": reading the response: " + read_ec.message());
  }
  const auto& response = parser.get();
  AdminReply reply;
  reply.status = static_cast<int>(response.result_int());
  for (const auto& field : response) {
    reply.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  reply.body = response.body();
  return reply;
}

}  // namespace

common::Result<AdminEndpoint> AdminEndpoint::Parse(std::string_view text) {
  AdminEndpoint endpoint;
  endpoint.text = std::string(text);
  if (StartsWith(text, "unix:") || StartsWith(text, "/")) {
    endpoint.kind = Kind::kUnix;
    endpoint.socket_path = std::string(StartsWith(text, "unix:") ? text.substr(5) : text);
    if (endpoint.socket_path.empty()) return BadEndpoint(text, "no socket path after unix:");
    if (endpoint.socket_path.size() >= sizeof(sockaddr_un::sun_path)) {
      return BadEndpoint(text, "socket path longer than " +
                                   std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
    }
    return endpoint;
  }
  endpoint.tls = StartsWith(text, "https://");
  const bool has_scheme = endpoint.tls || StartsWith(text, "http://");
  std::string_view rest = endpoint.tls ? text.substr(8) : has_scheme ? text.substr(7) : text;
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) {
    return BadEndpoint(text, "a path after host:port is not supported");
  }
  std::string_view host;
  std::string_view port;
  bool has_port = false;
  if (StartsWith(rest, "[")) {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return BadEndpoint(text, "missing ']'");
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return BadEndpoint(text, "expected :PORT after ']'");
      port = after.substr(1);
      has_port = true;
    }
  } else {
    const size_t colon = rest.find(':');
    if (colon != std::string_view::npos && rest.find(':', colon + 1) != std::string_view::npos) {
      return BadEndpoint(text, "write an IPv6 address in brackets, e.g. http://[::1]:8170");
    }
    host = rest.substr(0, colon);
    if (colon != std::string_view::npos) {
      port = rest.substr(colon + 1);
      has_port = true;
    }
  }
  if (host.empty()) return BadEndpoint(text, "no host");
  if (!has_port) {
    if (!has_scheme) return BadEndpoint(text, "no port");
    endpoint.port = endpoint.tls ? 443 : 80;
  } else {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      return BadEndpoint(text, "port must be 1..65535");
    }
    endpoint.port = static_cast<uint16_t>(value);
  }
  endpoint.kind = Kind::kTcp;
  endpoint.host = std::string(host);
  return endpoint;
}

std::optional<std::string> AdminReply::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (EqualsIgnoreCase(n, name)) return v;
  }
  return std::nullopt;
}

common::Result<AdminClient> AdminClient::Create(Options options) {
  auto endpoint = AdminEndpoint::Parse(options.endpoint);
  if (!endpoint.ok()) return endpoint.status();
  std::string token;
  if (!options.token_file.empty()) {
    auto read = openimds::http::ReadBearerTokenFile(options.token_file);
    if (!read.ok()) return read.status();
    token = std::move(*read);
  }
  return AdminClient(std::move(options), std::move(*endpoint), std::move(token));
}

common::Result<AdminReply> AdminClient::Call(
    std::string_view method, std::string_view target,
    const std::vector<std::pair<std::string, std::string>>& headers, std::string_view body,
    const Progress& progress) const {
  // Asio and Beast report through error codes here; what remains (allocation
  // failure, a header Beast refuses) is turned into a Status at this boundary.
  try {
    net::io_context ioc;
    error_code ec;
    if (endpoint_.kind == AdminEndpoint::Kind::kUnix) {
      beast::basic_stream<net::local::stream_protocol> stream(ioc);
      stream.expires_after(options_.connect_timeout);
      stream.async_connect(net::local::stream_protocol::endpoint(endpoint_.socket_path),
                           [&](error_code e) { ec = e; });
      RunAll(ioc);
      if (ec) return common::Unavailable(CannotReach(endpoint_, ec.message()));
      return Exchange(ioc, stream, options_, endpoint_, "localhost", token_, method, target,
                      headers, body, progress);
    }

    net::ip::tcp::resolver resolver(ioc);
    net::ip::tcp::resolver::results_type results;
    bool resolved = false;
    resolver.async_resolve(endpoint_.host, std::to_string(endpoint_.port),
                           [&](error_code e, net::ip::tcp::resolver::results_type r) {
                             ec = e;
                             results = std::move(r);
                             resolved = true;
                           });
    ioc.run_for(options_.connect_timeout);
    if (!resolved) {
      resolver.cancel();
      RunAll(ioc);
      return common::Unavailable(CannotReach(endpoint_, "name resolution timed out"));
    }
    if (ec) return common::Unavailable(CannotReach(endpoint_, ec.message()));
    beast::tcp_stream stream(ioc);
    stream.expires_after(options_.connect_timeout);
    stream.async_connect(results, [&](error_code e, const net::ip::tcp::endpoint&) { ec = e; });
    RunAll(ioc);
    if (ec) return common::Unavailable(CannotReach(endpoint_, ec.message()));
    const bool v6 = endpoint_.host.find(':') != std::string::npos;
    const std::string host_header =
        (v6 ? "[" + endpoint_.host + "]" : endpoint_.host) + ":" + std::to_string(endpoint_.port);
    if (!endpoint_.tls) {
      return Exchange(ioc, stream, options_, endpoint_, host_header, token_, method, target,
                      headers, body, progress);
    }
    // https: the server's certificate must chain to a trusted authority and
    // name the host (DNS name or IP address) the endpoint gave.
    net::ssl::context tls(net::ssl::context::tls_client);
    tls.set_verify_mode(net::ssl::verify_peer);
    if (options_.ca_file.empty()) {
      tls.set_default_verify_paths(ec);
    } else {
      tls.load_verify_file(options_.ca_file, ec);
    }
    if (ec) {
      return common::InvalidArgument("admin API at " + endpoint_.text +
                                     ": cannot load the certificate authorities" +
                                     (options_.ca_file.empty() ? "" : " " + options_.ca_file) +
                                     ": " + ec.message());
    }
    tls.set_verify_callback(net::ssl::host_name_verification(endpoint_.host));
    beast::ssl_stream<beast::tcp_stream> secure(std::move(stream), tls);
    if (!v6 && ::SSL_set_tlsext_host_name(secure.native_handle(), endpoint_.host.c_str()) != 1) {
      return common::Internal("admin API at " + endpoint_.text + ": cannot set the TLS server name");
    }
    beast::get_lowest_layer(secure).expires_after(options_.connect_timeout);
    secure.async_handshake(net::ssl::stream_base::client, [&](error_code e) { ec = e; });
    RunAll(ioc);
    if (ec) {
      return common::Unavailable("admin API at " + endpoint_.text + ": TLS handshake failed: " +
                                 ec.message());
    }
    return Exchange(ioc, secure, options_, endpoint_, host_header, token_, method, target,
                    headers, body, progress);
  } catch (const std::exception& e) {
    return common::Internal("admin API at " + endpoint_.text + ": " + e.what());
  }
}

std::string PercentEncode(std::string_view text, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    const bool unreserved = (u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') ||
                            (u >= '0' && u <= '9') || u == '-' || u == '.' || u == '_' ||
                            u == '~' || (keep_slash && u == '/');
    if (unreserved) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xf]);
    }
  }
  return out;
}

}  // namespace openimds::client
