#pragma once

#include <chrono>
#include <functional>
#include <list>

namespace openimds::proxy {

// Every deadline of one I/O thread's connections, enforced by one coarse
// timer (the owner calls Sweep every tick): the hot path only stores a time
// point, with no timer per request. Touched only by its own thread.
class Deadlines {
 public:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    // Closes the connection; its pending I/O then fails. The argument is true
    // when a deadline cut a request short (not an idle close or shutdown),
    // so the owner can count and log it before the peer sees the close.
    std::function<void(bool cut_short)> expire;
    Clock::time_point at = Clock::time_point::max();
    bool idle = false;  // between requests: closed at once on shutdown
  };
  using Handle = std::list<Entry>::iterator;

  Handle Add(std::function<void(bool)> expire) {
    entries_.push_front(Entry{std::move(expire)});
    return entries_.begin();
  }
  void Remove(Handle h) { entries_.erase(h); }

  // Expires entries due at `now`, and idle ones too when `close_idle`. An
  // expired entry is disarmed (at = max) until its owner re-arms it.
  // expire() must not add or remove entries synchronously (closing a socket
  // only posts its handlers, so it does not).
  void Sweep(Clock::time_point now, bool close_idle) {
    for (auto& e : entries_) {
      const bool due = e.at <= now;
      if (due || (close_idle && e.idle)) {
        e.at = Clock::time_point::max();
        e.expire(due && !e.idle);
      }
    }
  }
  void ExpireAll() {
    for (auto& e : entries_) e.expire(false);
  }
  size_t size() const { return entries_.size(); }

 private:
  std::list<Entry> entries_;
};

}  // namespace openimds::proxy
