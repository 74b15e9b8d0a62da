// Load client for bench/fairness.sh: one quiet guest and, optionally, one
// noisy guest against the same guest listener, each from its own 127.x
// source address (the server tells guests apart by it).
//
//  - quiet: one keep-alive connection, one GET every 1/--quiet-rate s on a
//    fixed schedule (open loop, modest rate); each latency is from the
//    request's send to its last byte, steady_clock, percentiles by nearest
//    rank. It is the guest whose p99 the benchmark watches.
//  - noisy: --noisy-connections keep-alive connections driven from one epoll
//    thread at full speed (closed loop: each connection sends its next
//    request as soon as the previous answer is in, whatever its status, as a
//    guest that ignores 429 and Retry-After would). Counted by status.
//
// Both run for --duration s and stop at that deadline (the quiet guest's
// last request may take up to its 2 s receive timeout, counted as an error
// then). Prints one line of key=value pairs.
// Raw POSIX sockets; refuses non-loopback targets and sources.
//
//   fairness_client --guest 127.0.0.1:PORT --path /latest/meta-data/instance-id
//                   --quiet-source 127.0.0.2 --quiet-rate 50 --duration 8
//                   [--noisy-source 127.0.0.3 --noisy-connections 32]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "fairness_client: %s\n", what.c_str());
  std::exit(1);
}

in_addr LoopbackAddress(const std::string& text) {
  in_addr a{};
  if (inet_pton(AF_INET, text.c_str(), &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) {
    Fail("not a 127.x address: " + text);  // safety: loopback only
  }
  return a;
}

sockaddr_in Target(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) Fail("want HOST:PORT, got " + host_port);
  sockaddr_in t{};
  t.sin_family = AF_INET;
  t.sin_port = htons(static_cast<uint16_t>(std::stoi(host_port.substr(colon + 1))));
  t.sin_addr = LoopbackAddress(host_port.substr(0, colon));
  return t;
}

