#include "http/http_client.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/parse.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/http_message.h"

namespace openimds::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// The parts of an http:// URL the exchange needs.
struct Target {
  std::string host;  // name or address, IPv6 without brackets
  uint16_t port = 80;
  std::string host_header;  // as written in the URL ("[::1]:9000")
  std::string path_and_query;
};

common::Status ParseTarget(std::string_view url, Target& out) {
  auto parsed = boost::urls::parse_absolute_uri(boost::core::string_view(url.data(), url.size()));
  if (!parsed) {
    return common::InvalidArgument("not an absolute URL: " + std::string(url));
  }
  const auto& u = *parsed;
  if (u.scheme() != "http") {
    // TLS would need certificate handling this client does not have; say so
    // instead of sending a plaintext request to an https endpoint.
    return common::InvalidArgument("only http:// URLs are supported (got " +
                                   std::string(u.scheme()) + "://)");
  }
  if (u.has_userinfo()) return common::InvalidArgument("user info in URLs is not supported");
  switch (u.host_type()) {
    case boost::urls::host_type::ipv4:
    case boost::urls::host_type::ipv6:
    case boost::urls::host_type::name:
      break;
    default:
      return common::InvalidArgument("URL has no usable host: " + std::string(url));
  }
  out.host = u.host_address();
  if (out.host.empty()) return common::InvalidArgument("URL has no host: " + std::string(url));
  if (u.has_port()) {
    const auto p = u.port();
    unsigned long n = 0;
    if (p.empty() || p.size() > 5)
      return common::InvalidArgument("bad port in " + std::string(url));
    for (char c : p) {
      if (c < '0' || c > '9') return common::InvalidArgument("bad port in " + std::string(url));
      n = n * 10 + static_cast<unsigned long>(c - '0');
    }
    if (n == 0 || n > 65535) return common::InvalidArgument("bad port in " + std::string(url));
    out.port = static_cast<uint16_t>(n);
  }
  out.host_header = u.encoded_host_and_port();
  out.path_and_query = u.encoded_target();
  if (out.path_and_query.empty() || out.path_and_query[0] != '/') {
    out.path_and_query.insert(0, "/");
  }
  return common::Status::Ok();
}

ClientResponse Fail(ClientError error, std::string detail) {
  ClientResponse r;
  r.error = error;
  r.detail = std::move(detail);
  return r;
}

}  // namespace

std::string_view ClientErrorName(ClientError error) {
  switch (error) {
    case ClientError::kNone:
      return "none";
    case ClientError::kBadUrl:
      return "bad_url";
    case ClientError::kResolve:
      return "resolve";
    case ClientError::kConnect:
      return "connect";
    case ClientError::kConnectTimeout:
      return "connect_timeout";
    case ClientError::kReadTimeout:
      return "read_timeout";
    case ClientError::kTooLarge:
      return "too_large";
    case ClientError::kProtocol:
      return "protocol";
    case ClientError::kOverloaded:
      return "overloaded";
  }
  return "unknown";
}

std::optional<std::string_view> ClientResponse::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (common::EqualsIgnoreCase(n, name)) return std::string_view(v);
  }
  return std::nullopt;
}

struct HttpClient::Impl {
  explicit Impl(const HttpClientOptions& o) : options(o), work(asio::make_work_guard(ctx)) {}

  asio::awaitable<ClientResponse> Exchange(const ClientRequest& request);
  asio::awaitable<ClientResponse> Connect(beast::tcp_stream& stream, const Target& target);

  const HttpClientOptions& options;
  asio::io_context ctx{1};
  asio::executor_work_guard<asio::io_context::executor_type> work;
  std::atomic<size_t> in_flight{0};
  std::thread thread;
};

asio::awaitable<ClientResponse> HttpClient::Impl::Connect(beast::tcp_stream& stream,
                                                          const Target& target) {
  const auto started = std::chrono::steady_clock::now();
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(target.host, ec);
  std::vector<tcp::endpoint> endpoints;
  if (!ec) {
    endpoints.emplace_back(address, target.port);
  } else {
    // The resolver has no deadline of its own: a timer cancels it. Both are
    // shared with the timer's handler, which may run after this frame moved on.
    auto resolver = std::make_shared<tcp::resolver>(ctx);
    auto timer = std::make_shared<asio::steady_timer>(ctx, options.connect_timeout);
    timer->async_wait([resolver](boost::system::error_code wec) {
      if (!wec) resolver->cancel();
    });
    auto [rec, results] =
        co_await resolver->async_resolve(target.host, std::to_string(target.port), kTuple);
    const bool expired = timer->expiry() <= std::chrono::steady_clock::now();
    timer->cancel();
    if (rec) {
      if (rec == asio::error::operation_aborted && expired) {
        co_return Fail(ClientError::kConnectTimeout, "resolving " + target.host + " timed out");
      }
      co_return Fail(ClientError::kResolve, "cannot resolve " + target.host + ": " + rec.message());
    }
    for (const auto& r : results) endpoints.push_back(r.endpoint());
  }
  const auto spent = std::chrono::steady_clock::now() - started;
  const auto left = options.connect_timeout - spent;
  stream.expires_after(left > std::chrono::milliseconds(1)
                           ? std::chrono::duration_cast<std::chrono::milliseconds>(left)
                           : std::chrono::milliseconds(1));
  auto [cec, ep] = co_await stream.async_connect(endpoints, kTuple);
  if (cec == beast::error::timeout) {
    co_return Fail(ClientError::kConnectTimeout,
                   "connect to " + target.host_header + " timed out after " +
                       std::to_string(options.connect_timeout.count()) + " ms");
  }
  if (cec) {
    co_return Fail(ClientError::kConnect,
                   "connect to " + target.host_header + ": " + cec.message());
  }
  co_return ClientResponse{};
}

