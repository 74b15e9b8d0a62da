#pragma once

// Loopback plumbing for the proxy tests: a recording upstream (the real
// http::Server with a handler that keeps what it saw), raw upstreams that
// misbehave, and a blocking HTTP client that can pick its source address.
// Everything binds 127.0.0.0/8 only.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/http_message.h"
#include "common/metrics.h"
#include "http/server.h"

namespace openimds::proxy::testing {

// What the upstream received.
struct Seen {
  std::string method, target, body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string peer;

  int Count(std::string_view name) const {
    int n = 0;
    for (const auto& [k, v] : headers) n += common::EqualsIgnoreCase(k, name) ? 1 : 0;
    return n;
  }
  std::string Get(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (common::EqualsIgnoreCase(k, name)) return v;
    }
    return "";
  }
};

class RecordingHandler : public http::Handler {
 public:
  // Fills the response; default: 200 "ok <target>".
  std::function<void(const common::Request&, common::Response&)> respond;

  void Handle(const common::Request& r, common::Response& out) override {
    Seen s;
    s.method = std::string(r.method);
    s.target = std::string(r.target);
    s.body = std::string(r.body);
    s.peer = r.peer.ToString();
    for (const auto& h : r.headers)
      s.headers.emplace_back(std::string(h.name), std::string(h.value));
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen_.push_back(std::move(s));
    }
    if (r.method == "HEAD") out.head = true;
    if (respond) {
      respond(r, out);
    } else {
      out.body = "ok " + std::string(r.target);
    }
  }
  std::vector<Seen> seen() const {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }
  // The last request a guest caused: the proxy's own health checks, which
  // may arrive at any moment, are skipped.
  Seen last() const {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = seen_.rbegin(); it != seen_.rend(); ++it) {
      if (it->target != "/healthz") return *it;
    }
    return Seen{};
  }
  size_t count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_.size();
  }

 private:
  mutable std::mutex mu_;
  std::vector<Seen> seen_;
};

// A real openimds HTTP server with a RecordingHandler, on `endpoint`.
class FakeUpstream {
 public:
  explicit FakeUpstream(std::string endpoint = "127.0.0.1:0") {
    http::ListenerConfig l;
    l.endpoint = std::move(endpoint);
    l.handler = &handler;
    l.network = "upstream";
    http::ServerOptions o;
    o.threads = 1;
    o.shutdown_grace = std::chrono::milliseconds(200);
    server_ = std::make_unique<http::Server>(o, std::vector<http::ListenerConfig>{l}, metrics);
    common::Status s = server_->Start();
    started = s.ok();
    EXPECT_TRUE(started) << s.ToString();
    if (!started) return;
    endpoint_ = server_->BoundEndpoints().at(0);
    runner_ = std::thread([this] { server_->Run(); });
  }
  ~FakeUpstream() { Stop(); }
  void Stop() {
    if (server_) server_->Shutdown();
    if (runner_.joinable()) runner_.join();
    server_.reset();
  }
  const std::string& endpoint() const { return endpoint_; }
  uint64_t connections() const {
    return metrics.CounterValue("http_connections_total", "listener=\"guest\"");
  }

  RecordingHandler handler;
  common::MetricsRegistry metrics;
  bool started = false;

 private:
  std::unique_ptr<http::Server> server_;
  std::string endpoint_;
  std::thread runner_;
};

// A port on 127.0.0.1 that nothing listens on (bound, then released).
inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// An upstream that misbehaves on raw TCP: accepts, reads one request, then
// does `act` with the connection fd and what it read (never answer, answer
// garbage, ...).
class RawUpstream {
 public:
  explicit RawUpstream(std::function<void(int fd, const std::string& request)> act)
      : act_(std::move(act)) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    EXPECT_EQ(listen(fd_, 64), 0);
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        accepted.fetch_add(1);
        char buf[4096];
        timeval tv{0, 200'000};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        ssize_t n = recv(c, buf, sizeof(buf), 0);
        act_(c, std::string(buf, n > 0 ? static_cast<size_t>(n) : 0));
        conns_.push_back(c);
      }
    });
  }
  ~RawUpstream() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
    for (int c : conns_) close(c);
  }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  std::atomic<int> accepted{0};

 private:
  std::function<void(int, const std::string&)> act_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::vector<int> conns_;  // touched only by thread_, then by the destructor after join
};

struct Reply {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string raw;

  std::string Get(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (common::EqualsIgnoreCase(k, name)) return v;
    }
    return "";
  }
  bool Has(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (common::EqualsIgnoreCase(k, name)) return true;
    }
    return false;
  }
};

// One client connection, blocking, from a chosen loopback source address.
class Client {
 public:
  Client(const std::string& endpoint, const std::string& source = "127.0.0.1") {
    auto colon = endpoint.rfind(':');
    std::string host = endpoint.substr(0, colon);
    int port = std::stoi(endpoint.substr(colon + 1));
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    inet_pton(AF_INET, source.c_str(), &src.sin_addr);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&src), sizeof(src)), 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, host.c_str(), &a.sin_addr);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    EXPECT_TRUE(connected_) << endpoint;
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~Client() { close(fd_); }

  void Send(const std::string& s) {
    ASSERT_EQ(::send(fd_, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
  }
  // Reads one response (Content-Length framed; `head` = no body expected).
  Reply Read(bool head = false) {
    Reply r;
    for (;;) {
      auto end = buf_.find("\r\n\r\n");
      if (end != std::string::npos) {
        std::string head_text = buf_.substr(0, end);
        size_t length = 0;
        size_t pos = head_text.find("\r\n");
        std::string status_line = head_text.substr(0, pos);
        std::vector<std::pair<std::string, std::string>> headers;
        while (pos != std::string::npos) {
          size_t next = head_text.find("\r\n", pos + 2);
          std::string line =
              head_text.substr(pos + 2, next == std::string::npos ? next : next - pos - 2);
          auto c = line.find(':');
          if (c != std::string::npos) {
            std::string v = line.substr(c + 1);
            while (!v.empty() && v.front() == ' ') v.erase(0, 1);
            headers.emplace_back(line.substr(0, c), v);
            if (common::EqualsIgnoreCase(line.substr(0, c), "Content-Length"))
              length = std::stoul(v);
          }
          pos = next;
        }
        if (head) length = 0;
        if (buf_.size() >= end + 4 + length) {
          r.status = std::stoi(status_line.substr(9, 3));
          r.headers = std::move(headers);
          r.body = buf_.substr(end + 4, length);
          r.raw = buf_.substr(0, end + 4 + length);
          buf_.erase(0, end + 4 + length);
          return r;
        }
      }
      char tmp[16384];
      ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
      if (n <= 0) {
        r.status = -1;  // closed or timed out
        r.raw = buf_;
        return r;
      }
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }
  Reply Get(const std::string& target, const std::string& extra_headers = "") {
    Send("GET " + target + " HTTP/1.1\r\nHost: 169.254.169.254\r\n" + extra_headers + "\r\n");
    return Read();
  }
  // True once the server has closed the connection (EOF within the timeout).
  bool Closed() {
    char c;
    return recv(fd_, &c, 1, 0) == 0;
  }
  bool connected() const { return connected_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

// One request on a fresh connection.
inline Reply Fetch(const std::string& endpoint, const std::string& target,
                   const std::string& extra_headers = "", const std::string& source = "127.0.0.1") {
  Client c(endpoint, source);
  return c.Get(target, extra_headers);
}

}  // namespace openimds::proxy::testing
