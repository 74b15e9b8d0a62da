#include "service/instance_limiter.h"

#include <algorithm>
#include <functional>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/log.h"

namespace openimds::service {
namespace {

constexpr int64_t kNsPerSecond = 1'000'000'000;
// A shard sweeps when it has doubled since its last sweep, but never below
// this size: small shards are cheap to keep.
constexpr size_t kMinSweepSize = 64;
// A shard at its cap sweeps at most this often, so a shard full of busy
// instances does not rescan itself on every new instance's request.
constexpr int64_t kFullSweepIntervalNs = kNsPerSecond;

int64_t NowNs(const common::Clock& clock) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock.Now().time_since_epoch())
      .count();
}

// The key keeps the hash it was filed under, so a lookup hashes the id once
// (for the shard and the bucket both) and a rehash never hashes again.
struct Key {
  uint64_t hash;
  std::string id;
};
struct KeyView {
  uint64_t hash;
  std::string_view id;
};
struct KeyHash {
  using is_transparent = void;
  size_t operator()(const Key& k) const { return k.hash; }
  size_t operator()(const KeyView& k) const { return k.hash; }
};
struct KeyEqual {
  using is_transparent = void;
  static std::string_view Id(const Key& k) { return k.id; }
  static std::string_view Id(const KeyView& k) { return k.id; }
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return a.hash == b.hash && Id(a) == Id(b);
  }
};

}  // namespace

struct InstanceLimiter::Entry {
  // GCRA's theoretical arrival time (ns since the clock's epoch): the bucket
  // is full when tat_ns <= now, and admits a request while tat_ns - now <=
  // (burst - 1) / rate. Guarded by the shard's mutex.
  int64_t tat_ns = 0;
  // Requests in flight. Raised under the shard's mutex; lowered by Slot
  // without it. An entry is swept only when it reads 0 under the mutex, and
  // no Slot exists then, so a Slot never outlives its entry.
  std::atomic<int32_t> in_flight{0};
  // Connections open, the same way (AdmitConnection's Slot).
  std::atomic<int32_t> connections{0};
  // Refusals since this entry was made. Guarded by the shard's mutex.
  uint64_t refused_rate = 0;
  uint64_t refused_concurrency = 0;
  uint64_t refused_connections = 0;
};

struct alignas(64) InstanceLimiter::Shard {
  std::mutex mu;
  std::unordered_map<Key, Entry, KeyHash, KeyEqual> entries;  // guarded by mu
  size_t sweep_at = kMinSweepSize;                            // guarded by mu
  int64_t next_full_sweep_ns = 0;                             // guarded by mu
};

struct InstanceLimiter::Retired {
  mutable std::mutex mu;
  std::vector<Row> rows;  // guarded by mu; at most top_instances
};

