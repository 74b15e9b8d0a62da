#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "model/instance.h"

namespace openimds::service {

// The limits that hold for one request: the record's "limits" over the
// server's defaults (InstanceLimiter::Effective).
struct Limits {
  uint32_t requests_per_second = 0;  // 0: no rate limit
  uint32_t burst = 1;                // requests a full bucket admits at once (>= 1)
  uint32_t max_in_flight = 0;        // 0: no limit on requests served at once
  uint32_t max_connections = 0;      // 0: no limit on connections open at once
};

// Fairness between guests: a per-instance token bucket (sustained rate plus a
// burst, so a booting guest's crawl passes) and a per-instance cap on requests
// in flight. The service asks Admit() once per request, after it knows the
// instance and before the flavour renders.
//
// State is created on an instance's first request and lives in one of
// Options::shards hash maps, each behind its own mutex held only for a
// lookup and a few arithmetic operations. An entry whose bucket is full again
// and which has nothing in flight is exactly what no entry means, so such
// entries are swept (when a shard has doubled since its last sweep, or is at
// its cap): memory follows the instances that asked recently, never the
// fleet, and is bounded by Options::max_tracked (~150 B per entry). An
// instance that cannot get an entry because every entry of its shard is in
// use is admitted untracked and counted (metadata_rate_limiter_untracked_total).
//
// The bucket is kept as GCRA (one "theoretical arrival time" per instance):
// the same decisions as a token bucket refilled continuously at
// requests_per_second with `burst` tokens, without a token count to refill.
// A refused request takes no token and no slot.
//
// Metrics: metadata_rate_limited_total{reason="rate"|"concurrency"|"connections"}
// (exact),
// metadata_rate_limited_instance_total{instance,reason} (the
// Options::top_instances instances with the most refusals among those tracked
// now or refused recently: a bounded view, see TopLimited), and
// metadata_rate_limiter_tracked_instances, metadata_rate_limited_held_requests.
// Refusals are not logged one by one: at most one summary line per
// Options::log_period.
//
// Thread-safe. The clock is borrowed and must outlive the limiter, which
// must outlive every Slot and Hold it hands out.
class InstanceLimiter {
 public:
  struct Options {
    // Server-wide defaults for records that leave "limits" fields unset.
    // cloud-init's EC2 crawl at boot is about 60 requests for a one-NIC
    // record, well under 200 with eight NICs, in well under a second (see
    // docs/instance.md "limits"), and every other client asks far less often:
    // 500 at once and 100/s after that leave a wide margin for a booting
    // guest while one guest alone can no longer take a whole worker.
    uint32_t requests_per_second = 100;
    uint32_t burst = 500;
    // Requests of one instance served at once. Today's handlers answer on the
    // I/O thread, so only parked (deferred) requests push this past the
    // number of threads.
    uint32_t max_in_flight = 64;
    // Connections one instance keeps open at once (direct listeners only:
    // a proxy's connection carries many guests). The per-source cap at
    // accept (256 by default) already bounds one address; this holds an
    // instance with several addresses to one budget. Keep-alive clients
    // use one or two; 0: no limit.
    uint32_t max_connections = 256;
    // Instances tracked at once, all shards together.
    size_t max_tracked = 256 * 1024;
    // Hash maps (each with its own mutex); a power of two.
    size_t shards = 64;
    // Rows of metadata_rate_limited_instance_total.
    size_t top_instances = 20;
    // At most one summary log line per period while requests are refused.
    std::chrono::seconds log_period{10};
    // How long the service holds a refusal back before sending it, on
    // listeners where each connection is one guest's (direct mode). A guest
    // that ignores 429 and asks again at once, from C connections, then
    // costs C requests per period instead of a whole I/O thread, and the
    // guests beside it keep their latency (bench/fairness.sh). Well-behaved
    // clients lose nothing: they would wait Retry-After (>= 1 s) anyway.
    // 0: answer at once. Never applied on proxy-mode listeners, where one
    // upstream connection carries many guests' pipelined requests.
    std::chrono::milliseconds refusal_delay{1000};
  };

  enum class Reason { kRate, kConcurrency, kConnections };

  // One admitted request's place among its instance's requests in flight;
  // given back when destroyed. Move-only; empty when no limit applies.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept : count_(std::exchange(other.count_, nullptr)) {}
    Slot& operator=(Slot&& other) noexcept {
      if (this != &other) {
        Release();
        count_ = std::exchange(other.count_, nullptr);
      }
      return *this;
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { Release(); }

    bool held() const { return count_ != nullptr; }
    void Release() {
      if (count_ != nullptr) count_->fetch_sub(1, std::memory_order_release);
      count_ = nullptr;
    }

   private:
    friend class InstanceLimiter;
    explicit Slot(std::atomic<int32_t>* count) : count_(count) {}
    std::atomic<int32_t>* count_ = nullptr;
  };

