#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace openimds::common {

// A monotonically increasing counter. Increments are sharded over cache lines
// so that hot-path counters on several cores do not bounce one line.
// Thread-safe; Inc is wait-free.
class Counter {
 public:
  void Inc(uint64_t n = 1);
  uint64_t Value() const;

 private:
  static constexpr int kShards = 8;
  struct alignas(64) Shard {
    std::atomic<uint64_t> v{0};
  };
  Shard shards_[kShards];
};

// Named metrics, rendered in Prometheus text exposition format.
// Registration takes a mutex (start-up and first use of a label set); the
// returned Counter& stays valid for the registry's lifetime. Thread-safe.
class MetricsRegistry {
 public:
  // `labels` is the inside of the braces, e.g. `reason="expired"`, or empty.
  // The same (name, labels) returns the same counter.
  Counter& GetCounter(std::string_view name, std::string_view help, std::string_view labels = {});

  // A value read at scrape time (e.g. instances in the catalog).
  void AddGauge(std::string_view name, std::string_view help, std::function<double()> read);

  // A counter family whose series are read at scrape time: `read` returns
  // (labels, value) pairs, labels written as for GetCounter. For a view that
  // must stay bounded whatever the label space (one row per instance for a
  // few instances out of a million); `read` decides which rows exist. It is
  // called with the registry's mutex held, so it must not call back into the
  // registry.
  using Series = std::vector<std::pair<std::string, uint64_t>>;
  void AddCounterFamily(std::string_view name, std::string_view help,
                        std::function<Series()> read);

  // All metrics, grouped by name, with HELP and TYPE lines.
  std::string RenderPrometheus() const;

  // The value of one counter, 0 if it was never registered (for tests and logs).
  uint64_t CounterValue(std::string_view name, std::string_view labels = {}) const;

 private:
  struct CounterEntry {
    std::string name, help, labels;
    Counter counter;
  };
  struct GaugeEntry {
    std::string name, help;
    std::function<double()> read;
  };
  mutable std::mutex mu_;
  std::deque<CounterEntry> counters_;  // guarded by mu_; deque keeps references stable
  struct FamilyEntry {
    std::string name, help;
    std::function<Series()> read;
  };
  std::vector<GaugeEntry> gauges_;     // guarded by mu_
  std::vector<FamilyEntry> families_;  // guarded by mu_
};

}  // namespace openimds::common
