// The reference ceiling for bench/imds_vs_nginx.sh: the plain Boost.Beast
// C++20-coroutine server from Beast's examples (http::async_read into a
// request<string_body>, a response<string_body> with a fixed body,
// keep-alive), one thread, no routing, no identity, no rendering: a "bare
// Beast coroutine loop that returns a fixed string", measured in the same run
// as OpenIMDS and nginx, so the three ratios share one machine state.
//
// Usage: bare_beast PORT BODY   (listens on 127.0.0.1:PORT; PORT 0 picks one
// and prints it on stdout)
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

asio::awaitable<void> Session(tcp::socket socket, const std::string& body) {
  socket.set_option(tcp::no_delay(true));
  boost::beast::flat_buffer buffer;
  for (;;) {
    http::request<http::string_body> req;
    auto [rec, rn] = co_await http::async_read(socket, buffer, req, kTuple);
    if (rec) break;
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::content_type, "text/plain");
    res.keep_alive(req.keep_alive());
    res.body() = body;
    res.prepare_payload();
    auto [wec, wn] = co_await http::async_write(socket, res, kTuple);
    if (wec || !res.keep_alive()) break;
  }
  boost::system::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> Accept(tcp::acceptor& acceptor, const std::string& body) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(kTuple);
    if (ec) co_return;
    asio::co_spawn(acceptor.get_executor(), Session(std::move(socket), body), asio::detached);
  }
}

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s PORT BODY\n", argv[0]);
    return 2;
  }
  const std::string body = argv[2];
  asio::io_context ctx{1};
  tcp::acceptor acceptor(ctx, tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                            static_cast<unsigned short>(std::atoi(argv[1]))));
  std::printf("%u\n", acceptor.local_endpoint().port());
  std::fflush(stdout);
  asio::signal_set signals(ctx, SIGINT, SIGTERM);
  signals.async_wait([&](auto, int) { ctx.stop(); });
  asio::co_spawn(ctx, Accept(acceptor, body), asio::detached);
  ctx.run();
  return 0;
}
