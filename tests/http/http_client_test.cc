// http::HttpClient against real loopback servers started in the test: a
// good target, a down one (refused), a slow one, non-JSON and oversize
// answers, and the limits (in flight, URL forms).
#include "http/http_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace openimds::http {
namespace {

using namespace std::chrono_literals;

// A blocking TCP server on 127.0.0.1 (or ::1) port 0. Each connection runs
// `serve(fd, request)` on its own thread, where `request` is everything read
// up to the end of the request body (Content-Length).
class LoopbackServer {
 public:
  using ServeFn = std::function<void(int fd, const std::string& request)>;

  explicit LoopbackServer(ServeFn serve, bool v6 = false) : serve_(std::move(serve)) {
    fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (v6) {
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_loopback;
      EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
      socklen_t len = sizeof(a);
      getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
      port_ = ntohs(a.sin6_port);
    } else {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
      socklen_t len = sizeof(a);
      getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
      port_ = ntohs(a.sin_port);
    }
    EXPECT_EQ(::listen(fd_, 64), 0);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }

  ~LoopbackServer() {
    stopping_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    acceptor_.join();
    ::close(fd_);
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& t : workers_) t.join();
  }

  uint16_t port() const { return port_; }
  int connections() const { return connections_.load(); }
  std::string last_request() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_request_;
  }

  static void WriteAll(int fd, std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      data.remove_prefix(static_cast<size_t>(n));
    }
  }

 private:
  void AcceptLoop() {
    for (;;) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) {
        if (stopping_) return;
        continue;
      }
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      connections_.fetch_add(1);
      std::lock_guard<std::mutex> lock(mu_);
      workers_.emplace_back([this, c] {
        std::string req = ReadRequest(c);
        {
          std::lock_guard<std::mutex> l(mu_);
          last_request_ = req;
        }
        serve_(c, req);
        ::close(c);
      });
    }
  }

  static std::string ReadRequest(int fd) {
    std::string data;
    char buf[4096];
    for (;;) {
      size_t head_end = data.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        size_t cl = 0;
        size_t pos = data.find("Content-Length: ");
        if (pos != std::string::npos && pos < head_end) cl = std::stoul(data.substr(pos + 16));
        if (data.size() >= head_end + 4 + cl) return data;
      }
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) return data;
      data.append(buf, static_cast<size_t>(n));
    }
  }

  ServeFn serve_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> workers_;  // guarded by mu_
  std::string last_request_;          // guarded by mu_
};

std::string Response(std::string_view status, std::string_view headers, std::string_view body) {
  return "HTTP/1.1 " + std::string(status) + "\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n" + std::string(headers) + "Connection: close\r\n\r\n" + std::string(body);
}

ClientRequest Post(uint16_t port, std::string path = "/vd", std::string host = "127.0.0.1") {
  ClientRequest r;
  r.method = "POST";
  r.url = "http://" + host + ":" + std::to_string(port) + path;
  r.headers = {{"Content-Type", "application/json"},
               {"Accept", "application/json"},
               {"User-Agent", "openstack-nova-vendordata"}};
  r.body = R"({"instance-id": "i-1"})";
  return r;
}

// A port that refuses connections: bound once, then closed.
uint16_t ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

TEST(HttpClientTest, PostsRequestAndReadsResponse) {
  LoopbackServer server([](int fd, const std::string&) {
    LoopbackServer::WriteAll(
        fd, Response("200 OK", "Content-Type: application/json\r\nCache-Control: max-age=30\r\n",
                     R"({"a": 1})"));
  });
  HttpClient client;
  ClientResponse r = client.SendAndWait(Post(server.port(), "/vd?x=1"));
  ASSERT_TRUE(r.ok()) << r.detail;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"a": 1})");
  EXPECT_EQ(r.Header("cache-control").value_or(""), "max-age=30");

  const std::string req = server.last_request();
  EXPECT_EQ(req.rfind("POST /vd?x=1 HTTP/1.1\r\n", 0), 0u) << req;
  EXPECT_NE(req.find("Host: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"),
            std::string::npos);
  EXPECT_NE(req.find("Content-Type: application/json\r\n"), std::string::npos);
  EXPECT_NE(req.find("Accept: application/json\r\n"), std::string::npos);
  EXPECT_NE(req.find("User-Agent: openstack-nova-vendordata\r\n"), std::string::npos);
  EXPECT_NE(req.find("Content-Length: 22\r\n"), std::string::npos);
  EXPECT_EQ(req.substr(req.size() - 22), R"({"instance-id": "i-1"})");
}

