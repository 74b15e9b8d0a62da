// The client's ceiling for bench/imds_vs_nginx.sh: the least work an HTTP
// server can do per request on Linux, so the most req/s that wrk (one thread,
// one core) can show against any server on this machine. One thread, raw
// epoll, one recv and one send per request, no parser beyond finding the end of
// each request head ("\r\n\r\n") and a "Connection: close" in it, no routing,
// no clock, no allocation per request. It is not a server anyone should run;
// it answers the question "could the client even measure the target ratio
// (imds_vs_nginx.sh's TARGET) here?" in the same run as the servers being
// compared.
//
// Usage: ceiling_server PORT BODY   (listens on 127.0.0.1:PORT; PORT 0 picks
// one and prints it on stdout). Answers every request with 200 and BODY, with
// the same header set as OpenIMDS (Date is fixed: no clock).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

volatile sig_atomic_t g_stop = 0;

// Unconsumed bytes of a connection's partial request head, by fd.
struct Conn {
  std::string pending;
};

int Die(const char* what) {
  std::perror(what);
  return 1;
}

bool HasConnectionClose(std::string_view head) {
  // Case-insensitive enough for wrk's "Connection: close" header.
  for (std::size_t at = 0; (at = head.find("onnection:", at)) != std::string_view::npos; ++at) {
    std::string_view rest = head.substr(at + 10);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (rest.size() >= 5 && (rest[0] | 0x20) == 'c' && (rest[1] | 0x20) == 'l') return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s PORT BODY\n", argv[0]);
    return 2;
  }
  const std::string body = argv[2];
  const std::string head =
      "HTTP/1.1 200 OK\r\nDate: Wed, 25 Nov 2026 00:00:00 GMT\r\n"
      "Content-Type: text/plain\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\nServer: EC2ws\r\n";
  const std::string keep_reply = head + "\r\n" + body;
  const std::string close_reply = head + "Connection: close\r\n\r\n" + body;

  struct sigaction sa {};
  sa.sa_handler = [](int) { g_stop = 1; };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listener < 0) return Die("socket");
  const int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(listener, IPPROTO_TCP, TCP_NODELAY, &one,
             sizeof one);  // inherited by accepted sockets
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<unsigned short>(std::atoi(argv[1])));
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return Die("bind");
  if (listen(listener, 4096) != 0) return Die("listen");
  socklen_t len = sizeof addr;
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  std::printf("%u\n", ntohs(addr.sin_port));
  std::fflush(stdout);

  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listener;
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);

  std::vector<Conn> conns(1024);
  std::vector<epoll_event> events(256);
  char buf[16384];
  while (!g_stop) {
    const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 500);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == listener) {
        for (int c; (c = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
          if (static_cast<std::size_t>(c) >= conns.size()) conns.resize(c * 2);
          conns[c].pending.clear();
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLRDHUP;
          cev.data.fd = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      // Level-triggered: one recv per wake-up, exactly like a server that
      // reads once per request.
      const ssize_t got = recv(fd, buf, sizeof buf, 0);
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (got <= 0) {
        close(fd);  // also drops it from the epoll set
        continue;
      }
      Conn& conn = conns[fd];
      std::string_view data(buf, static_cast<std::size_t>(got));
      if (!conn.pending.empty()) {
        conn.pending.append(data);
        data = conn.pending;
      }
      // Answer each complete request head in one send; keep any partial tail.
      std::string out;
      const std::string* single = nullptr;
      bool closing = false;
      std::size_t consumed = 0;
      for (std::size_t end;
           !closing && (end = data.find("\r\n\r\n", consumed)) != std::string_view::npos;) {
        closing = HasConnectionClose(data.substr(consumed, end - consumed));
        const std::string& answer = closing ? close_reply : keep_reply;
        if (single == nullptr && out.empty()) {
          single = &answer;
        } else {
          if (single != nullptr) out = *single, single = nullptr;
          out += answer;
        }
        consumed = end + 4;
      }
      const std::string& reply = single != nullptr ? *single : out;
      if (!reply.empty()) send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
      if (closing) {
        close(fd);
        continue;
      }
      std::string rest(data.substr(consumed));
      conn.pending = std::move(rest);
    }
  }
  return 0;
}
