#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/ip_address.h"
#include "model/instance.h"

namespace openimds::catalog {

// One instance as published, with its store revision.
struct Entry {
  std::shared_ptr<const model::Instance> instance;
  int64_t revision = 0;
};

// An immutable view of every instance with its indexes: id -> entry and
// (network, caller address) -> instance (claimed and EUI-64-derived
// link-local addresses, see Build). Built once, never changed, shared by
// all readers; safe for concurrent use without locks.
class Snapshot {
 public:
  // Builds indexes over `entries`. The address index holds, per instance
  // and in its network:
  //  - model::CallerAddresses (the addresses the store keeps unique); if two
  //    entries claim one (network, address) the later one by id wins (the
  //    store's unique index makes that a bug);
  //  - the IPv6 link-local address each NIC's MAC gives by EUI-64
  //    (Eui64LinkLocal), so a guest calling fe80::a9fe:a9fe over its link is
  //    found as Neutron's agent finds it, by MAC. These are derived, not
  //    claimed: the store does not hold them, a claimed address wins over a
  //    derived one, and a derived address two instances would share (the
  //    same MAC twice in one network) is left out for both, silently (the
  //    caller is then unknown, as Neutron answers when a MAC matches more
  //    than one port).
  static std::shared_ptr<const Snapshot> Build(std::vector<Entry> entries, uint64_t generation);

  // The instance that answers from `address` in `network` (claimed or
  // derived, see Build), or nullptr. Lock-free and allocation-free.
  const model::Instance* FindByAddress(std::string_view network,
                                       const common::IpAddress& address) const;
  // nullptr if absent.
  const Entry* FindById(std::string_view id) const;

  // Entries ordered by id.
  const std::vector<Entry>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  // Increases with every publish; readers use it to tell snapshots apart.
  uint64_t generation() const { return generation_; }

 private:
  struct AddressKey {
    std::string_view network;  // points into the owning Instance
    common::IpAddress address;
    friend bool operator==(const AddressKey& a, const AddressKey& b) {
      return a.network == b.network && a.address == b.address;
    }
  };
  struct AddressKeyHash {
    size_t operator()(const AddressKey& k) const {
      return std::hash<std::string_view>()(k.network) * 31 + k.address.Hash();
    }
  };

  std::vector<Entry> entries_;
  std::unordered_map<std::string_view, size_t> by_id_;  // views into entries_' instances
  std::unordered_map<AddressKey, const model::Instance*, AddressKeyHash> by_address_;
  uint64_t generation_ = 0;
};

// The current snapshot, replaced atomically by writers.
//
// Readers on the hot path use a Reader (one per thread): it costs one atomic
// load per request while nothing changes and a short mutex-guarded copy right
// after a publish. A publish is visible to every Reader's next Get() as soon as
// the publishing call returns. Writers are serialised internally.
class Catalog {
 public:
  Catalog();

  // Thread-local view. Not thread-safe itself; the Catalog must outlive it.
  class Reader {
   public:
    explicit Reader(const Catalog& catalog) : catalog_(&catalog) {}
    // The newest published snapshot; the reference is valid until the next Get().
    const Snapshot& Get();

   private:
    const Catalog* catalog_;
    std::shared_ptr<const Snapshot> cached_;
    uint64_t cached_generation_ = ~uint64_t{0};
  };

  // The newest snapshot (takes the mutex; for admin and tests, not the hot path).
  std::shared_ptr<const Snapshot> Current() const;

  // Writers. Each builds the next snapshot from the current one and publishes it.
  void ReplaceAll(std::vector<Entry> entries);
  // Inserts or replaces by id.
  void Upsert(Entry entry);
  // Upserts many in one publish (bulk import).
  void UpsertMany(std::vector<Entry> entries);
  void Remove(std::string_view id);

  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  void Publish(std::vector<Entry> entries);  // requires write_mu_

  std::mutex write_mu_;  // serialises writers (building the next snapshot)
  mutable std::mutex mu_;  // guards current_ (pointer copy only)
  std::shared_ptr<const Snapshot> current_;  // guarded by mu_
  std::atomic<uint64_t> generation_{0};  // == current_->generation(), readable without mu_
};

}  // namespace openimds::catalog
