#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "common/http_message.h"
#include "common/result.h"
#include "common/status.h"
#include "feed/follower.h"
#include "model/instance.h"
#include "store/store.h"
#include "store/write_queue.h"

// An admin write in flight, from the write queue to the answer. Internal to
// the admin module.
namespace openimds::admin {

// One admin write in flight: filled on the write queue's thread, read back by
// the resumed handler. The outcome and what the route recorded are written
// before MarkReady() and read only after the http core saw it ready (the
// mutex orders the two).
class PendingWrite final : public common::Deferred {
 public:
  void OnReady(std::function<void()> ready) override;
  // A write waits for the disk and for its turn in the queue, not for a
  // remote peer; this is long enough for a busy store (its busy timeout is
  // 5 s) and a big import, and a bound on a connection parked for it.
  std::chrono::milliseconds MaxWait() const override { return std::chrono::seconds(60); }

  void MarkReady();
  bool ready() const;

  // Set before MarkReady().
  store::WriteOutcome outcome;
  common::Status visible;  // the follower's word: OK once the catalog has the write
  // What the route needs to answer: the record written (PUT, PATCH), the
  // number of instances (import).
  std::shared_ptr<model::Instance> written;
  std::string id;
  size_t count = 0;
  std::vector<int> lines;  // import: the body's line number of each mutation

 private:
  mutable std::mutex mu_;
  bool ready_ = false;                // guarded by mu_
  std::function<void()> on_ready_;    // guarded by mu_
};

// Hands admin writes to the store's write queue and marks each PendingWrite
// ready once its write is durable and this node's catalog has it
// (read-your-writes), or once it was refused. Thread-safe.
class WriteSubmitter {
 public:
  // Both borrowed; they must outlive this object.
  WriteSubmitter(store::WriteQueue& writes, feed::Follower& follower)
      : writes_(writes), follower_(follower) {}

  // Queues `write` for `pending`. `after_commit`, if set, runs on the write
  // queue's thread with the outcome before the answer is released (clean-up
  // that must follow a commit); it may reword the outcome's status.
  void Submit(store::Write write, std::shared_ptr<PendingWrite> pending,
              std::function<void(store::WriteOutcome&)> after_commit = {});

 private:
  store::WriteQueue& writes_;
  feed::Follower& follower_;
};

// Tells the store the record this node's catalog holds for the mutation's
// id, so the write need not parse the stored row when it is that one.
void HintCurrent(const catalog::Snapshot& snapshot, store::Mutation& m);

// On the resumed call of a deferred write: its PendingWrite once the write
// committed and is visible; its refusal; or Unavailable when the write did not
// finish within the deferral bound.
common::Result<std::shared_ptr<const PendingWrite>> FinishedWrite(const common::Request& request);

}  // namespace openimds::admin