InstanceLimiter::InstanceLimiter(Options options, const common::Clock& clock,
                                 common::MetricsRegistry& metrics)
    : options_(std::move(options)),
      clock_(clock),
      rate_limited_(metrics.GetCounter("metadata_rate_limited_total",
                                       "Guest requests refused (429) over their instance's "
                                       "limits, by which limit.",
                                       "reason=\"rate\"")),
      concurrency_limited_(metrics.GetCounter("metadata_rate_limited_total",
                                              "Guest requests refused (429) over their "
                                              "instance's limits, by which limit.",
                                              "reason=\"concurrency\"")),
      connections_limited_(metrics.GetCounter("metadata_rate_limited_total",
                                              "Guest requests refused (429) over their "
                                              "instance's limits, by which limit.",
                                              "reason=\"connections\"")),
      untracked_(metrics.GetCounter(
          "metadata_rate_limiter_untracked_total",
          "Guest requests admitted without per-instance limits because the limiter "
          "tracked as many instances as it may.")),
      retired_(std::make_unique<Retired>()) {
  shard_count_ = std::max<size_t>(1, options_.shards);
  while ((shard_count_ & (shard_count_ - 1)) != 0) {
    shard_count_ &= shard_count_ - 1;  // round down to a power of two
  }
  per_shard_cap_ = std::max<size_t>(1, options_.max_tracked / shard_count_);
  shards_ = std::make_unique<Shard[]>(shard_count_);
  metrics.AddGauge("metadata_rate_limiter_tracked_instances",
                   "Instances whose request limits the limiter holds state for now.",
                   [this] { return static_cast<double>(tracked()); });
  metrics.AddGauge("metadata_rate_limited_held_requests",
                   "Refused guest requests whose 429 is being held back now (direct listeners).",
                   [this] { return static_cast<double>(held_.load(std::memory_order_relaxed)); });
  metrics.AddCounterFamily(
      "metadata_rate_limited_instance_total",
      "Refusals over per-instance limits for the few instances refused most recently and "
      "most (a bounded view; metadata_rate_limited_total has the exact totals).",
      [this] {
        common::MetricsRegistry::Series out;
        for (const Row& row : TopLimited()) {
          // Instance ids are [A-Za-z0-9._:-]: nothing to escape in a label value.
          out.emplace_back("instance=\"" + row.instance + "\",reason=\"rate\"", row.rate);
          out.emplace_back("instance=\"" + row.instance + "\",reason=\"concurrency\"",
                           row.concurrency);
          out.emplace_back("instance=\"" + row.instance + "\",reason=\"connections\"",
                           row.connections);
        }
        return out;
      });
}

InstanceLimiter::~InstanceLimiter() = default;

Limits InstanceLimiter::Effective(const model::RequestLimits& record) const {
  Limits l;
  l.requests_per_second = record.requests_per_second
                              ? static_cast<uint32_t>(*record.requests_per_second)
                              : options_.requests_per_second;
  l.burst =
      std::max<uint32_t>(1, record.burst ? static_cast<uint32_t>(*record.burst) : options_.burst);
  l.max_in_flight =
      record.max_in_flight ? static_cast<uint32_t>(*record.max_in_flight) : options_.max_in_flight;
  l.max_connections = record.max_connections ? static_cast<uint32_t>(*record.max_connections)
                                             : options_.max_connections;
  return l;
}

InstanceLimiter::Shard& InstanceLimiter::ShardFor(uint64_t hash) const {
  // The high bits: the maps' bucket index uses the hash modulo their size.
  return shards_[(hash >> 40) & (shard_count_ - 1)];
}

void InstanceLimiter::Sweep(Shard& shard, int64_t now_ns) {
  for (auto it = shard.entries.begin(); it != shard.entries.end();) {
    Entry& e = it->second;
    if (e.tat_ns <= now_ns && e.in_flight.load(std::memory_order_acquire) == 0 &&
        e.connections.load(std::memory_order_acquire) == 0) {
      const Row row{it->first.id, e.refused_rate, e.refused_concurrency, e.refused_connections};
      if (row.total() > 0) Retire(row);
      it = shard.entries.erase(it);
    } else {
      ++it;
    }
  }
}

void InstanceLimiter::Retire(const Row& retired) {
  if (options_.top_instances == 0) return;
  std::lock_guard<std::mutex> lock(retired_->mu);
  auto& rows = retired_->rows;
  for (Row& row : rows) {
    if (row.instance == retired.instance) {
      row.rate += retired.rate;
      row.concurrency += retired.concurrency;
      row.connections += retired.connections;
      return;
    }
  }
  if (rows.size() < options_.top_instances) {
    rows.push_back(retired);
    return;
  }
  // Full: the newcomer replaces the row refused least, if it was refused more.
  auto least = std::min_element(rows.begin(), rows.end(),
                                [](const Row& a, const Row& b) { return a.total() < b.total(); });
  if (least->total() < retired.total()) *least = retired;
}

