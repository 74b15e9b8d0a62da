#pragma once

#include <atomic>
#include <chrono>

namespace openimds::common {

// Wall-clock time, injected so tests can move it (token expiry, credential
// expiry, scheduled events). Implementations are safe for concurrent use.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::system_clock::time_point Now() const = 0;
};

// The real clock.
class SystemClock final : public Clock {
 public:
  std::chrono::system_clock::time_point Now() const override {
    return std::chrono::system_clock::now();
  }
};

// A clock that only moves when told to. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(std::chrono::system_clock::time_point start)
      : ns_(start.time_since_epoch().count()) {}
  std::chrono::system_clock::time_point Now() const override {
    return std::chrono::system_clock::time_point(
        std::chrono::system_clock::duration(ns_.load(std::memory_order_acquire)));
  }
  void Advance(std::chrono::system_clock::duration d) {
    ns_.fetch_add(d.count(), std::memory_order_acq_rel);
  }
  void Set(std::chrono::system_clock::time_point t) {
    ns_.store(t.time_since_epoch().count(), std::memory_order_release);
  }

 private:
  std::atomic<std::chrono::system_clock::duration::rep> ns_;
};

}  // namespace openimds::common
