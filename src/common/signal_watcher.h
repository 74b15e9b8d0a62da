#pragma once

#include <signal.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>

namespace openimds::common {

// The signals of a long-running command (`serve`, `proxy`): SIGINT and
// SIGTERM stop it (the caller drains), SIGHUP reloads (re-reads key files).
//
// The constructor blocks SIGINT, SIGTERM, SIGHUP and SIGUSR2 in the calling
// thread; construct it before any other thread starts, so that every thread
// inherits the mask and the signals reach only the watcher's thread, which
// takes them with sigwait. The handlers therefore run as ordinary code on
// that thread (no async-signal-safety rules), off the I/O threads. Until
// Start(), a signal stays pending: a SIGHUP during start-up is not fatal.
// SIGUSR2 wakes the watcher at Stop(); one sent from outside is ignored.
//
// Child processes do not inherit the mask (common::RunSubprocess resets it).
class SignalWatcher {
 public:
  struct Handlers {
    // SIGINT or SIGTERM: called once; the watcher then ends (later stop
    // signals stay blocked, so they cannot cut the drain short).
    std::function<void()> stop;
    // SIGHUP: called for each; empty means nothing to reload (logged).
    std::function<void()> reload;
  };

  // `component` names the command in its log lines ("serve", "proxy").
  explicit SignalWatcher(std::string component);
  ~SignalWatcher();  // Stop()
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  // Starts the watcher's thread. Call at most once.
  void Start(Handlers handlers);

  // Wakes and joins the watcher; a handler in progress finishes first. Call
  // it before what the handlers use goes away. Idempotent.
  void Stop();

 private:
  const std::string component_;
  sigset_t set_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace openimds::common
