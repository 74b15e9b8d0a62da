#include "admin/pending_write.h"

#include <algorithm>
#include <cstdint>
#include <utility>

namespace openimds::admin {

using common::Status;

void PendingWrite::OnReady(std::function<void()> ready) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ready_) {
      on_ready_ = std::move(ready);
      return;
    }
  }
  ready();
}

void PendingWrite::MarkReady() {
  std::function<void()> fn;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ready_ = true;
    fn = std::move(on_ready_);
  }
  if (fn) fn();
}

bool PendingWrite::ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_;
}

void WriteSubmitter::Submit(store::Write write, std::shared_ptr<PendingWrite> pending,
                            std::function<void(store::WriteOutcome&)> after_commit) {
  writes_.Submit(std::move(write), [this, pending, after_commit = std::move(after_commit)](
                                       store::WriteOutcome outcome) {
    if (after_commit) after_commit(outcome);
    int64_t newest = 0;
    if (outcome.status.ok()) {
      for (const auto& m : outcome.mutations) {
        if (m.changed) newest = std::max(newest, m.revision);
      }
    }
    pending->outcome = std::move(outcome);
    if (newest == 0) {
      pending->MarkReady();
      return;
    }
    // Read-your-writes: answer once this node's catalog has the write.
    follower_.WhenApplied(newest, [pending](Status visible) {
      pending->visible = std::move(visible);
      pending->MarkReady();
    });
  });
}

void HintCurrent(const catalog::Snapshot& snapshot, store::Mutation& m) {
  if (const catalog::Entry* e = snapshot.FindById(m.id)) {
    m.current_hint = e->instance;
    m.current_hint_revision = e->revision;
  }
}

common::Result<std::shared_ptr<const PendingWrite>> FinishedWrite(const common::Request& request) {
  auto pending = std::dynamic_pointer_cast<const PendingWrite>(request.resumed_from);
  if (!pending || !pending->ready()) {
    return common::Unavailable(
        "the write did not finish in time and may still be applied; GET the instance to see "
        "whether it did");
  }
  if (!pending->outcome.status.ok()) return pending->outcome.status;
  if (!pending->visible.ok()) return pending->visible;
  return pending;
}

}  // namespace openimds::admin