InstanceLimiter::Entry* InstanceLimiter::FindOrMake(std::unique_lock<std::mutex>& lock,
                                                    Shard& shard, uint64_t hash,
                                                    std::string_view instance_id, int64_t now) {
  auto it = shard.entries.find(KeyView{hash, instance_id});
  if (it != shard.entries.end()) return &it->second;
  const size_t size = shard.entries.size();
  if (size >= shard.sweep_at || (size >= per_shard_cap_ && now >= shard.next_full_sweep_ns)) {
    Sweep(shard, now);
    shard.sweep_at = std::max(kMinSweepSize, 2 * shard.entries.size());
    shard.next_full_sweep_ns = now + kFullSweepIntervalNs;
  }
  if (shard.entries.size() >= per_shard_cap_) {
    lock.unlock();
    untracked_.Inc();
    return nullptr;
  }
  return &shard.entries
              .emplace(std::piecewise_construct,
                       std::forward_as_tuple(Key{hash, std::string(instance_id)}),
                       std::forward_as_tuple())
              .first->second;
}

InstanceLimiter::Decision InstanceLimiter::AdmitConnection(std::string_view instance_id,
                                                           const Limits& limits) {
  Decision d;
  if (limits.max_connections == 0) return d;
  const int64_t now = NowNs(clock_);
  const uint64_t hash = std::hash<std::string_view>()(instance_id);
  Shard& shard = ShardFor(hash);
  std::unique_lock<std::mutex> lock(shard.mu);
  Entry* e = FindOrMake(lock, shard, hash, instance_id, now);
  if (e == nullptr) return d;
  if (e->connections.load(std::memory_order_relaxed) >=
      static_cast<int32_t>(limits.max_connections)) {
    ++e->refused_connections;
    return Refuse(lock, connections_limited_, Reason::kConnections, 1, now, instance_id, limits);
  }
  e->connections.fetch_add(1, std::memory_order_relaxed);
  d.slot = Slot(&e->connections);
  return d;
}

InstanceLimiter::Decision InstanceLimiter::Refuse(std::unique_lock<std::mutex>& lock,
                                                  common::Counter& counter, Reason reason,
                                                  int64_t retry_after_s, int64_t now_ns,
                                                  std::string_view id, const Limits& limits) {
  lock.unlock();
  counter.Inc();
  Decision d;
  d.admitted = false;
  d.reason = reason;
  d.retry_after_s = retry_after_s;
  NoteRefusal(now_ns, id, reason, limits);
  return d;
}

InstanceLimiter::Decision InstanceLimiter::Admit(std::string_view instance_id,
                                                 const Limits& limits) {
  Decision d;
  if (limits.requests_per_second == 0 && limits.max_in_flight == 0) return d;
  const int64_t now = NowNs(clock_);
  const uint64_t hash = std::hash<std::string_view>()(instance_id);
  Shard& shard = ShardFor(hash);
  std::unique_lock<std::mutex> lock(shard.mu);
  Entry* found = FindOrMake(lock, shard, hash, instance_id, now);
  if (found == nullptr) return d;
  Entry& e = *found;

  int64_t new_tat = 0;
  if (limits.requests_per_second > 0) {
    const int64_t interval = std::max<int64_t>(1, kNsPerSecond / limits.requests_per_second);
    const int64_t tolerance = interval * (static_cast<int64_t>(limits.burst) - 1);
    // Never more than one empty bucket of debt: the bound holds after every
    // admission, so more means the clock stepped back or the record's limits
    // shrank, and neither should lock the instance out for longer.
    e.tat_ns = std::min(e.tat_ns, now + tolerance + interval);
    const int64_t tat = std::max(e.tat_ns, now);
    if (tat - now > tolerance) {
      ++e.refused_rate;
      const int64_t wait = tat - tolerance - now;
      return Refuse(lock, rate_limited_, Reason::kRate,
                    std::max<int64_t>(1, (wait + kNsPerSecond - 1) / kNsPerSecond), now,
                    instance_id, limits);
    }
    new_tat = tat + interval;
  }
  if (limits.max_in_flight > 0) {
    if (e.in_flight.load(std::memory_order_relaxed) >= static_cast<int32_t>(limits.max_in_flight)) {
      ++e.refused_concurrency;
      return Refuse(lock, concurrency_limited_, Reason::kConcurrency, 1, now, instance_id, limits);
    }
    e.in_flight.fetch_add(1, std::memory_order_relaxed);
    d.slot = Slot(&e.in_flight);
  }
  if (limits.requests_per_second > 0) e.tat_ns = new_tat;
  return d;
}