  // Marks one refusal being held back (Options::refusal_delay) for as long
  // as it lives; the metadata_rate_limited_held_requests gauge counts them.
  // Move-only.
  class Hold {
   public:
    explicit Hold(InstanceLimiter& limiter) : held_(&limiter.held_) {
      held_->fetch_add(1, std::memory_order_relaxed);
    }
    Hold(Hold&& other) noexcept : held_(std::exchange(other.held_, nullptr)) {}
    Hold& operator=(Hold&&) = delete;
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;
    ~Hold() {
      if (held_ != nullptr) held_->fetch_sub(1, std::memory_order_relaxed);
    }

   private:
    std::atomic<int64_t>* held_;
  };

  struct Decision {
    bool admitted = true;
    Reason reason = Reason::kRate;  // when refused
    // When refused: whole seconds (>= 1) until a request would be admitted
    // (the next token for kRate; 1 for kConcurrency). For Retry-After.
    int64_t retry_after_s = 0;
    Slot slot;  // when admitted under an in-flight limit
  };

  InstanceLimiter(Options options, const common::Clock& clock, common::MetricsRegistry& metrics);
  ~InstanceLimiter();
  InstanceLimiter(const InstanceLimiter&) = delete;
  InstanceLimiter& operator=(const InstanceLimiter&) = delete;

  // The limits for an instance whose record holds `record`: each field the
  // record sets, else the server's default.
  Limits Effective(const model::RequestLimits& record) const;

  // Admits or refuses one request of `instance_id` under `limits`, and counts
  // the refusal. Hot path: no allocation except an instance's first entry.
  Decision Admit(std::string_view instance_id, const Limits& limits);

  // Admits or refuses one more open connection of `instance_id` under
  // `limits.max_connections` (kConnections when refused, Retry-After 1),
  // and counts the refusal. The Slot stands for the connection: hold it
  // until the connection closes. Not charged against the rate or in-flight
  // limits.
  Decision AdmitConnection(std::string_view instance_id, const Limits& limits);

  // Instances with state now (for tests and the tracked-instances gauge).
  size_t tracked() const;

  const Options& options() const { return options_; }

  // The view behind metadata_rate_limited_instance_total: (instance, rate
  // refusals, concurrency refusals) for the top_instances instances with the
  // most refusals, among the entries tracked now and the top_instances
  // instances refused most among those whose entries were swept. Counts
  // start when an instance's entry was made, survive while it is tracked or
  // retained, and are sums across a sweep and a new entry.
  struct Row {
    std::string instance;
    uint64_t rate = 0;
    uint64_t concurrency = 0;
    uint64_t connections = 0;
    uint64_t total() const { return rate + concurrency + connections; }
  };
  std::vector<Row> TopLimited() const;

 private:
  struct Entry;
  struct Shard;
  Shard& ShardFor(uint64_t hash) const;
  void Sweep(Shard& shard, int64_t now_ns);
  void Retire(const Row& row);
  // The entry of `instance_id`, made if need be (null: untracked, counted).
  Entry* FindOrMake(std::unique_lock<std::mutex>& lock, Shard& shard, uint64_t hash,
                    std::string_view instance_id, int64_t now);
  void NoteRefusal(int64_t now_ns, std::string_view id, Reason reason, const Limits& limits);
  // The refusal every limit answers with: releases `lock` (the shard's),
  // counts it in `counter` and notes it for the summary.
  Decision Refuse(std::unique_lock<std::mutex>& lock, common::Counter& counter, Reason reason,
                  int64_t retry_after_s, int64_t now_ns, std::string_view id,
                  const Limits& limits);

  // Constant after construction.
  const Options options_;
  const common::Clock& clock_;
  size_t shard_count_ = 1;    // options_.shards rounded down to a power of two
  size_t per_shard_cap_ = 1;  // options_.max_tracked / shard_count_
  std::unique_ptr<Shard[]> shards_;
  common::Counter& rate_limited_;
  common::Counter& concurrency_limited_;
  common::Counter& connections_limited_;
  common::Counter& untracked_;

  // The summary log line: the first refusal at or after next_log_ns_ writes
  // it (compare-and-swap), with the refusals counted since the previous one.
  std::atomic<int64_t> next_log_ns_{0};
  std::atomic<uint64_t> logged_rate_{0};         // rate_limited_ at the last line
  std::atomic<uint64_t> logged_concurrency_{0};  // concurrency_limited_ at the last line
  std::atomic<uint64_t> logged_connections_{0};  // connections_limited_ at the last line

  // Refusal counts of swept entries (at most top_instances rows).
  struct Retired;
  std::unique_ptr<Retired> retired_;

  std::atomic<int64_t> held_{0};  // refusals being held back now (Hold)
};

}  // namespace openimds::service
