// The http core's half of common::Deferred (http/deferred_wait.h), against
// real sockets on loopback: a parked request does not block its thread, is
// rendered again with Request::resumed and intact request views, survives
// the header-timeout reaper, and gives up after MaxWait.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http/deferred_wait.h"
#include "http/server.h"
#include "http/raw_client.h"

namespace openimds::http {
namespace {

using namespace std::chrono_literals;

// A Deferred the test fires by hand.
class ManualSignal final : public common::Deferred {
 public:
  explicit ManualSignal(std::chrono::milliseconds max_wait) : max_wait_(max_wait) {}
  void OnReady(std::function<void()> ready) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (fired_) {
      lock.unlock();
      ready();
      return;
    }
    waiters_.push_back(std::move(ready));
    cv_.notify_all();
  }
  std::chrono::milliseconds MaxWait() const override { return max_wait_; }
  void Fire() {
    std::vector<std::function<void()>> w;
    {
      std::lock_guard<std::mutex> lock(mu_);
      fired_ = true;
      w.swap(waiters_);
    }
    for (auto& f : w) f();
  }
  // Blocks until someone subscribed (the session is parked).
  bool WaitSubscribed() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, 5s, [&] { return !waiters_.empty(); });
  }

 private:
  const std::chrono::milliseconds max_wait_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool fired_ = false;
  std::vector<std::function<void()>> waiters_;
};

// /defer: defers on the first call (signal kept for the test); answers on the
// second with what it saw. /twice: defers both times. /ready: defers with an
// already-fired signal. Anything else answers at once.
class DeferringHandler : public Handler {
 public:
  void Handle(const common::Request& r, common::Response& out) override {
    calls.fetch_add(1);
    std::string path(r.path);
    if ((path == "/defer" || path == "/slow-forever" || path == "/ready") && !r.resumed) {
      auto s = std::make_shared<ManualSignal>(path == "/slow-forever" ? 200ms : 10'000ms);
      if (path == "/ready") s->Fire();
      {
        std::lock_guard<std::mutex> lock(mu);
        signals.push_back(s);
        cv.notify_all();
      }
      out.deferred = s;
      out.body = "must not be sent";
      return;
    }
    if (path == "/twice") {
      out.deferred = std::make_shared<ManualSignal>(50ms);
      return;
    }
    out.body = std::string(r.resumed ? "resumed " : "direct ") + path +
               " x=" + std::string(r.Header("X-Test").value_or("-")) +
               " body=" + std::string(r.body);
  }
  std::shared_ptr<ManualSignal> WaitSignal(size_t index) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait_for(lock, 5s, [&] { return signals.size() > index; });
    return signals.size() > index ? signals[index] : nullptr;
  }

  std::atomic<int> calls{0};
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::shared_ptr<ManualSignal>> signals;  // guarded by mu
};

class DeferredResponseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ListenerConfig l;
    l.endpoint = "127.0.0.1:0";
    l.handler = &handler_;
    // Shorter than any wait below: the reaper must not count a parked
    // request as a slow client.
    l.limits.header_timeout = 100ms;
    ServerOptions o;
    o.threads = 1;  // a parked request must not stall its only thread
    o.shutdown_grace = 300ms;
    server_ = std::make_unique<Server>(o, std::vector<ListenerConfig>{l}, metrics_);
    ASSERT_TRUE(server_->Start().ok());
    auto ep = server_->BoundEndpoints().at(0);
    port_ = std::stoi(ep.substr(ep.rfind(':') + 1));
    runner_ = std::thread([this] { server_->Run(); });
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
    if (runner_.joinable()) runner_.join();
  }

  int Connect() { return raw_client::ConnectLoopback(port_); }
  static void Send(int fd, const std::string& s) { raw_client::SendAll(fd, s); }
  static std::string ReadResponses(int fd, int n) { return raw_client::ReadResponses(fd, n); }

  DeferringHandler handler_;
  common::MetricsRegistry metrics_;
  std::unique_ptr<Server> server_;
  std::thread runner_;
  int port_ = 0;
};

