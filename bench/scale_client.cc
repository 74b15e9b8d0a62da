// Load client for bench/scale.sh: HTTP/1.1 keep-alive over a unix socket (the
// admin API) or TCP (a guest listener, optionally from a chosen 127.x source
// address so the server takes the caller for a probe instance), timed with
// steady_clock, percentiles by nearest rank. Every loop is bounded by a count
// and by a deadline; a request in flight at the deadline gets kGrace (2 s)
// more, then is cut and reported as `cut`, not timed. Raw POSIX sockets,
// blocking, one thread per connection: the point is the server's latency, not
// the client's throughput.
//
// Subcommands (each prints one line of key=value pairs on stdout):
//   get         --guest H:P --source IP --path P           one GET, prints status and body
//   wait-ready  --guest H:P --source IP --path P --timeout S
//               polls until 200; prints the CLOCK_REALTIME ns of that answer
//   admin-latency --admin SOCK --n N --count C --duration S
//               sequential PATCHes, each a new tag value on a random instance
//   visibility  --admin SOCK --guest H:P --probes P --count C --duration S
//               PATCH a probe's tag, then GET it as that probe until it shows
//   writers     --admin SOCK --n N --writers W --duration S
//               W concurrent writers, each PATCHing its own share of instances
//   guest-load  --guest H:P --probes P --connections C --duration S
//               [--writers W --admin SOCK --n N [--writer-nice K]]   closed-loop
//               keep-alive GETs, optionally while W writers (nice +K) run over
//               the same window
// Ids and probe addresses: bench/scale_fleet.h.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "scale_fleet.h"

namespace {

using Clock = std::chrono::steady_clock;
using openimds::bench::InstanceId;
using openimds::bench::kProbeTag;
using openimds::bench::ProbeAddress;
using openimds::bench::ProbeId;

int64_t Ns(Clock::duration d) { return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count(); }

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "scale_client: %s\n", what.c_str());
  std::exit(1);
}

// Where to connect: a unix socket path, or host:port (IPv4) with an optional
// source address to bind before connecting.
struct Endpoint {
  std::string unix_path;
  sockaddr_in tcp{};
  std::optional<in_addr> source;
};

Endpoint UnixEndpoint(const std::string& path) {
  Endpoint e;
  e.unix_path = path;
  return e;
}

Endpoint TcpEndpoint(const std::string& host_port, const std::string& source) {
  Endpoint e;
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) Fail("want HOST:PORT, got " + host_port);
  e.tcp.sin_family = AF_INET;
  e.tcp.sin_port = htons(static_cast<uint16_t>(std::stoi(host_port.substr(colon + 1))));
  if (inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &e.tcp.sin_addr) != 1) {
    Fail("not an IPv4 address: " + host_port);
  }
  // Safety: this benchmark talks to loopback only.
  if ((ntohl(e.tcp.sin_addr.s_addr) >> 24) != 127) Fail("refusing a non-loopback target");
  if (!source.empty()) {
    in_addr a;
    if (inet_pton(AF_INET, source.c_str(), &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) {
      Fail("source must be a 127.x address: " + source);
    }
    e.source = a;
  }
  return e;
}

struct Response {
  int status = 0;
  std::string body;
};

// A request still unanswered this long after its phase's deadline is cut
// (counted, not timed): every phase ends by its deadline plus this grace.
constexpr auto kGrace = std::chrono::seconds(2);