TEST(HttpClientTest, Ipv6LoopbackAndNon2xxAreResponses) {
  LoopbackServer server(
      [](int fd, const std::string&) {
        LoopbackServer::WriteAll(fd, Response("503 Service Unavailable", "", "down for a bit"));
      },
      /*v6=*/true);
  HttpClient client;
  ClientResponse r = client.SendAndWait(Post(server.port(), "/", "[::1]"));
  ASSERT_TRUE(r.ok()) << r.detail;
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "down for a bit");
}

TEST(HttpClientTest, NonJsonBodyIsReturnedVerbatim) {
  // The client is not JSON-aware: deciding that this is a failure is the
  // vendordata logic's job.
  LoopbackServer server([](int fd, const std::string&) {
    LoopbackServer::WriteAll(
        fd, Response("200 OK", "Content-Type: text/html\r\n", "<html>nope</html>"));
  });
  HttpClient client;
  ClientResponse r = client.SendAndWait(Post(server.port()));
  ASSERT_TRUE(r.ok()) << r.detail;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "<html>nope</html>");
}

TEST(HttpClientTest, BodyDelimitedByCloseIsRead) {
  LoopbackServer server([](int fd, const std::string&) {
    LoopbackServer::WriteAll(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"eof\": true}");
  });
  HttpClient client;
  ClientResponse r = client.SendAndWait(Post(server.port()));
  ASSERT_TRUE(r.ok()) << r.detail;
  EXPECT_EQ(r.body, "{\"eof\": true}");
}

TEST(HttpClientTest, DownTargetIsConnectError) {
  HttpClient client;
  ClientResponse r = client.SendAndWait(Post(ClosedPort()));
  EXPECT_EQ(r.error, ClientError::kConnect) << r.detail;
  EXPECT_EQ(ClientErrorName(r.error), "connect");
  EXPECT_NE(r.detail.find("refused"), std::string::npos) << r.detail;
}

TEST(HttpClientTest, SlowTargetIsReadTimeout) {
  std::atomic<bool> release{false};
  LoopbackServer server([&](int fd, const std::string&) {
    // Accepts and reads the request, then says nothing until released.
    for (int i = 0; i < 500 && !release; ++i) std::this_thread::sleep_for(10ms);
  });
  HttpClientOptions o;
  o.read_timeout = 300ms;
  HttpClient client(o);
  ClientResponse r = client.SendAndWait(Post(server.port()));
  release = true;
  EXPECT_EQ(r.error, ClientError::kReadTimeout) << r.detail;
  EXPECT_EQ(ClientErrorName(r.error), "read_timeout");
}

TEST(HttpClientTest, DrippingTargetIsReadTimeoutToo) {
  // One byte every 50 ms: each gap is short, the whole answer is not.
  std::atomic<bool> release{false};
  LoopbackServer server([&](int fd, const std::string&) {
    const std::string resp = Response("200 OK", "", std::string(200, 'x'));
    for (char c : resp) {
      if (release) return;
      LoopbackServer::WriteAll(fd, std::string_view(&c, 1));
      std::this_thread::sleep_for(50ms);
    }
  });
  HttpClientOptions o;
  o.read_timeout = 400ms;
  HttpClient client(o);
  ClientResponse r = client.SendAndWait(Post(server.port()));
  release = true;
  EXPECT_EQ(r.error, ClientError::kReadTimeout) << r.detail;
}

TEST(HttpClientTest, OversizeBodyIsTooLarge) {
  LoopbackServer server([](int fd, const std::string&) {
    LoopbackServer::WriteAll(fd, Response("200 OK", "", std::string(5000, 'a')));
  });
  HttpClientOptions o;
  o.max_response_body_bytes = 4096;
  HttpClient client(o);
  ClientResponse r = client.SendAndWait(Post(server.port()));
  EXPECT_EQ(r.error, ClientError::kTooLarge) << r.detail;
  EXPECT_EQ(ClientErrorName(r.error), "too_large");
}

TEST(HttpClientTest, OversizeChunkedBodyIsTooLarge) {
  // No Content-Length to refuse early: the limit applies while reading.
  LoopbackServer server([](int fd, const std::string&) {
    std::string resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    for (int i = 0; i < 10; ++i) resp += "3e8\r\n" + std::string(1000, 'b') + "\r\n";
    resp += "0\r\n\r\n";
    LoopbackServer::WriteAll(fd, resp);
  });
  HttpClientOptions o;
  o.max_response_body_bytes = 4096;
  HttpClient client(o);
  ClientResponse r = client.SendAndWait(Post(server.port()));
  EXPECT_EQ(r.error, ClientError::kTooLarge) << r.detail;
}

