#include "store/write_queue.h"

#include "common/thread_name.h"
#include "common/thread_priority.h"

#include <future>
#include <string>
#include <utility>
#include <vector>

namespace openimds::store {

WriteQueue::WriteQueue(Store& store, Options options)
    : store_(store), options_(options), thread_([this] {
        common::NameCurrentThread("imds-writer");
        if (options_.background) common::LowerCurrentThreadPriority();
        Run();
      }) {}

WriteQueue::~WriteQueue() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void WriteQueue::Submit(Write write, std::function<void(WriteOutcome)> done) {
  WriteOutcome refused;
  {
    std::lock_guard lock(mu_);
    const size_t n = write.mutations.size();
    if (stopping_) {
      refused.status = common::Unavailable("write queue is shutting down");
    } else if (!queue_.empty() && queued_mutations_ + n > options_.max_queued_mutations) {
      refused.status = common::ResourceExhausted(
          "the server has " + std::to_string(queued_mutations_) +
          " instance writes waiting for the disk; retry shortly");
    } else {
      queued_mutations_ += n;
      queue_.push_back(Pending{std::move(write), std::move(done)});
      cv_.notify_one();
      return;
    }
  }
  done(std::move(refused));
}

WriteOutcome WriteQueue::CommitOne(Write write) {
  std::promise<WriteOutcome> promise;
  std::future<WriteOutcome> future = promise.get_future();
  Submit(std::move(write), [&promise](WriteOutcome outcome) { promise.set_value(std::move(outcome)); });
  return future.get();
}

void WriteQueue::Run() {
  std::vector<Write> writes;
  std::vector<std::function<void(WriteOutcome)>> dones;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      // Drained and told to stop: the destructor accepts nothing more.
      if (queue_.empty()) return;
      // No waiting for a group to fill: whatever queued while the last commit
      // ran is the group. Under load that is many Writes; when idle, a lone
      // Write commits at once.
      size_t mutations = 0;
      while (!queue_.empty() && writes.size() < options_.max_group_writes) {
        const size_t next = queue_.front().write.mutations.size();
        if (!writes.empty() && mutations + next > options_.max_group_mutations) break;
        mutations += next;
        queued_mutations_ -= next;
        writes.push_back(std::move(queue_.front().write));
        dones.push_back(std::move(queue_.front().done));
        queue_.pop_front();
      }
    }
    auto outcomes = store_.Commit(writes);
    if (outcomes.ok() && outcomes->size() != writes.size()) {
      outcomes = common::Internal("store returned " + std::to_string(outcomes->size()) +
                                  " outcomes for " + std::to_string(writes.size()) + " writes");
    }
    for (size_t i = 0; i < dones.size(); ++i) {
      WriteOutcome outcome;
      if (outcomes.ok()) {
        outcome = std::move((*outcomes)[i]);
      } else {
        outcome.status = outcomes.status();
      }
      dones[i](std::move(outcome));
    }
    writes.clear();
    dones.clear();
  }
}

}  // namespace openimds::store