TEST_F(DeferredResponseTest, ParkedRequestIsRenderedAgainWithItsViewsIntact) {
  int fd = Connect();
  // Pipelined: the second request waits behind the parked first one, and
  // its bytes in the read buffer must not disturb the first's views.
  Send(fd,
       "POST /defer HTTP/1.1\r\nHost: h\r\nX-Test: one\r\nContent-Length: 5\r\n\r\nhello"
       "GET /after HTTP/1.1\r\nHost: h\r\nX-Test: two\r\n\r\n");
  auto signal = handler_.WaitSignal(0);
  ASSERT_NE(signal, nullptr);
  ASSERT_TRUE(signal->WaitSubscribed());
  // Longer than header_timeout (100 ms) and a couple of reaper ticks.
  std::this_thread::sleep_for(600ms);
  signal->Fire();
  std::string r = ReadResponses(fd, 2);
  EXPECT_NE(r.find("resumed /defer x=one body=hello"), std::string::npos) << r;
  EXPECT_EQ(r.find("must not be sent"), std::string::npos) << r;
  // The next request on the connection is an ordinary one again.
  EXPECT_NE(r.find("direct /after x=two body="), std::string::npos) << r;
  EXPECT_LT(r.find("/defer"), r.find("/after"));
  close(fd);
  EXPECT_EQ(handler_.calls.load(), 3);
  EXPECT_EQ(metrics_.CounterValue("http_rejected_total", "listener=\"guest\",reason=\"timeout\""),
            0u);
}

TEST_F(DeferredResponseTest, ParkedRequestDoesNotBlockItsThread) {
  int parked = Connect();
  Send(parked, "GET /defer HTTP/1.1\r\nHost: h\r\n\r\n");
  auto signal = handler_.WaitSignal(0);
  ASSERT_NE(signal, nullptr);
  ASSERT_TRUE(signal->WaitSubscribed());
  // One I/O thread, one parked request: another connection is still served,
  // before the signal fires.
  int other = Connect();
  Send(other, "GET /fast HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string fast = ReadResponses(other, 1);
  EXPECT_NE(fast.find("direct /fast"), std::string::npos) << fast;
  signal->Fire();
  std::string slow = ReadResponses(parked, 1);
  EXPECT_NE(slow.find("resumed /defer"), std::string::npos) << slow;
  close(parked);
  close(other);
}

TEST_F(DeferredResponseTest, AlreadyReadySignalResumesAtOnce) {
  int fd = Connect();
  Send(fd, "GET /ready HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string r = ReadResponses(fd, 1);
  EXPECT_NE(r.find("resumed /ready"), std::string::npos) << r;
  close(fd);
}

TEST_F(DeferredResponseTest, MaxWaitElapsedRendersAgainAnyway) {
  int fd = Connect();
  Send(fd, "GET /slow-forever HTTP/1.1\r\nHost: h\r\n\r\n");
  // The signal never fires; after its MaxWait (200 ms) the handler is asked
  // again with resumed = true and must answer on its own.
  std::string r = ReadResponses(fd, 1);
  EXPECT_NE(r.find("HTTP/1.1 200 OK"), std::string::npos) << r;
  EXPECT_NE(r.find("resumed /slow-forever"), std::string::npos) << r;
  close(fd);
}

TEST_F(DeferredResponseTest, DeferringTwiceIs503) {
  int fd = Connect();
  Send(fd, "GET /twice HTTP/1.1\r\nHost: h\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string r = ReadResponses(fd, 2);
  EXPECT_NE(r.find("HTTP/1.1 503 Service Unavailable"), std::string::npos) << r;
  EXPECT_NE(r.find("Retry-After: 1"), std::string::npos) << r;
  EXPECT_NE(r.find("direct /after"), std::string::npos) << r;
  close(fd);
}

TEST_F(DeferredResponseTest, SignalFiredAfterServerIsGoneIsHarmless) {
  int fd = Connect();
  Send(fd, "GET /defer HTTP/1.1\r\nHost: h\r\n\r\n");
  auto signal = handler_.WaitSignal(0);
  ASSERT_NE(signal, nullptr);
  ASSERT_TRUE(signal->WaitSubscribed());
  server_->Shutdown();
  runner_.join();
  server_.reset();
  signal->Fire();  // the wake-up finds no waiter and posts nothing
  close(fd);
}

TEST(DeferralBoundTest, ClampsMaxWait) {
  EXPECT_EQ(DeferralBound(ManualSignal(std::chrono::milliseconds(-5))), 0ms);
  EXPECT_EQ(DeferralBound(ManualSignal(1500ms)), 1500ms);
  EXPECT_EQ(DeferralBound(ManualSignal(std::chrono::hours(1))), kMaxDeferral);
}

}  // namespace
}  // namespace openimds::http
