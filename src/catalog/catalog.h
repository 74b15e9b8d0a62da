#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "catalog/persistent_map.h"
#include "common/ip_address.h"
#include "model/instance.h"

namespace openimds::catalog {

// One instance as published, with its store revision.
struct Entry {
  std::shared_ptr<const model::Instance> instance;
  int64_t revision = 0;
};

// One change for Catalog::Apply: instance `id` is now `instance` (nullptr:
// deleted) as of store revision `revision`.
struct Change {
  std::string id;
  std::shared_ptr<const model::Instance> instance;
  int64_t revision = 0;
};

// An immutable view of every instance with its indexes: id -> entry and
// (network, caller address) -> instance. Never changed once published, shared
// by all readers; safe for concurrent use without locks.
//
// The indexes are persistent hash tries (PersistentMap): the next snapshot
// shares every node a change does not touch, so making it costs O(log N) per
// changed instance, not a rebuild.
//
// The address index holds, per instance and in its network:
//  - model::CallerAddresses (the addresses the store keeps unique). If two
//    instances claim one (network, address) the one applied last holds it:
//    that happens only between two pages of the change feed, while an address
//    moves from one instance to another, and the next page settles it;
//  - the IPv6 link-local address each NIC's MAC gives by EUI-64
//    (Eui64LinkLocal), so a guest calling fe80::a9fe:a9fe over its link is
//    found as Neutron's agent finds it, by MAC. These are derived, not
//    claimed: the store does not hold them, a claimed address wins over a
//    derived one, and a derived address two instances would share (the same
//    MAC twice in one network) answers for neither (the caller is then
//    unknown, as Neutron answers when a MAC matches more than one port).
class Snapshot {
 public:
  // A snapshot of `entries` (ids unique; for a repeated id the last wins).
  static std::shared_ptr<const Snapshot> Build(std::vector<Entry> entries, uint64_t generation);

  // The instance that answers from `address` in `network`, or nullptr.
  // Lock-free and allocation-free.
  const model::Instance* FindByAddress(std::string_view network,
                                       const common::IpAddress& address) const;
  // nullptr if absent. Lock-free and allocation-free.
  const Entry* FindById(std::string_view id) const;

  // Calls f(const Entry&) for every instance, in no particular order.
  template <typename F>
  void ForEach(F&& f) const {
    by_id_.ForEach([&f](const model::Str&, const Entry& e) { f(e); });
  }
  // Every entry ordered by id: O(N log N), for listings, not the hot path.
  std::vector<const Entry*> EntriesById() const;

  size_t size() const { return by_id_.size(); }
  // Increases with every publish; readers use it to tell snapshots apart.
  uint64_t generation() const { return generation_; }
  // The store revision this snapshot reflects (what Catalog::Apply was given).
  int64_t revision() const { return revision_; }

 private:
  friend class Catalog;
  friend class SnapshotBuilder;

  // 32 bytes, not a string_view's 16 plus the address: a fleet has two of
  // these per NIC.
  struct AddressKey {
    AddressKey(std::string_view net, const common::IpAddress& ip)
        : network_data(net.data()), network_size(static_cast<uint32_t>(net.size())), address(ip) {}
    std::string_view network() const { return {network_data, network_size}; }
    const char* network_data;  // points into the instance the entry names
    uint32_t network_size;
    common::IpAddress address;
    friend bool operator==(const AddressKey& a, const AddressKey& b) {
      return a.network() == b.network() && a.address == b.address;
    }
  };
  struct AddressKeyHash {
    size_t operator()(const AddressKey& k) const {
      return std::hash<std::string_view>()(k.network()) ^
             (k.address.Hash() * 0x9e3779b97f4a7c15ULL);
    }
  };
  // The instances whose NICs give one derived address: one (the common
  // case: a pointer, no allocation) or several (then no one answers from
  // it: a shared, counted list). One word either way.
  class DerivedHolders {
   public:
    explicit DerivedHolders(const model::Instance* only)
        : bits_(reinterpret_cast<uintptr_t>(only)) {}
    explicit DerivedHolders(std::vector<const model::Instance*> many);
    DerivedHolders(const DerivedHolders& other) : bits_(other.bits_) { Retain(); }
    DerivedHolders(DerivedHolders&& other) noexcept : bits_(other.bits_) { other.bits_ = 0; }
    DerivedHolders& operator=(DerivedHolders other) noexcept {
      std::swap(bits_, other.bits_);
      return *this;
    }
    ~DerivedHolders() { Release(); }
    // The one holder; nullptr when there are several.
    const model::Instance* only() const {
      return (bits_ & kManyBit) != 0 ? nullptr : reinterpret_cast<const model::Instance*>(bits_);
    }
    // Every holder (one or more).
    std::vector<const model::Instance*> all() const;