// One keep-alive HTTP/1.1 connection; reconnects (once per request) when the
// server has closed it. With a deadline, a request may not outlast
// deadline + kGrace (SO_RCVTIMEO/SO_SNDTIMEO); such a request fails with
// timed_out() set. Not thread-safe: one per thread.
class Connection {
 public:
  explicit Connection(Endpoint endpoint) : endpoint_(std::move(endpoint)) {}
  ~Connection() { Close(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // nullopt when the exchange failed (connect refused, reset, malformed).
  std::optional<Response> Request(std::string_view method, std::string_view target,
                                  std::string_view body = {}) {
    std::string req;
    req.reserve(256 + body.size());
    req.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: bench\r\n");
    if (!body.empty() || method == "PATCH" || method == "PUT" || method == "POST") {
      req.append("Content-Type: application/merge-patch+json\r\nContent-Length: ")
          .append(std::to_string(body.size()))
          .append("\r\n");
    }
    req.append("\r\n").append(body);
    timed_out_ = false;
    for (int attempt = 0; attempt < 2; ++attempt) {
      const bool fresh = fd_ < 0;
      if (fresh && !Connect()) return std::nullopt;
      if (!ArmTimeout()) return std::nullopt;
      if (auto r = Exchange(req)) return r;
      timed_out_ = errno == EAGAIN || errno == EWOULDBLOCK;
      Close();
      if (fresh || timed_out_) return std::nullopt;  // do not loop on a new or slow connection
      ++reconnects_;
    }
    return std::nullopt;
  }

  bool Connect() {
    if (!endpoint_.unix_path.empty()) {
      fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      if (endpoint_.unix_path.size() >= sizeof(a.sun_path)) Fail("unix path too long");
      std::memcpy(a.sun_path, endpoint_.unix_path.c_str(), endpoint_.unix_path.size() + 1);
      if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return CloseFalse();
      return true;
    }
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (endpoint_.source) {
      sockaddr_in s{};
      s.sin_family = AF_INET;
      s.sin_addr = *endpoint_.source;
      if (bind(fd_, reinterpret_cast<sockaddr*>(&s), sizeof(s)) != 0) return CloseFalse();
    }
    if (connect(fd_, reinterpret_cast<const sockaddr*>(&endpoint_.tcp), sizeof(endpoint_.tcp)) !=
        0) {
      return CloseFalse();
    }
    return true;
  }

  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    buf_.clear();
  }

  uint64_t reconnects() const { return reconnects_; }
  bool timed_out() const { return timed_out_; }
  void set_deadline(Clock::time_point deadline) { deadline_ = deadline; }

 private:
  // Bounds the next exchange by deadline_ + kGrace; false (timed out) if past.
  bool ArmTimeout() {
    if (!deadline_) return true;
    const int64_t left_us =
        std::chrono::duration_cast<std::chrono::microseconds>(*deadline_ + kGrace - Clock::now())
            .count();
    if (left_us <= 0) {
      timed_out_ = true;
      return false;
    }
    timeval tv{static_cast<time_t>(left_us / 1000000), static_cast<suseconds_t>(left_us % 1000000)};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return true;
  }

  bool CloseFalse() {
    Close();
    return false;
  }

  std::optional<Response> Exchange(const std::string& req) {
    errno = 0;
    size_t off = 0;
    while (off < req.size()) {
      ssize_t n = send(fd_, req.data() + off, req.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return std::nullopt;
      off += static_cast<size_t>(n);
    }
    // Head.
    size_t head_end;
    while ((head_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (buf_.size() > 64 * 1024 || !Fill()) return std::nullopt;
    }
    Response r;
    std::string_view head(buf_.data(), head_end);
    if (head.size() < 12 || head.substr(0, 5) != "HTTP/") return std::nullopt;
    r.status = std::atoi(std::string(head.substr(9, 3)).c_str());
    std::optional<size_t> length;
    bool chunked = false, close_after = false;
    size_t pos = head.find("\r\n");
    while (pos != std::string_view::npos && pos < head.size()) {
      size_t next = head.find("\r\n", pos + 2);
      std::string line(head.substr(pos + 2, (next == std::string_view::npos ? head.size() : next) -
                                                 pos - 2));
      std::transform(line.begin(), line.end(), line.begin(), ::tolower);
      if (line.rfind("content-length:", 0) == 0) length = std::strtoull(line.c_str() + 15, nullptr, 10);
      if (line.rfind("transfer-encoding:", 0) == 0 && line.find("chunked") != std::string::npos) {
        chunked = true;
      }
      if (line.rfind("connection:", 0) == 0 && line.find("close") != std::string::npos) {
        close_after = true;
      }
      pos = next;
    }
    buf_.erase(0, head_end + 4);
    if (chunked) {
      for (;;) {
        size_t eol;
        while ((eol = buf_.find("\r\n")) == std::string::npos) {
          if (!Fill()) return std::nullopt;
        }
        const size_t size = std::strtoull(buf_.c_str(), nullptr, 16);
        while (buf_.size() < eol + 2 + size + 2) {
          if (!Fill()) return std::nullopt;
        }
        r.body.append(buf_, eol + 2, size);
        buf_.erase(0, eol + 2 + size + 2);
        if (size == 0) break;  // no trailers expected
      }
    } else if (length) {
      while (buf_.size() < *length) {
        if (!Fill()) return std::nullopt;
      }
      r.body = buf_.substr(0, *length);
      buf_.erase(0, *length);
    } else {
      while (Fill()) {
      }
      r.body = std::move(buf_);
      close_after = true;
    }
    if (close_after) Close();
    return r;
  }

  bool Fill() {
    char tmp[16384];
    ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  Endpoint endpoint_;
  int fd_ = -1;
  std::string buf_;  // received, not yet consumed
  uint64_t reconnects_ = 0;
  bool timed_out_ = false;
  std::optional<Clock::time_point> deadline_;
};

// --name value options.
class Args {
 public:
  Args(int argc, char** argv) {
    for (int i = 2; i < argc; ++i) {
      std::string k = argv[i];
      if (k.rfind("--", 0) != 0 || i + 1 >= argc) Fail("bad argument " + k);
      values_[k.substr(2)] = argv[++i];
    }
  }
  std::string Str(const std::string& k, const std::string& def = "\x01") const {
    auto it = values_.find(k);
    if (it != values_.end()) return it->second;
    if (def == "\x01") Fail("missing --" + k);
    return def;
  }
  double Num(const std::string& k, double def = -1) const {
    auto it = values_.find(k);
    if (it == values_.end()) {
      if (def < 0) Fail("missing --" + k);
      return def;
    }
    return std::stod(it->second);
  }

 private:
  std::map<std::string, std::string> values_;
};

// Latency samples (ns) with nearest-rank percentiles.
struct Samples {
  std::vector<int64_t> ns;
  void Add(int64_t v) { ns.push_back(v); }
  void Merge(const Samples& o) { ns.insert(ns.end(), o.ns.begin(), o.ns.end()); }
  double PercentileUs(double p) {
    if (ns.empty()) return 0;
    std::sort(ns.begin(), ns.end());
    size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(ns.size())));
    rank = std::clamp<size_t>(rank, 1, ns.size());
    return static_cast<double>(ns[rank - 1]) / 1000.0;
  }
  double MeanUs() const {
    if (ns.empty()) return 0;
    long double s = 0;
    for (int64_t v : ns) s += v;
    return static_cast<double>(s / static_cast<long double>(ns.size()) / 1000.0);
  }
};

std::string PatchTag(const std::string& key, const std::string& value) {
  return "{\"tags\":{\"" + key + "\":\"" + value + "\"}}";
}

Clock::time_point Deadline(const Args& a) {
  const double s = a.Num("duration", 10);
  return Clock::now() + std::chrono::nanoseconds(static_cast<int64_t>(s * 1e9));
}

// --- get / wait-ready --------------------------------------------------------

int RunGet(const Args& a) {
  Connection c(TcpEndpoint(a.Str("guest"), a.Str("source", "")));
  c.set_deadline(Clock::now() + std::chrono::seconds(10));
  auto r = c.Request("GET", a.Str("path"));
  if (!r) Fail("no answer");
  std::printf("status=%d body=%s\n", r->status, r->body.c_str());
  return r->status == 200 ? 0 : 1;
}

int RunWaitReady(const Args& a) {
  const Endpoint e = TcpEndpoint(a.Str("guest"), a.Str("source", ""));
  const std::string path = a.Str("path");
  const auto deadline = Clock::now() + std::chrono::seconds(static_cast<int>(a.Num("timeout", 600)));
  uint64_t attempts = 0, refused = 0, non200 = 0;
  while (Clock::now() < deadline) {
    ++attempts;
    Connection c(e);
    c.set_deadline(deadline);
    if (!c.Connect()) {
      ++refused;
      usleep(1000);
      continue;
    }
    auto r = c.Request("GET", path);
    if (r && r->status == 200) {
      timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      std::printf("ready_realtime_ns=%lld attempts=%llu refused=%llu non200=%llu\n",
                  static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec,
                  static_cast<unsigned long long>(attempts),
                  static_cast<unsigned long long>(refused),
                  static_cast<unsigned long long>(non200));
      return 0;
    }
    ++non200;
    usleep(1000);
  }
  Fail("not ready before the timeout");
}

// --- admin writes --------------------------------------------------------------

// Sequential PATCHes by one writer until `count` or the deadline. Instances are
// drawn from indices ≡ writer (mod writers) so concurrent writers never
// touch the same instance.
struct WriterResult {
  Samples latency;
  uint64_t ok = 0, errors = 0, cut = 0, reconnects = 0;
  int last_status = 0;
};

void WriteLoop(const std::string& admin, uint64_t n, int writer, int writers, uint64_t count,
               Clock::time_point deadline, WriterResult& out) {
  Connection c(UnixEndpoint(admin));
  c.set_deadline(deadline);
  std::mt19937_64 rng(0xbe7c4 + writer);
  const uint64_t share = (n - writer + writers - 1) / writers;
  for (uint64_t i = 0; i < count && Clock::now() < deadline; ++i) {
    const uint64_t index = writer + writers * (rng() % share);
    const std::string target = "/v1/instances/" + InstanceId(index);
    const std::string body = PatchTag("bench", "w" + std::to_string(writer) + "-" + std::to_string(i));
    const auto t0 = Clock::now();
    auto r = c.Request("PATCH", target, body);
    const auto t1 = Clock::now();
    if (r && r->status == 200) {
      ++out.ok;
      out.latency.Add(Ns(t1 - t0));
    } else if (!r && c.timed_out()) {
      ++out.cut;
      break;
    } else {
      ++out.errors;
      out.last_status = r ? r->status : -1;
      if (out.errors == 1 && r) {
        std::fprintf(stderr, "scale_client: PATCH %s -> %d %s\n", target.c_str(), r->status,
                     r->body.substr(0, 300).c_str());
      }
    }
  }
  out.reconnects = c.reconnects();
}

int RunAdminLatency(const Args& a) {
  WriterResult r;
  const auto t0 = Clock::now();
  WriteLoop(a.Str("admin"), static_cast<uint64_t>(a.Num("n")), 0, 1,
            static_cast<uint64_t>(a.Num("count", 2000)), Deadline(a), r);
  const double secs = static_cast<double>(Ns(Clock::now() - t0)) / 1e9;
  std::printf("writes=%llu errors=%llu cut=%llu secs=%.3f p50_us=%.1f p99_us=%.1f mean_us=%.1f "
              "max_us=%.1f\n",
              static_cast<unsigned long long>(r.ok), static_cast<unsigned long long>(r.errors),
              static_cast<unsigned long long>(r.cut), secs,
              r.latency.PercentileUs(50), r.latency.PercentileUs(99), r.latency.MeanUs(),
              r.latency.PercentileUs(100));
  return r.ok > 0 ? 0 : 1;
}

struct WritersOutcome {
  uint64_t ok = 0, errors = 0, cut = 0;
  double secs = 0;
  Samples latency;
};

// The writers stand for a control plane, which in a real deployment runs on
// other machines. Here they share two cores with the guest load generator, so
// at the generator's own priority their CPU would show up as guest latency
// that the server never caused. `nice` (the writer threads' nice increment,
// --writer-nice, default 0) lets a run say how much of the guests' p99 under
// writes is the server's; the writes still reach the server at full rate
// whenever a core is free.
void NiceCurrentThread(int nice) {
  if (nice == 0) return;
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  ::setpriority(PRIO_PROCESS, tid, ::getpriority(PRIO_PROCESS, tid) + nice);
}

WritersOutcome RunWriterThreads(const std::string& admin, uint64_t n, int writers,
                                Clock::time_point deadline, int nice = 0) {
  std::vector<WriterResult> results(writers);
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      NiceCurrentThread(nice);
      WriteLoop(admin, n, w, writers, UINT64_MAX, deadline, results[w]);
    });
  }
  for (auto& t : threads) t.join();
  WritersOutcome o;
  o.secs = static_cast<double>(Ns(Clock::now() - t0)) / 1e9;
  for (auto& r : results) {
    o.ok += r.ok;
    o.errors += r.errors;
    o.cut += r.cut;
    o.latency.Merge(r.latency);
  }
  return o;
}

