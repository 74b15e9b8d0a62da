#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "catalog/catalog.h"
#include "common/metrics.h"
#include "common/status.h"
#include "store/store.h"

namespace openimds::feed {

// One instance changed by an applied page (Follower::Subscribe).
struct Applied {
  std::string id;
  std::shared_ptr<const model::Instance> instance;  // nullptr: deleted
  int64_t revision = 0;
};

// Keeps a catalog::Catalog equal to a store::Store by following the store's
// change feed: the catalog's only writer in a running server.
//
// A thread of its own waits for the store's commit listener (commits made
// through this process) or for Options::poll_interval (commits by other
// processes on the same store), reads ChangesSince(applied) in pages and
// applies each page to the catalog as one delta publish. When the feed cannot
// say what changed (compacted past us, a gap, a corrupt entry) it rebuilds the
// catalog from Store::Scan: resync, counted in
// feed_resyncs_total{reason} with one log line. When the store is away it
// keeps the catalog it has, counts feed_errors_total, logs (rate-limited) and
// retries with backoff; Healthy() turns false until a read works again.
//
// Thread-safety: every public method may be called from any thread.
// Callbacks (WhenApplied, Watch, Subscribe) run on the follower's thread (or
// at once on the caller's, as documented per method) and must be short and
// must not call back into the Follower's blocking methods.
class Follower {
 public:
  struct Options {
    // How often to look for commits made by other processes (and to retry
    // after an error). Commits through this process wake the follower at once.
    std::chrono::milliseconds poll_interval{200};
    // Changes read per page (one catalog publish each).
    size_t page_size = 20000;
    // Longest wait between retries while the store is away.
    std::chrono::milliseconds max_backoff{5000};
    // Run the follower's thread below normal CPU priority
    // (common::kBackgroundNice): applying writes yields to serving guests.
    bool background = true;
  };

  // `store`, `catalog` and `metrics` are borrowed and must outlive this
  // object. Registers itself as the store's commit listener.
  Follower(Options options, store::Store& store, catalog::Catalog& catalog,
           common::MetricsRegistry& metrics);
  ~Follower();  // Stop()
  Follower(const Follower&) = delete;
  Follower& operator=(const Follower&) = delete;

  // Rebuilds the catalog from the whole store (start-up; Start() also does it
  // when Load was never called). The store's error when it cannot read
  // (Unavailable, Internal for a corrupt record); the catalog is then unchanged.
  common::Status Load();

  // Starts following. Subscribe first: pages applied before a subscriber
  // registers are not replayed to it.
  void Start();
  // Stops the thread. Pending WhenApplied callbacks are called with
  // Unavailable; watches are dropped without a call. Idempotent.
  void Stop();

  // The store revision the catalog reflects.
  int64_t applied() const;
  // False while the last read of the store failed.
  bool Healthy() const;

  // Calls done(OK) once the catalog reflects `revision` (at once, on the
  // caller's thread, if it already does), or done(Unavailable) if the
  // follower stops first.
  void WhenApplied(int64_t revision, std::function<void(common::Status)> done);
  // Blocks until the catalog reflects `revision` or `timeout` passes; true if
  // it does.
  bool WaitApplied(int64_t revision, std::chrono::milliseconds timeout);

  using WatchId = uint64_t;
  // Calls fn(revision) once, when instance `id` changes (put or delete) at a
  // revision greater than `after`; at once, on the caller's thread, when the
  // catalog's entry for `id` already has a revision greater than `after`. A
  // watch on an absent id fires when the id is created. A watch costs a few
  // hundred bytes until it fires or is cancelled; nothing polls.
  WatchId Watch(std::string id, int64_t after, std::function<void(int64_t revision)> fn);
  // After it returns fn is not called, unless it is running right now. False
  // if the watch had fired or was cancelled already.
  bool CancelWatch(WatchId watch);
  // Number of watches waiting.
  size_t watches() const;

  // Calls fn with every applied page, after the catalog publishes it (after a
  // resync: every instance that differs from before).
  void Subscribe(std::function<void(const std::vector<Applied>&)> fn);

  // Wakes the follower at once (the store's commit listener calls it).
  void Notify();

 private:
  void Run();
  // Reads and applies pages until caught up. Non-OK when the store failed.
  common::Status CatchUp();
  common::Status Resync(std::string_view reason);
  // Calls the subscribers and the watches that `changes` concern, then
  // records `revision` as applied and releases its waiters.
  void Published(const std::vector<Applied>& changes, int64_t revision);

  // Constant after construction.
  const Options options_;
  store::Store& store_;
  catalog::Catalog& catalog_;
  common::Counter& pages_total_;
  common::Counter& changes_total_;
  common::Counter& errors_total_;
  common::MetricsRegistry& metrics_;

  mutable std::mutex mu_;
  std::vector<std::function<void(const std::vector<Applied>&)>> subscribers_;  // guarded by mu_
  std::condition_variable cv_;  // wakes the thread (notified_, stopping_)
  std::condition_variable applied_cv_;  // WaitApplied
  bool notified_ = false;  // guarded by mu_
  bool stopping_ = false;  // guarded by mu_
  bool healthy_ = true;    // guarded by mu_
  int64_t applied_ = 0;    // guarded by mu_
  // revision -> callbacks waiting for it. Guarded by mu_.
  std::multimap<int64_t, std::function<void(common::Status)>> waiting_;
  struct WatchEntry {
    WatchId id;
    int64_t after;
    std::function<void(int64_t)> fn;
  };
  // instance id -> watches on it; watch id -> instance id. Guarded by mu_.
  std::unordered_map<std::string, std::vector<WatchEntry>> watches_;
  std::unordered_map<WatchId, std::string> watch_ids_;
  WatchId next_watch_ = 1;  // guarded by mu_

  std::thread thread_;
};

}  // namespace openimds::feed
