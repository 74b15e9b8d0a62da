#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "common/ip_address.h"

namespace openimds::http {

// Admission of new connections at accept: a cap on the connections open
// through this gate, and a cap per source (an IPv4 address, or an IPv6 /64:
// one guest commonly owns a whole /64 and may use any address in it), so one guest opening
// thousands of idle connections cannot use up the process's descriptors and
// lock out every other guest and the admin API. Over a cap the caller closes
// the connection at once. Thread-safe: several I/O threads accept through
// one gate.
class ConnectionGate {
 public:
  enum class Verdict { kAdmitted, kTooManyConnections, kTooManyFromSource };

  // `max_open`: connections open through this gate at most (0: no cap).
  explicit ConnectionGate(size_t max_open) : max_open_(max_open) {}
  ConnectionGate(const ConnectionGate&) = delete;
  ConnectionGate& operator=(const ConnectionGate&) = delete;

  // Counts the connection in when admitted. `max_per_source` (0: no cap)
  // may differ between callers of one gate (a listener for guests, one for
  // proxies); Release must be given the same value.
  Verdict Admit(const common::IpAddress& source, size_t max_per_source);
  void Release(const common::IpAddress& source, size_t max_per_source);

  size_t open() const { return open_.load(std::memory_order_relaxed); }
  size_t max_open() const { return max_open_; }
  // Sources with at least one connection open under a per-source cap.
  size_t sources() const;

  // What a connection from `source` counts against: IPv4 addresses as
  // themselves, IPv6 addresses as their /64 (the rest zeroed).
  static common::IpAddress SourceKey(const common::IpAddress& source);

 private:
  struct Hash {
    size_t operator()(const common::IpAddress& a) const { return a.Hash(); }
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<common::IpAddress, uint32_t, Hash> open;
  };
  static constexpr size_t kShards = 16;
  Shard& ShardOf(const common::IpAddress& source) {
    return shards_[source.Hash() % kShards];
  }

  const size_t max_open_;
  std::atomic<size_t> open_{0};
  std::array<Shard, kShards> shards_;
};

// Raises this process's soft RLIMIT_NOFILE to its hard limit (connections
// are descriptors) and returns the soft limit in force afterwards.
size_t RaiseDescriptorLimit();

// The connection cap to use when none is configured: the descriptor limit
// minus `reserved` (kept for the admin API, the store, logs and upstreams),
// at most `ceiling`, and at least 16.
size_t DefaultConnectionCap(size_t descriptor_limit, size_t reserved, size_t ceiling);

}  // namespace openimds::http
