#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "store/store.h"

namespace openimds::store {

// Group commit: collects Writes submitted from any number of threads and
// commits whatever has queued up in one Store::Commit (one transaction, one
// fsync), so that N concurrent writers cost about one fsync per group instead
// of one each. While a group commits, the next one gathers.
//
// Each Write is still all-or-nothing on its own: one refused Write does not
// affect the others in its group (Store::Commit's savepoints). Writes are
// committed in the order they were submitted, so two Writes to one id from
// one thread apply in that thread's order.
//
// Thread-safe: Submit and CommitOne may be called from any thread at once.
// The queue owns one thread, on which it calls Store::Commit and then every
// `done` callback; a callback must be short and must not block on the queue
// (calling Submit from it is fine; calling CommitOne from it deadlocks).
class WriteQueue {
 public:
  struct Options {
    // The most Writes in one group, and the most mutations (summed over the
    // group's Writes). A group always takes at least one Write, however many
    // mutations it has. Bounds the time one transaction holds the store's
    // write lock and the memory of one group.
    size_t max_group_writes = 512;
    size_t max_group_mutations = 40000;
    // The most mutations waiting (not yet in a commit). A Write that would
    // go past it is refused at once with ResourceExhausted instead of
    // queueing: writers faster than the disk get told to back off rather
    // than growing the server's memory without bound. A lone Write larger
    // than this is still taken when the queue is empty.
    size_t max_queued_mutations = 200000;
    // Run the queue's thread below normal CPU priority
    // (common::kBackgroundNice), so that on a busy machine guests are served
    // before writes are committed.
    bool background = true;
  };

  // `store` must outlive the queue. Starts the queue's thread.
  explicit WriteQueue(Store& store) : WriteQueue(store, Options()) {}
  WriteQueue(Store& store, Options options);

  // Stops accepting Writes, commits everything already queued (every pending
  // `done` is called), and joins the thread.
  ~WriteQueue();

  WriteQueue(const WriteQueue&) = delete;
  WriteQueue& operator=(const WriteQueue&) = delete;

  // Queues `write`; `done` is called exactly once, on the queue's thread, with
  // its outcome: the WriteOutcome Store::Commit reported for it, or, when the
  // whole group failed (Commit returned non-OK: Unavailable,
  // InsufficientStorage), that status for every Write of the group. OK means
  // durable. Once the destructor has begun, `done` is called at once, on the
  // calling thread, with Unavailable "write queue is shutting down"; and so
  // it is, with ResourceExhausted, when the queue already holds
  // Options::max_queued_mutations.
  void Submit(Write write, std::function<void(WriteOutcome)> done);

  // Submit and wait for the outcome. Not from a `done` callback.
  WriteOutcome CommitOne(Write write);

 private:
  struct Pending {
    Write write;
    std::function<void(WriteOutcome)> done;
  };

  void Run();

  // Constant after construction.
  Store& store_;
  const Options options_;

  std::mutex mu_;
  std::condition_variable cv_;   // signalled on Submit and on stop
  size_t queued_mutations_ = 0;  // summed over queue_; guarded by mu_
  std::deque<Pending> queue_;    // guarded by mu_
  bool stopping_ = false;        // guarded by mu_

  std::thread thread_;  // started last, joined by the destructor
};

}  // namespace openimds::store