asio::awaitable<ClientResponse> HttpClient::Impl::Exchange(const ClientRequest& request) {
  Target target;
  common::Status parsed = ParseTarget(request.url, target);
  if (!parsed.ok()) co_return Fail(ClientError::kBadUrl, parsed.message());

  beast::tcp_stream stream(ctx);
  ClientResponse connected = co_await Connect(stream, target);
  if (!connected.ok()) co_return connected;
  boost::system::error_code nodelay_ec;
  stream.socket().set_option(tcp::no_delay(true), nodelay_ec);

  // One deadline for write + read (see HttpClientOptions::read_timeout).
  stream.expires_after(options.read_timeout);
  bhttp::request<bhttp::string_body> req;
  req.version(11);
  req.method_string(request.method);
  req.target(target.path_and_query);
  req.set(bhttp::field::host, target.host_header);
  for (const auto& [name, value] : request.headers) req.insert(name, value);
  req.set(bhttp::field::connection, "close");
  req.body() = request.body;
  req.prepare_payload();
  auto [wec, wn] = co_await bhttp::async_write(stream, req, kTuple);
  if (wec == beast::error::timeout) {
    co_return Fail(ClientError::kReadTimeout, "sending to " + target.host_header + " timed out");
  }
  if (wec) {
    co_return Fail(ClientError::kConnect,
                   "sending to " + target.host_header + ": " + wec.message());
  }

  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.header_limit(static_cast<uint32_t>(options.max_response_header_bytes));
  parser.body_limit(options.max_response_body_bytes);
  auto [rec, rn] = co_await bhttp::async_read(stream, buffer, parser, kTuple);
  if (rec == beast::error::timeout) {
    co_return Fail(ClientError::kReadTimeout,
                   "no complete response from " + target.host_header + " within " +
                       std::to_string(options.read_timeout.count()) + " ms");
  }
  if (rec == bhttp::error::body_limit || rec == bhttp::error::header_limit ||
      rec == bhttp::error::buffer_overflow) {
    co_return Fail(ClientError::kTooLarge, "response from " + target.host_header +
                                               " exceeds the size limit (" + rec.message() + ")");
  }
  if (rec == asio::error::connection_reset || rec == asio::error::broken_pipe) {
    co_return Fail(ClientError::kConnect,
                   "response from " + target.host_header + ": " + rec.message());
  }
  if (rec) {
    co_return Fail(ClientError::kProtocol,
                   "bad response from " + target.host_header + ": " + rec.message());
  }
  ClientResponse out;
  auto& msg = parser.get();
  out.status = static_cast<int>(msg.result_int());
  for (const auto& f : msg) {
    out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  }
  out.body = std::move(msg.body());
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  co_return out;
}

HttpClient::HttpClient(HttpClientOptions options)
    : options_(options), impl_(std::make_unique<Impl>(options_)) {
  impl_->thread = std::thread([this] { impl_->ctx.run(); });
}

HttpClient::~HttpClient() {
  impl_->work.reset();
  impl_->ctx.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  // impl_'s io_context destroys the abandoned exchanges (and their callbacks).
}

void HttpClient::Send(ClientRequest request, Callback done) {
  Impl* impl = impl_.get();
  if (impl->in_flight.fetch_add(1, std::memory_order_relaxed) >= options_.max_in_flight) {
    impl->in_flight.fetch_sub(1, std::memory_order_relaxed);
    asio::post(impl->ctx, [done = std::move(done), n = options_.max_in_flight]() {
      done(Fail(ClientError::kOverloaded, std::to_string(n) + " requests already in flight"));
    });
    return;
  }
  asio::co_spawn(
      impl->ctx,
      [impl, request = std::move(request), done = std::move(done)]() -> asio::awaitable<void> {
        ClientResponse r;
        try {
          r = co_await impl->Exchange(request);
        } catch (const std::exception& e) {
          // An exception escaping a detached coroutine would abort the process.
          r = Fail(ClientError::kProtocol, std::string("exchange failed: ") + e.what());
        }
        impl->in_flight.fetch_sub(1, std::memory_order_relaxed);
        done(std::move(r));
      },
      asio::detached);
}

ClientResponse HttpClient::SendAndWait(ClientRequest request) {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<ClientResponse> result;  // guarded by mu
  Send(std::move(request), [&](ClientResponse r) {
    std::lock_guard<std::mutex> lock(mu);
    result = std::move(r);
    cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return result.has_value(); });
  return std::move(*result);
}

common::Status HttpClient::ValidateUrl(std::string_view url) {
  Target target;
  return ParseTarget(url, target);
}

}  // namespace openimds::http
