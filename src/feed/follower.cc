#include "feed/follower.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "common/log.h"
#include "common/heap.h"
#include "common/thread_name.h"
#include "common/thread_priority.h"

namespace openimds::feed {

namespace {
constexpr std::string_view kComponent = "feed";
}  // namespace

Follower::Follower(Options options, store::Store& store, catalog::Catalog& catalog,
                   common::MetricsRegistry& metrics)
    : options_(options),
      store_(store),
      catalog_(catalog),
      pages_total_(metrics.GetCounter("feed_pages_total",
                                      "Pages of the store's change feed applied to the catalog.")),
      changes_total_(metrics.GetCounter("feed_changes_total",
                                        "Instance changes applied to the catalog.")),
      errors_total_(metrics.GetCounter(
          "feed_errors_total", "Reads of the change feed that failed (the store was away).")),
      metrics_(metrics) {
  metrics.AddGauge("feed_applied_revision", "Store revision the served catalog reflects.",
                   [this] { return static_cast<double>(applied()); });
  metrics.AddGauge("feed_watches", "Watches waiting for an instance to change.",
                   [this] { return static_cast<double>(watches()); });
  store_.SetCommitListener([this](int64_t) { Notify(); });
}

Follower::~Follower() {
  Stop();
  store_.SetCommitListener(nullptr);
}

common::Status Follower::Load() { return Resync("start-up load"); }

void Follower::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable() || stopping_) return;
  notified_ = true;  // catch up at once
  thread_ = std::thread([this] {
    common::NameCurrentThread("imds-feed");
    if (options_.background) common::LowerCurrentThreadPriority();
    Run();
  });
}

void Follower::Stop() {
  std::multimap<int64_t, std::function<void(common::Status)>> waiting;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    waiting.swap(waiting_);
    watches_.clear();
    watch_ids_.clear();
  }
  cv_.notify_all();
  applied_cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  for (auto& [revision, done] : waiting) done(common::Unavailable("the server is stopping"));
}

int64_t Follower::applied() const {
  std::lock_guard<std::mutex> lock(mu_);
  return applied_;
}

bool Follower::Healthy() const {
  std::lock_guard<std::mutex> lock(mu_);
  return healthy_;
}

void Follower::Notify() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    notified_ = true;
  }
  cv_.notify_one();
}

void Follower::WhenApplied(int64_t revision, std::function<void(common::Status)> done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      // Called below, outside the lock.
    } else if (applied_ < revision) {
      waiting_.emplace(revision, std::move(done));
      return;
    } else {
      revision = 0;  // already applied
    }
  }
  done(revision == 0 ? common::Status::Ok() : common::Unavailable("the server is stopping"));
}

bool Follower::WaitApplied(int64_t revision, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return applied_cv_.wait_for(lock, timeout,
                              [&] { return applied_ >= revision || stopping_; }) &&
         applied_ >= revision;
}

Follower::WatchId Follower::Watch(std::string id, int64_t after,
                                  std::function<void(int64_t revision)> fn) {
  int64_t fire_now = 0;
  WatchId watch = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    watch = next_watch_++;
    // Checked under mu_: a page published after this read fires the watch
    // from Published(), which takes mu_ after the catalog has the page.
    auto snapshot = catalog_.Current();
    if (const catalog::Entry* entry = snapshot->FindById(id); entry && entry->revision > after) {
      fire_now = entry->revision;
    } else if (!stopping_) {
      watch_ids_.emplace(watch, id);
      watches_[std::move(id)].push_back(WatchEntry{watch, after, std::move(fn)});
      return watch;
    } else {
      return watch;  // stopping: never fires, as documented for Stop()
    }
  }
  fn(fire_now);
  return watch;
}

bool Follower::CancelWatch(WatchId watch) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = watch_ids_.find(watch);
  if (it == watch_ids_.end()) return false;
  auto list = watches_.find(it->second);
  if (list != watches_.end()) {
    std::erase_if(list->second, [watch](const WatchEntry& w) { return w.id == watch; });
    if (list->second.empty()) watches_.erase(list);
  }
  watch_ids_.erase(it);
  return true;
}

size_t Follower::watches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return watch_ids_.size();
}

void Follower::Subscribe(std::function<void(const std::vector<Applied>&)> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  subscribers_.push_back(std::move(fn));
}

void Follower::Run() {
  std::chrono::milliseconds wait = options_.poll_interval;
  // Changes applied since the heap was last trimmed. A bulk import leaves its
  // garbage (request bodies, parsed pages, superseded trie nodes) spread
  // through the heap, and the store's page cache full; once the writes stop
  // for a poll interval, both go back to the system, so the resident size
  // after an import is what the catalog needs, not what the import passed
  // through.
  constexpr size_t kTrimAfterChanges = 10000;
  size_t untrimmed = 0;
  for (;;) {
    bool idle = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      idle = !cv_.wait_for(lock, wait, [this] { return notified_ || stopping_; });
      if (stopping_) return;
      notified_ = false;
    }
    const uint64_t before = changes_total_.Value();
    common::Status s = CatchUp();
    untrimmed += static_cast<size_t>(changes_total_.Value() - before);
    if (s.ok()) {
      wait = options_.poll_interval;
    } else {
      errors_total_.Inc();
      {
        std::lock_guard<std::mutex> lock(mu_);
        healthy_ = false;
      }
      common::LogRefusal(kComponent, "cannot follow the store's changes; serving the catalog "
                                     "as of revision " + std::to_string(applied()) + ": " +
                                         s.message());
      wait = std::min(options_.max_backoff, wait * 2);
    }
    catalog_.Reclaim();
    if (idle && untrimmed >= kTrimAfterChanges) {
      store_.ReleaseCaches();
      common::ReleaseFreeHeap();
      untrimmed = 0;
    }
  }
}