// A TCP socket bound to `source`, connected (blocking) to `target`; -1 on failure.
int Connect(const sockaddr_in& target, in_addr source) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in s{};
  s.sin_family = AF_INET;
  s.sin_addr = source;
  if (bind(fd, reinterpret_cast<sockaddr*>(&s), sizeof(s)) != 0 ||
      connect(fd, reinterpret_cast<const sockaddr*>(&target), sizeof(target)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// One whole response at the start of `buf`: its status and length in bytes,
// or nullopt while incomplete. Responses here always carry Content-Length.
struct Parsed {
  int status;
  size_t length;
  bool close;
};
std::optional<Parsed> ParseResponse(std::string_view buf) {
  const size_t head_end = buf.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return std::nullopt;
  std::string head(buf.substr(0, head_end));
  if (head.size() < 12 || head.compare(0, 5, "HTTP/") != 0) Fail("not an HTTP response");
  Parsed p{std::atoi(head.c_str() + 9), 0, false};
  std::transform(head.begin(), head.end(), head.begin(), ::tolower);
  const size_t cl = head.find("\r\ncontent-length:");
  if (cl == std::string::npos) Fail("response without Content-Length");
  const size_t body = std::strtoull(head.c_str() + cl + 17, nullptr, 10);
  p.close = head.find("\r\nconnection: close") != std::string::npos;
  if (buf.size() < head_end + 4 + body) return std::nullopt;
  p.length = head_end + 4 + body;
  return p;
}

std::string Request(const std::string& path) {
  return "GET " + path + " HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: fairness\r\n\r\n";
}

struct QuietResult {
  std::vector<int64_t> ns;
  uint64_t non200 = 0, errors = 0, late = 0;
};

// The quiet guest: a fixed schedule on one keep-alive connection.
void RunQuiet(const sockaddr_in& target, in_addr source, const std::string& path, double rate,
              Clock::time_point deadline, QuietResult& out) {
  const std::string req = Request(path);
  const auto interval = std::chrono::nanoseconds(static_cast<int64_t>(1e9 / rate));
  int fd = -1;
  std::string buf;
  auto next = Clock::now();
  while (next < deadline) {
    std::this_thread::sleep_until(next);
    if (fd < 0) {
      fd = Connect(target, source);
      if (fd < 0) {
        ++out.errors;
        next += interval;
        continue;
      }
      timeval tv{2, 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    }
    const auto t0 = Clock::now();
    bool ok = send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size());
    std::optional<Parsed> p;
    while (ok && !(p = ParseResponse(buf))) {
      char tmp[4096];
      const ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
      if (n <= 0)
        ok = false;
      else
        buf.append(tmp, static_cast<size_t>(n));
    }
    const auto t1 = Clock::now();
    if (!ok) {
      ++out.errors;
      close(fd);
      fd = -1;
      buf.clear();
    } else {
      out.ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
      if (p->status != 200) ++out.non200;
      buf.erase(0, p->length);
      if (p->close) {
        close(fd);
        fd = -1;
      }
    }
    next += interval;
    if (t1 > next) {
      ++out.late;  // answered after the next send was due: that one goes at once
      next = t1;
    }
  }
  if (fd >= 0) close(fd);
}

struct NoisyResult {
  std::map<int, uint64_t> by_status;
  uint64_t errors = 0;
};

// The noisy guest: `connections` keep-alive connections at full speed, one thread.
void RunNoisy(const sockaddr_in& target, in_addr source, const std::string& path, int connections,
              Clock::time_point deadline, NoisyResult& out) {
  const std::string req = Request(path);
  struct Conn {
    int fd = -1;
    std::string buf;
  };
  std::vector<Conn> conns(static_cast<size_t>(connections));
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  auto open_one = [&](size_t i) {
    Conn& c = conns[i];
    c.buf.clear();
    c.fd = Connect(target, source);
    if (c.fd < 0) {
      ++out.errors;
      return;
    }
    fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
    if (send(c.fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
      ++out.errors;
    }
  };
  auto drop = [&](size_t i) {
    epoll_ctl(ep, EPOLL_CTL_DEL, conns[i].fd, nullptr);
    close(conns[i].fd);
    conns[i].fd = -1;
  };
  for (size_t i = 0; i < conns.size(); ++i) open_one(i);
  std::vector<epoll_event> events(conns.size());
  while (Clock::now() < deadline) {
    const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 50);
    for (int k = 0; k < n; ++k) {
      const size_t i = events[k].data.u64;
      Conn& c = conns[i];
      char tmp[16384];
      const ssize_t got = recv(c.fd, tmp, sizeof(tmp), 0);
      if (got <= 0) {
        if (got < 0 && errno == EAGAIN) continue;
        ++out.errors;
        drop(i);
        if (Clock::now() < deadline) open_one(i);
        continue;
      }
      c.buf.append(tmp, static_cast<size_t>(got));
      while (auto p = ParseResponse(c.buf)) {
        ++out.by_status[p->status];
        c.buf.erase(0, p->length);
        if (p->close) {
          drop(i);
          if (Clock::now() < deadline) open_one(i);
          break;
        }
        if (Clock::now() >= deadline) break;
        if (send(c.fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
          ++out.errors;
        }
      }
    }
  }
  // Answers still owed at the deadline are not waited for.
  for (size_t i = 0; i < conns.size(); ++i) {
    if (conns[i].fd >= 0) drop(i);
  }
  close(ep);
}

double Percentile(std::vector<int64_t>& ns, double p) {
  if (ns.empty()) return 0;
  std::sort(ns.begin(), ns.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(ns.size())));
  rank = std::clamp<size_t>(rank, 1, ns.size());
  return static_cast<double>(ns[rank - 1]) / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) Fail("bad argument " + k);
    args[k.substr(2)] = argv[i + 1];
  }
  auto need = [&](const std::string& k) {
    auto it = args.find(k);
    if (it == args.end()) Fail("missing --" + k);
    return it->second;
  };
  const sockaddr_in target = Target(need("guest"));
  const std::string path = need("path");
  const in_addr quiet_source = LoopbackAddress(need("quiet-source"));
  const double rate = std::stod(need("quiet-rate"));
  const double duration = std::stod(need("duration"));
  if (rate <= 0 || duration <= 0) Fail("--quiet-rate and --duration must be positive");
  const bool noisy = args.count("noisy-source") > 0;
  const int connections = noisy ? std::stoi(need("noisy-connections")) : 0;

  const auto start = Clock::now();
  const auto deadline = start + std::chrono::nanoseconds(static_cast<int64_t>(duration * 1e9));
  QuietResult q;
  NoisyResult n;
  std::thread noisy_thread;
  if (noisy) {
    const in_addr noisy_source = LoopbackAddress(args["noisy-source"]);
    noisy_thread =
        std::thread([&] { RunNoisy(target, noisy_source, path, connections, deadline, n); });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let it ramp up first
  }
  RunQuiet(target, quiet_source, path, rate, deadline, q);
  if (noisy_thread.joinable()) noisy_thread.join();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();

  uint64_t noisy_total = 0;
  for (const auto& [status, count] : n.by_status) noisy_total += count;
  std::printf(
      "quiet_requests=%zu quiet_non200=%llu quiet_errors=%llu quiet_late=%llu quiet_p50_us=%.0f "
      "quiet_p99_us=%.0f quiet_p999_us=%.0f quiet_max_us=%.0f",
      q.ns.size(), static_cast<unsigned long long>(q.non200),
      static_cast<unsigned long long>(q.errors), static_cast<unsigned long long>(q.late),
      Percentile(q.ns, 50), Percentile(q.ns, 99), Percentile(q.ns, 99.9), Percentile(q.ns, 100));
  if (noisy) {
    auto count = [&](int s) { return static_cast<unsigned long long>(n.by_status[s]); };
    std::printf(
        " noisy_requests=%llu noisy_rps=%.0f noisy_200=%llu noisy_429=%llu noisy_other=%llu "
        "noisy_errors=%llu",
        static_cast<unsigned long long>(noisy_total), static_cast<double>(noisy_total) / secs,
        count(200), count(429),
        static_cast<unsigned long long>(noisy_total - count(200) - count(429)),
        static_cast<unsigned long long>(n.errors));
  }
  std::printf("\n");
  return 0;
}