TEST(HttpClientTest, OversizeHeaderIsTooLarge) {
  LoopbackServer server([](int fd, const std::string&) {
    LoopbackServer::WriteAll(
        fd, Response("200 OK", "X-Big: " + std::string(20000, 'h') + "\r\n", "{}"));
  });
  HttpClient client;
  ClientResponse r = client.SendAndWait(Post(server.port()));
  EXPECT_EQ(r.error, ClientError::kTooLarge) << r.detail;
}

TEST(HttpClientTest, GarbageIsProtocolError) {
  LoopbackServer server([](int fd, const std::string&) {
    LoopbackServer::WriteAll(fd, "SSH-2.0-OpenSSH_9.2\r\n\r\n");
  });
  HttpClient client;
  ClientResponse r = client.SendAndWait(Post(server.port()));
  EXPECT_EQ(r.error, ClientError::kProtocol) << r.detail;
}

TEST(HttpClientTest, OverloadedBeyondMaxInFlight) {
  std::atomic<bool> release{false};
  LoopbackServer server([&](int fd, const std::string&) {
    for (int i = 0; i < 500 && !release; ++i) std::this_thread::sleep_for(10ms);
    LoopbackServer::WriteAll(fd, Response("200 OK", "", "{}"));
  });
  HttpClientOptions o;
  o.max_in_flight = 1;
  HttpClient client(o);
  std::atomic<int> first_status{-1};
  std::atomic<bool> first_done{false};
  client.Send(Post(server.port()), [&](ClientResponse r) {
    first_status = r.status;
    first_done = true;
  });
  ClientResponse second = client.SendAndWait(Post(server.port()));
  EXPECT_EQ(second.error, ClientError::kOverloaded);
  release = true;
  for (int i = 0; i < 500 && !first_done; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(first_status.load(), 200);
  // The slot is free again.
  EXPECT_TRUE(client.SendAndWait(Post(server.port())).ok());
}

TEST(HttpClientTest, RefusesUrlsItCannotServe) {
  EXPECT_TRUE(HttpClient::ValidateUrl("http://127.0.0.1:9000/vd").ok());
  EXPECT_TRUE(HttpClient::ValidateUrl("http://[::1]/").ok());
  EXPECT_TRUE(HttpClient::ValidateUrl("http://vendordata.internal").ok());
  EXPECT_FALSE(HttpClient::ValidateUrl("https://127.0.0.1/").ok());
  EXPECT_FALSE(HttpClient::ValidateUrl("http://user:pw@127.0.0.1/").ok());
  EXPECT_FALSE(HttpClient::ValidateUrl("127.0.0.1:9000").ok());
  EXPECT_FALSE(HttpClient::ValidateUrl("http://127.0.0.1:0/").ok());
  EXPECT_FALSE(HttpClient::ValidateUrl("http://127.0.0.1:99999/").ok());
  EXPECT_FALSE(HttpClient::ValidateUrl("").ok());

  HttpClient client;
  ClientRequest r;
  r.url = "https://127.0.0.1:1/";
  ClientResponse resp = client.SendAndWait(r);
  EXPECT_EQ(resp.error, ClientError::kBadUrl);
  EXPECT_NE(resp.detail.find("http://"), std::string::npos) << resp.detail;
}

TEST(HttpClientTest, DestructionWithExchangeInFlightDropsTheCallback) {
  std::atomic<bool> release{false};
  LoopbackServer server([&](int fd, const std::string&) {
    for (int i = 0; i < 500 && !release; ++i) std::this_thread::sleep_for(10ms);
  });
  std::atomic<int> called{0};
  {
    HttpClient client;
    client.Send(Post(server.port()), [&](ClientResponse) { called.fetch_add(1); });
    for (int i = 0; i < 200 && server.connections() == 0; ++i) std::this_thread::sleep_for(5ms);
  }
  release = true;
  EXPECT_EQ(called.load(), 0);
}

TEST(HttpClientTest, CallbacksRunOnTheClientThread) {
  LoopbackServer server([](int fd, const std::string&) {
    LoopbackServer::WriteAll(fd, Response("200 OK", "", "{}"));
  });
  HttpClient client;
  std::thread::id cb_thread;
  std::mutex mu;
  bool done = false;
  std::condition_variable cv;
  client.Send(Post(ClosedPort()), [&](ClientResponse) {
    std::lock_guard<std::mutex> lock(mu);
    cb_thread = std::this_thread::get_id();
    done = true;
    cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait_for(lock, 5s, [&] { return done; });
  ASSERT_TRUE(done);
  EXPECT_NE(cb_thread, std::this_thread::get_id());
}

}  // namespace
}  // namespace openimds::http