int RunWriters(const Args& a) {
  const int writers = static_cast<int>(a.Num("writers", 4));
  WritersOutcome o = RunWriterThreads(a.Str("admin"), static_cast<uint64_t>(a.Num("n")), writers,
                                      Deadline(a));
  std::printf("writers=%d writes=%llu errors=%llu cut=%llu secs=%.3f writes_per_s=%.1f "
              "p50_us=%.1f p99_us=%.1f\n",
              writers, static_cast<unsigned long long>(o.ok),
              static_cast<unsigned long long>(o.errors), static_cast<unsigned long long>(o.cut),
              o.secs, o.ok / o.secs,
              o.latency.PercentileUs(50), o.latency.PercentileUs(99));
  return o.ok > 0 ? 0 : 1;
}

// --- admin-return -> guest-visible ----------------------------------------------

int RunVisibility(const Args& a) {
  const int probes = static_cast<int>(a.Num("probes", 1));
  const uint64_t count = static_cast<uint64_t>(a.Num("count", 1000));
  const auto deadline = Deadline(a);
  Connection admin(UnixEndpoint(a.Str("admin")));
  admin.set_deadline(deadline);
  std::vector<std::unique_ptr<Connection>> guests;
  for (int k = 0; k < probes; ++k) {
    guests.push_back(std::make_unique<Connection>(TcpEndpoint(a.Str("guest"), ProbeAddress(k))));
    guests.back()->set_deadline(deadline);
  }
  const std::string tag_path = std::string("/latest/meta-data/tags/instance/") + kProbeTag;
  Samples visible, write;
  uint64_t stale_first_reads = 0, extra_reads = 0, errors = 0, timeouts = 0;
  const auto t_start = Clock::now();
  for (uint64_t i = 0; i < count && Clock::now() < deadline; ++i) {
    const int k = static_cast<int>(i % probes);
    const std::string value = "v" + std::to_string(i + 1);
    const auto w0 = Clock::now();
    auto r = admin.Request("PATCH", "/v1/instances/" + ProbeId(k), PatchTag(kProbeTag, value));
    const auto t0 = Clock::now();  // the admin call has returned
    if (!r && admin.timed_out()) break;  // cut at the deadline
    if (!r || r->status != 200) {
      ++errors;
      if (errors == 1) std::fprintf(stderr, "scale_client: PATCH %s -> %d\n", ProbeId(k).c_str(), r ? r->status : -1);
      continue;
    }
    write.Add(Ns(t0 - w0));
    const auto give_up = t0 + std::chrono::seconds(5);
    bool seen = false;
    for (int reads = 0; Clock::now() < give_up; ++reads) {
      auto g = guests[k]->Request("GET", tag_path);
      if (g && g->status == 200 && g->body == value) {
        visible.Add(Ns(Clock::now() - t0));
        seen = true;
        break;
      }
      if (!g) break;  // counted below as an error
      if (reads == 0) ++stale_first_reads;
      ++extra_reads;
    }
    if (!seen) ++(Clock::now() < give_up ? errors : timeouts);
  }
  const double secs = static_cast<double>(Ns(Clock::now() - t_start)) / 1e9;
  std::printf("rounds=%zu secs=%.3f p50_us=%.1f p99_us=%.1f max_us=%.1f stale_first_reads=%llu "
              "extra_reads=%llu timeouts=%llu errors=%llu write_p50_us=%.1f write_p99_us=%.1f\n",
              visible.ns.size(), secs, visible.PercentileUs(50), visible.PercentileUs(99),
              visible.PercentileUs(100), static_cast<unsigned long long>(stale_first_reads),
              static_cast<unsigned long long>(extra_reads), static_cast<unsigned long long>(timeouts),
              static_cast<unsigned long long>(errors), write.PercentileUs(50), write.PercentileUs(99));
  return visible.ns.empty() ? 1 : 0;
}