common::Status Follower::CatchUp() {
  int resyncs = 0;
  for (;;) {
    const int64_t since = applied();
    auto page = store_.ChangesSince(since, options_.page_size);
    if (!page.ok()) return page.status();
    if (page->resync_required) {
      // A resync that the very next read undoes again means the store keeps
      // contradicting itself: stop and retry later instead of looping.
      if (++resyncs > 1) {
        return common::Internal("change feed still inconsistent after a resync: " +
                                page->resync_reason);
      }
      if (common::Status s = Resync(page->resync_reason); !s.ok()) return s;
      continue;
    }
    if (page->through <= since) {
      std::lock_guard<std::mutex> lock(mu_);
      healthy_ = true;
      return common::Status::Ok();
    }
    std::vector<catalog::Change> changes;
    std::vector<Applied> applied_list;
    changes.reserve(page->changes.size());
    applied_list.reserve(page->changes.size());
    for (store::Change& c : page->changes) {
      std::shared_ptr<const model::Instance> instance = std::move(c.instance);
      const int64_t revision = instance ? c.instance_revision : c.revision;
      changes.push_back(catalog::Change{c.id, instance, revision});
      applied_list.push_back(Applied{std::move(c.id), std::move(instance), revision});
    }
    catalog_.Apply(std::move(changes), page->through);
    pages_total_.Inc();
    changes_total_.Inc(applied_list.size());
    Published(applied_list, page->through);
    if (page->through >= page->latest) return common::Status::Ok();
  }
}

common::Status Follower::Resync(std::string_view reason) {
  using Clock = std::chrono::steady_clock;
  const auto started = Clock::now();
  auto before = catalog_.Current();
  // Indexed as the store hands each record over, while its threads parse
  // the next ones.
  catalog::SnapshotBuilder builder;
  auto revision = store_.Scan([&builder](store::SharedInstance&& stored) {
    builder.Add(catalog::Entry{std::move(stored.instance), stored.revision});
    return common::Status::Ok();
  });
  if (!revision.ok()) return revision.status();
  const size_t count = builder.size();
  catalog_.ReplaceAll(std::move(builder), *revision);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  metrics_
      .GetCounter("feed_resyncs_total",
                  "Full reloads of the catalog from the store (start-up, or a change feed "
                  "that was compacted past this node, had a gap or a corrupt entry).")
      .Inc();
  common::Log(before->size() == 0 && before->revision() == 0 ? common::LogLevel::kInfo
                                                             : common::LogLevel::kWarn,
              kComponent,
              "loaded " + std::to_string(count) + " instances at revision " +
                  std::to_string(*revision) + " in " + std::to_string(ms) + " ms (" +
                  std::string(reason) + ")");
  // What differs from before, for watches and subscribers. O(N), and only on
  // a resync (the start-up load has nobody to tell).
  std::vector<Applied> diff;
  bool anyone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    anyone = !watches_.empty() || !subscribers_.empty();
  }
  if (anyone) {
    auto after = catalog_.Current();
    after->ForEach([&](const catalog::Entry& e) {
      const catalog::Entry* old = before->FindById(e.instance->id);
      if (old == nullptr || old->instance != e.instance) {
        diff.push_back(Applied{e.instance->id, e.instance, e.revision});
      }
    });
    before->ForEach([&](const catalog::Entry& e) {
      if (after->FindById(e.instance->id) == nullptr) {
        diff.push_back(Applied{e.instance->id, nullptr, *revision});
      }
    });
  }
  Published(diff, *revision);
  return common::Status::Ok();
}

void Follower::Published(const std::vector<Applied>& changes, int64_t revision) {
  // Subscribers and watches hear of a page before anyone waiting for its
  // revision is released: once WaitApplied/WhenApplied report a revision,
  // everything that depends on it has been told.
  std::vector<std::pair<std::function<void(int64_t)>, int64_t>> fired;
  std::vector<std::function<void(const std::vector<Applied>&)>> subscribers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Collected under mu_ after the catalog published the page: a Watch()
    // that ran before this registered and fires here; one after it sees the
    // page in the catalog and fires itself.
    if (!watches_.empty()) {
      for (const Applied& change : changes) {
        auto list = watches_.find(change.id);
        if (list == watches_.end()) continue;
        std::erase_if(list->second, [&](WatchEntry& w) {
          if (change.revision <= w.after) return false;
          fired.emplace_back(std::move(w.fn), change.revision);
          watch_ids_.erase(w.id);
          return true;
        });
        if (list->second.empty()) watches_.erase(list);
      }
    }
    if (!changes.empty()) subscribers = subscribers_;
  }
  for (auto& fn : subscribers) fn(changes);
  for (auto& [fn, rev] : fired) fn(rev);

  std::vector<std::function<void(common::Status)>> ready;
  {
    std::lock_guard<std::mutex> lock(mu_);
    applied_ = revision;
    healthy_ = true;
    auto end = waiting_.upper_bound(revision);
    for (auto it = waiting_.begin(); it != end; ++it) ready.push_back(std::move(it->second));
    waiting_.erase(waiting_.begin(), end);
  }
  applied_cv_.notify_all();
  for (auto& done : ready) done(common::Status::Ok());
}

}  // namespace openimds::feed
