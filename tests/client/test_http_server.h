#pragma once

// A minimal blocking HTTP/1.1 server for client tests: a thread per
// connection, one request per connection, handled by a plain function over
// common::Request/Response (the shape of http::Handler). As on serve's admin
// listener, the function is never called twice at once, and a request whose
// answer is deferred waits without holding up the others.
// Listens on a unix socket or on 127.0.0.1 port 0; never anywhere else.

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <utility>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/blocking_wait.h"
#include "common/http_message.h"

namespace openimds::test_support {

class TestHttpServer {
 public:
  using HandlerFn = std::function<void(const common::Request&, common::Response&)>;

  // Listens on a unix socket at `path` (which must not exist).
  static std::unique_ptr<TestHttpServer> Unix(const std::string& path, HandlerFn fn) {
    auto server = std::unique_ptr<TestHttpServer>(new TestHttpServer(std::move(fn)));
    server->unix_acceptor_ = std::make_unique<Local::acceptor>(server->ioc_, Local::endpoint(path));
    server->unix_path_ = path;
    server->thread_ = std::thread([s = server.get()] { s->Serve(*s->unix_acceptor_); });
    return server;
  }

  // Listens on 127.0.0.1 with a kernel-chosen port (port()).
  static std::unique_ptr<TestHttpServer> Tcp(HandlerFn fn) {
    auto server = std::unique_ptr<TestHttpServer>(new TestHttpServer(std::move(fn)));
    namespace ip = boost::asio::ip;
    server->tcp_acceptor_ = std::make_unique<ip::tcp::acceptor>(
        server->ioc_, ip::tcp::endpoint(ip::make_address("127.0.0.1"), 0));
    server->port_ = server->tcp_acceptor_->local_endpoint().port();
    server->thread_ = std::thread([s = server.get()] { s->Serve(*s->tcp_acceptor_); });
    return server;
  }

  ~TestHttpServer() {
    stopping_ = true;
    // Wake the blocking accept with one last connection.
    boost::system::error_code ec;
    if (unix_acceptor_) {
      Local::socket s(ioc_);
      s.connect(Local::endpoint(unix_path_), ec);
    } else {
      boost::asio::ip::tcp::socket s(ioc_);
      s.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
    }
    thread_.join();
    std::lock_guard<std::mutex> lock(connections_mu_);
    for (auto& t : connections_) t.join();
  }

  uint16_t port() const { return port_; }
  int requests() const { return requests_.load(); }

 private:
  using Local = boost::asio::local::stream_protocol;

  explicit TestHttpServer(HandlerFn fn) : fn_(std::move(fn)) {}

  static std::string_view View(boost::core::string_view s) { return {s.data(), s.size()}; }

  template <class Acceptor>
  void Serve(Acceptor& acceptor) {
    while (true) {
      boost::system::error_code ec;
      typename Acceptor::protocol_type::socket socket(ioc_);
      acceptor.accept(socket, ec);
      if (stopping_) return;
      if (ec) continue;
      std::lock_guard<std::mutex> lock(connections_mu_);
      connections_.emplace_back(
          [this, socket = std::move(socket)]() mutable { Handle(socket); });
    }
  }

  template <class Socket>
  void Handle(Socket& socket) {
    namespace http = boost::beast::http;
    boost::system::error_code ec;
    {
      boost::beast::flat_buffer buffer;
      http::request_parser<http::string_body> parser;
      parser.body_limit(256 * 1024 * 1024);
      http::read(socket, buffer, parser, ec);
      if (ec) return;
      const auto& message = parser.get();
      common::Request request;
      request.method = View(message.method_string());
      request.target = View(message.target());
      const size_t q = request.target.find('?');
      request.path = request.target.substr(0, q);
      if (q != std::string_view::npos) request.query = request.target.substr(q + 1);
      for (const auto& field : message) {
        request.headers.push_back({View(field.name_string()), View(field.value())});
      }
      request.body = message.body();
      common::Response out;
      Call(request, out);
      if (out.deferred) {
        // As the http core does: wait for the Deferred, then call again.
        std::shared_ptr<common::Deferred> pending = std::move(out.deferred);
        common::WaitReady(*pending);
        out.Clear();
        request.resumed = true;
        request.resumed_from = pending;
        Call(request, out);
      }
      ++requests_;
      http::response<http::string_body> response;
      response.version(11);
      response.result(static_cast<unsigned>(out.status));
      response.set(http::field::content_type, std::string(out.content_type));
      for (const auto& [name, value] : out.headers) response.set(name, value);
      response.keep_alive(false);
      response.body() = out.body;
      response.prepare_payload();
      http::write(socket, response, ec);
    }
  }

  void Call(const common::Request& request, common::Response& out) {
    std::lock_guard<std::mutex> lock(fn_mu_);
    fn_(request, out);
  }

  HandlerFn fn_;
  std::mutex fn_mu_;
  std::mutex connections_mu_;
  std::vector<std::thread> connections_;  // guarded by connections_mu_
  boost::asio::io_context ioc_;
  std::unique_ptr<Local::acceptor> unix_acceptor_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> tcp_acceptor_;
  std::string unix_path_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

}  // namespace openimds::test_support