   private:
    struct Many;
    static constexpr uintptr_t kManyBit = 1;  // instances are aligned: bit 0 is free
    Many* many() const { return reinterpret_cast<Many*>(bits_ & ~kManyBit); }
    void Retain() const;
    void Release();
    uintptr_t bits_;
  };

  // Keyed by the instance's own id text (8 bytes, shared with the record),
  // looked up by any view of an id.
  struct IdHash {
    size_t operator()(std::string_view id) const { return std::hash<std::string_view>()(id); }
  };
  using IdMap = PersistentMap<model::Str, Entry, IdHash, std::equal_to<>>;
  using AddressMap = PersistentMap<AddressKey, const model::Instance*, AddressKeyHash>;
  using DerivedMap = PersistentMap<AddressKey, DerivedHolders, AddressKeyHash>;

  // Applies changes to a snapshot that is not published yet.
  class Editor {
   public:
    explicit Editor(Snapshot& s)
        : snapshot_(s), ids_(s.by_id_), addresses_(s.by_address_), derived_(s.derived_) {}
    // Inserts or replaces entry.instance->id (entry.instance non-null).
    void Upsert(Entry entry);
    // Absent ids are ignored.
    void Remove(std::string_view id);

   private:
    void Index(const model::Instance& in);
    void Unindex(const model::Instance& in);
    Snapshot& snapshot_;
    IdMap::Editor ids_;
    AddressMap::Editor addresses_;
    DerivedMap::Editor derived_;
  };

  IdMap by_id_;               // key shares the entry's instance id
  AddressMap by_address_;     // claimed addresses
  DerivedMap derived_;        // EUI-64 link-local addresses
  uint64_t generation_ = 0;
  int64_t revision_ = 0;
};

// Builds a snapshot from scratch one entry at a time, so a start-up load or
// a resync indexes each instance as it arrives (while the store is still
// parsing the next ones) instead of collecting them all first. Not
// thread-safe; use it from one thread, then hand it to Catalog::ReplaceAll.
class SnapshotBuilder {
 public:
  SnapshotBuilder();
  ~SnapshotBuilder();
  SnapshotBuilder(SnapshotBuilder&&) noexcept;
  SnapshotBuilder& operator=(SnapshotBuilder&&) = delete;

  // Inserts or replaces entry.instance->id (non-null).
  void Add(Entry entry);
  size_t size() const;

 private:
  friend class Catalog;
  std::shared_ptr<Snapshot> snapshot_;
  std::unique_ptr<Snapshot::Editor> editor_;  // null once handed over
};

// The current snapshot, replaced atomically by writers.
//
// Readers on the hot path use a Reader (one per thread): it costs one atomic
// load per request while nothing changes and a short mutex-guarded pointer
// copy right after a publish. A publish is visible to every Reader's next
// Get() as soon as the publishing call returns. Writers are serialised
// internally; a write costs O(log N) per changed instance.
//
// No reader ever frees a snapshot: every replaced snapshot is kept on a
// retired list until no Reader holds it, and freed by a writer (each publish)
// or Reclaim(). So the memory of old instances and trie nodes is always
// returned on a writer's thread, never on a guest I/O thread.
class Catalog {
 public:
  Catalog();
  ~Catalog();

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

  // The newest snapshot (takes a mutex; for admin and tests, not the hot path).
  std::shared_ptr<const Snapshot> Current() const;

  // Applies `changes` in order as one publish; the new snapshot reflects store
  // revision `revision` (kept if lower than the current one's). An entry with
  // a null instance removes its id (absent ids are ignored).
  void Apply(std::vector<Change> changes, int64_t revision);

  // Replaces everything (start-up, resync): one publish built in place.
  void ReplaceAll(std::vector<Entry> entries, int64_t revision = 0);
  void ReplaceAll(SnapshotBuilder built, int64_t revision);

  // Conveniences over Apply for tools and tests; the revision stays.
  void Upsert(Entry entry);
  void UpsertMany(std::vector<Entry> entries);
  void Remove(std::string_view id);

  // Frees the retired snapshots that no Reader holds any more; returns how
  // many are still held. Every writer calls it; call it periodically from a
  // writer-side thread too, so memory returns without waiting for a write.
  size_t Reclaim();

  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  // Publishes `next` (its generation set here). Requires write_mu_.
  void Publish(std::shared_ptr<Snapshot> next);
  // Requires write_mu_.
  size_t ReclaimLocked();

  std::mutex write_mu_;  // serialises writers
  std::vector<std::shared_ptr<const Snapshot>> retired_;  // guarded by write_mu_
  mutable std::mutex mu_;  // guards current_ (pointer copy only)
  std::shared_ptr<const Snapshot> current_;  // guarded by mu_
  std::atomic<uint64_t> generation_{0};  // == current_->generation(), readable without mu_
};

}  // namespace openimds::catalog