void InstanceLimiter::NoteRefusal(int64_t now_ns, std::string_view id, Reason reason,
                                  const Limits& limits) {
  int64_t next = next_log_ns_.load(std::memory_order_relaxed);
  if (now_ns < next) return;
  const int64_t period = std::chrono::nanoseconds(options_.log_period).count();
  if (!next_log_ns_.compare_exchange_strong(next, now_ns + period, std::memory_order_relaxed)) {
    return;  // another thread writes this period's line
  }
  const uint64_t rate = rate_limited_.Value();
  const uint64_t concurrency = concurrency_limited_.Value();
  const uint64_t rate_since = rate - logged_rate_.exchange(rate, std::memory_order_relaxed);
  const uint64_t concurrency_since =
      concurrency - logged_concurrency_.exchange(concurrency, std::memory_order_relaxed);
  const uint64_t connections = connections_limited_.Value();
  const uint64_t connections_since =
      connections - logged_connections_.exchange(connections, std::memory_order_relaxed);
  std::string line = "refused " +
                     std::to_string(rate_since + concurrency_since + connections_since) +
                     " requests over per-instance limits since the last such line (rate " +
                     std::to_string(rate_since) + ", concurrency " +
                     std::to_string(concurrency_since) + ", connections " +
                     std::to_string(connections_since) + "); latest: instance " + std::string(id);
  if (reason == Reason::kRate) {
    line += " over " + std::to_string(limits.requests_per_second) + " requests/s (burst " +
            std::to_string(limits.burst) + ")";
  } else if (reason == Reason::kConnections) {
    line += " over " + std::to_string(limits.max_connections) + " open connections";
  } else {
    line += " over " + std::to_string(limits.max_in_flight) + " requests in flight";
  }
  line += "; next summary in " + std::to_string(options_.log_period.count()) +
          " s at the earliest; per instance: metadata_rate_limited_instance_total";
  common::LogWarn("metadata", line);
}

size_t InstanceLimiter::tracked() const {
  size_t n = 0;
  for (size_t i = 0; i < shard_count_; ++i) {
    std::lock_guard<std::mutex> lock(shards_[i].mu);
    n += shards_[i].entries.size();
  }
  return n;
}

std::vector<InstanceLimiter::Row> InstanceLimiter::TopLimited() const {
  std::vector<Row> rows;
  if (options_.top_instances == 0) return rows;
  // Tracked entries first: one shard locked at a time, only to copy the few
  // refused ones.
  for (size_t i = 0; i < shard_count_; ++i) {
    std::lock_guard<std::mutex> lock(shards_[i].mu);
    for (const auto& [key, e] : shards_[i].entries) {
      const Row row{key.id, e.refused_rate, e.refused_concurrency, e.refused_connections};
      if (row.total() > 0) rows.push_back(row);
    }
  }
  {
    std::lock_guard<std::mutex> lock(retired_->mu);
    for (const Row& old : retired_->rows) {
      auto same = std::find_if(rows.begin(), rows.end(),
                               [&old](const Row& r) { return r.instance == old.instance; });
      if (same == rows.end()) {
        rows.push_back(old);
      } else {
        same->rate += old.rate;
        same->concurrency += old.concurrency;
        same->connections += old.connections;
      }
    }
  }
  auto more = [](const Row& a, const Row& b) {
    const uint64_t ta = a.total(), tb = b.total();
    return ta != tb ? ta > tb : a.instance < b.instance;
  };
  if (rows.size() > options_.top_instances) {
    std::partial_sort(rows.begin(), rows.begin() + static_cast<long>(options_.top_instances),
                      rows.end(), more);
    rows.resize(options_.top_instances);
  } else {
    std::sort(rows.begin(), rows.end(), more);
  }
  return rows;
}

}  // namespace openimds::service
