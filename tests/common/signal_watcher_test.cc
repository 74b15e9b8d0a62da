#include "common/signal_watcher.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace openimds::common {
namespace {

// What the handlers saw; waits are bounded so that a watcher that stopped
// listening fails the test instead of hanging it.
struct Seen {
  std::mutex mu;
  std::condition_variable cv;
  int stops = 0;    // guarded by mu
  int reloads = 0;  // guarded by mu

  SignalWatcher::Handlers Handlers() {
    return {.stop = [this] { Bump(stops); }, .reload = [this] { Bump(reloads); }};
  }
  void Bump(int& counter) {
    std::lock_guard lock(mu);
    ++counter;
    cv.notify_all();
  }
  bool WaitFor(const int& counter, int value) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(30), [&] { return counter >= value; });
  }
};

// True once `sig` is no longer pending (the watcher took it); bounded.
bool Taken(int sig) {
  for (int i = 0; i < 3000; ++i) {
    sigset_t pending;
    sigpending(&pending);
    if (sigismember(&pending, sig) == 0) return true;
    ::usleep(10'000);
  }
  return false;
}

TEST(SignalWatcherTest, HupReloadsAndTermStops) {
  SignalWatcher watcher("test");
  Seen seen;
  watcher.Start(seen.Handlers());
  ASSERT_EQ(::kill(::getpid(), SIGHUP), 0);
  ASSERT_TRUE(seen.WaitFor(seen.reloads, 1));
  ASSERT_EQ(::kill(::getpid(), SIGHUP), 0);
  ASSERT_TRUE(seen.WaitFor(seen.reloads, 2));
  ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);
  ASSERT_TRUE(seen.WaitFor(seen.stops, 1));
  watcher.Stop();
  std::lock_guard lock(seen.mu);
  EXPECT_EQ(seen.stops, 1);
  EXPECT_EQ(seen.reloads, 2);
}

TEST(SignalWatcherTest, AStraySigusr2DoesNotEndTheWatcher) {
  // SIGUSR2 is the watcher's own wake-up at Stop(); one sent by anyone else
  // must not leave SIGTERM blocked with nobody waiting for it.
  SignalWatcher watcher("test");
  Seen seen;
  watcher.Start(seen.Handlers());
  ASSERT_EQ(::kill(::getpid(), SIGUSR2), 0);
  // Only once the watcher has taken it: sigwait takes the lowest pending
  // signal first, and SIGINT would hide a watcher that quits on SIGUSR2.
  ASSERT_TRUE(Taken(SIGUSR2));
  ASSERT_EQ(::kill(::getpid(), SIGINT), 0);
  EXPECT_TRUE(seen.WaitFor(seen.stops, 1)) << "SIGINT after a stray SIGUSR2 was not handled";
  watcher.Stop();
}

TEST(SignalWatcherTest, StopWakesAnIdleWatcherAndAHupWithoutReloadIsHarmless) {
  SignalWatcher watcher("test");
  Seen seen;
  watcher.Start({.stop = [&seen] { seen.Bump(seen.stops); }, .reload = {}});
  ASSERT_EQ(::kill(::getpid(), SIGHUP), 0);  // logged; nothing to call
  watcher.Stop();                            // returns: the thread was woken and joined
  watcher.Stop();                            // idempotent
  std::lock_guard lock(seen.mu);
  EXPECT_EQ(seen.stops, 0);
}

}  // namespace
}  // namespace openimds::common
