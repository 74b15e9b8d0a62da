#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>

#include "auth/request_signer.h"

namespace openimds::auth {

namespace internal {

// The type-erased core of Swappable<T>; see there for the contract.
class SwappableCore {
 public:
  explicit SwappableCore(std::shared_ptr<const void> initial);
  SwappableCore(const SwappableCore&) = delete;
  SwappableCore& operator=(const SwappableCore&) = delete;

  const void* Get() const;
  std::shared_ptr<const void> Snapshot() const;
  void Set(std::shared_ptr<const void> next);
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  // Constant after construction: unique in the process, never reused, so a
  // thread's cache entry can never be mistaken for another holder's.
  const uint64_t id_;
  // Bumped (under mu_) by every Set; readers compare it with their cache.
  std::atomic<uint64_t> generation_{1};
  mutable std::mutex mu_;
  std::shared_ptr<const void> current_;  // guarded by mu_; never null
};

}  // namespace internal

// An immutable object that can be replaced while I/O threads use it: how
// signing keys rotate without a restart (SIGHUP re-reads the key files).
//
// Readers call Get() on every request. The fast path is one acquire load of
// a generation counter and a look-up in a small per-thread cache: no lock,
// no allocation, no reference-count traffic between threads. Only the first
// Get() on a thread after a Set() takes the mutex, to copy the new
// shared_ptr into that thread's cache.
//
// Lifetime: an object stays alive while any thread's cache still holds it,
// i.e. until each thread that used it has called Get() again (or exited).
// A replaced object therefore stays valid for calls already running with it.
//
// Thread-safety: Get, Snapshot, Set and generation may be called from any
// thread concurrently. Not movable: share it by reference.
template <typename T>
class Swappable {
 public:
  // `initial` must not be null.
  explicit Swappable(std::shared_ptr<const T> initial) : core_(std::move(initial)) {}

  // The current object. The reference stays valid until this thread's next
  // Get() on any Swappable (which may refresh or reuse the cache slot), so
  // use it at once and never keep it across a coroutine suspension point;
  // take a Snapshot() for that.
  const T& Get() const { return *static_cast<const T*>(core_.Get()); }

  // The current object, owned by the caller (takes the mutex: not for the
  // hot path). For logs and for holding across suspension points.
  std::shared_ptr<const T> Snapshot() const {
    return std::static_pointer_cast<const T>(core_.Snapshot());
  }

  // Installs `next` (must not be null): every Get() that starts after Set()
  // returns sees it; calls already running finish with the old object.
  void Set(std::shared_ptr<const T> next) { core_.Set(std::move(next)); }

  // Starts at 1; +1 per Set(). For tests and logs.
  uint64_t generation() const { return core_.generation(); }

 private:
  internal::SwappableCore core_;
};

// The proxy's signer and the chain / server verifiers: the keys of a
// --key-file or --proxy-keys-file, replaced on SIGHUP.
using SignerHolder = Swappable<RequestSigner>;

}  // namespace openimds::auth