// --- guest load ----------------------------------------------------------------

int RunGuestLoad(const Args& a) {
  const int probes = static_cast<int>(a.Num("probes", 1));
  const int connections = static_cast<int>(a.Num("connections", 4));
  const int writers = static_cast<int>(a.Num("writers", 0));
  const std::string path = a.Str("path", "/latest/meta-data/instance-id");
  const std::string guest = a.Str("guest");
  // Samples kept per connection: bounded memory whatever the rate.
  constexpr size_t kMaxSamples = 20'000'000;
  struct PerConn {
    Samples latency;
    uint64_t ok = 0, errors = 0;
  };
  std::vector<PerConn> results(connections);
  const auto deadline = Deadline(a);
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < connections; ++c) {
    threads.emplace_back([&, c] {
      Connection conn(TcpEndpoint(guest, ProbeAddress(c % probes)));
      conn.set_deadline(deadline);
      PerConn& out = results[c];
      out.latency.ns.reserve(1 << 16);
      while (Clock::now() < deadline) {
        const auto s = Clock::now();
        auto r = conn.Request("GET", path);
        const auto e = Clock::now();
        if (r && r->status == 200) {
          ++out.ok;
          if (out.latency.ns.size() < kMaxSamples / connections) out.latency.Add(Ns(e - s));
        } else if (!r && conn.timed_out()) {
          break;
        } else {
          ++out.errors;
          if (!r) usleep(1000);  // refused or reset: do not spin
        }
      }
    });
  }
  WritersOutcome w;
  if (writers > 0) {
    w = RunWriterThreads(a.Str("admin"), static_cast<uint64_t>(a.Num("n")), writers, deadline,
                         static_cast<int>(a.Num("writer-nice", 0)));
  }
  for (auto& t : threads) t.join();
  const double secs = static_cast<double>(Ns(Clock::now() - t0)) / 1e9;
  Samples all;
  uint64_t ok = 0, errors = 0;
  for (auto& r : results) {
    all.Merge(r.latency);
    ok += r.ok;
    errors += r.errors;
  }
  std::printf("connections=%d requests=%llu errors=%llu secs=%.3f rps=%.0f p50_us=%.1f "
              "p99_us=%.1f p999_us=%.1f",
              connections, static_cast<unsigned long long>(ok),
              static_cast<unsigned long long>(errors), secs, ok / secs, all.PercentileUs(50),
              all.PercentileUs(99), all.PercentileUs(99.9));
  if (writers > 0) {
    std::printf(" writers=%d writes=%llu write_errors=%llu write_cut=%llu writes_per_s=%.1f "
                "write_p99_us=%.1f",
                writers, static_cast<unsigned long long>(w.ok),
                static_cast<unsigned long long>(w.errors), static_cast<unsigned long long>(w.cut),
                w.ok / w.secs,
                w.latency.PercentileUs(99));
  }
  std::printf("\n");
  return ok > 0 ? 0 : 1;
}

int Usage() {
  std::fprintf(stderr,
               "usage: scale_client get|wait-ready|admin-latency|visibility|writers|guest-load "
               "--option value ...\n(see the comment at the top of bench/scale_client.cc)\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage();
  const std::string cmd = argv[1];
  const Args a(argc, argv);
  if (cmd == "get") return RunGet(a);
  if (cmd == "wait-ready") return RunWaitReady(a);
  if (cmd == "admin-latency") return RunAdminLatency(a);
  if (cmd == "visibility") return RunVisibility(a);
  if (cmd == "writers") return RunWriters(a);
  if (cmd == "guest-load") return RunGuestLoad(a);
  return Usage();
}
