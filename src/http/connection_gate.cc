#include "http/connection_gate.h"

#include <sys/resource.h>

#include <algorithm>

namespace openimds::http {

common::IpAddress ConnectionGate::SourceKey(const common::IpAddress& source) {
  if (source.is_v4()) return source;
  // A guest is routinely given a whole /64 (SLAAC, privacy addresses,
  // delegated prefixes) and can pick any address in it: capped per address,
  // it could open 2^64 times the cap.
  std::array<uint8_t, 16> bytes = source.bytes();
  std::fill(bytes.begin() + 8, bytes.end(), uint8_t{0});
  return common::IpAddress::FromV6Bytes(bytes);
}

ConnectionGate::Verdict ConnectionGate::Admit(const common::IpAddress& source,
                                              size_t max_per_source) {
  const size_t before = open_.fetch_add(1, std::memory_order_relaxed);
  if (max_open_ != 0 && before >= max_open_) {
    open_.fetch_sub(1, std::memory_order_relaxed);
    return Verdict::kTooManyConnections;
  }
  if (max_per_source == 0) return Verdict::kAdmitted;
  const common::IpAddress key = SourceKey(source);
  Shard& shard = ShardOf(key);
  std::lock_guard lock(shard.mu);
  uint32_t& count = shard.open[key];
  if (count >= max_per_source) {
    open_.fetch_sub(1, std::memory_order_relaxed);
    return Verdict::kTooManyFromSource;
  }
  ++count;
  return Verdict::kAdmitted;
}

void ConnectionGate::Release(const common::IpAddress& source, size_t max_per_source) {
  open_.fetch_sub(1, std::memory_order_relaxed);
  if (max_per_source == 0) return;
  const common::IpAddress key = SourceKey(source);
  Shard& shard = ShardOf(key);
  std::lock_guard lock(shard.mu);
  auto it = shard.open.find(key);
  if (it == shard.open.end()) return;
  if (--it->second == 0) shard.open.erase(it);
}

size_t ConnectionGate::sources() const {
  size_t n = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    n += shard.open.size();
  }
  return n;
}

size_t RaiseDescriptorLimit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1024;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  return lim.rlim_cur == RLIM_INFINITY ? size_t{1} << 20 : static_cast<size_t>(lim.rlim_cur);
}

size_t DefaultConnectionCap(size_t descriptor_limit, size_t reserved, size_t ceiling) {
  const size_t usable = descriptor_limit > reserved ? descriptor_limit - reserved : 0;
  return std::max<size_t>(16, std::min(usable, ceiling));
}

}  // namespace openimds::http
