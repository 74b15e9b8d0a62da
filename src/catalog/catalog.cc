#include "catalog/catalog.h"

#include <algorithm>

#include "catalog/eui64.h"
#include "model/instance_json.h"

namespace openimds::catalog {

void Snapshot::Editor::Upsert(Entry entry) {
  // Keeps the replaced instance alive while its index entries are removed
  // (their keys view its strings).
  Entry old;
  if (const Entry* found = snapshot_.by_id_.Find(entry.instance->id.view())) old = *found;
  if (old.instance) Unindex(*old.instance);
  const model::Instance& in = *entry.instance;
  ids_.Set(in.id, std::move(entry));
  Index(in);
}

void Snapshot::Editor::Remove(std::string_view id) {
  const Entry* found = snapshot_.by_id_.Find(id);
  if (found == nullptr) return;
  const std::shared_ptr<const model::Instance> old = found->instance;
  Unindex(*old);
  ids_.Erase(id);
}

struct Snapshot::DerivedHolders::Many {
  std::atomic<uint32_t> refs{1};
  std::vector<const model::Instance*> holders;
};

Snapshot::DerivedHolders::DerivedHolders(std::vector<const model::Instance*> many) {
  auto* m = new Many();
  m->holders = std::move(many);
  bits_ = reinterpret_cast<uintptr_t>(m) | kManyBit;
}

std::vector<const model::Instance*> Snapshot::DerivedHolders::all() const {
  if ((bits_ & kManyBit) != 0) return many()->holders;
  return {only()};
}

void Snapshot::DerivedHolders::Retain() const {
  if ((bits_ & kManyBit) != 0) many()->refs.fetch_add(1, std::memory_order_relaxed);
}

void Snapshot::DerivedHolders::Release() {
  if ((bits_ & kManyBit) != 0 && many()->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    delete many();
  }
  bits_ = 0;
}

void Snapshot::Editor::Index(const model::Instance& in) {
  model::ForEachCallerAddress(in, [this, &in](const common::IpAddress& ip) {
    addresses_.Set(AddressKey(in.network, ip), &in);
  });
  for (const model::Nic& nic : in.nics) {
    const auto ip = Eui64LinkLocal(nic.mac);
    if (!ip) continue;  // not a 48-bit MAC: nothing to derive
    const AddressKey key(in.network, *ip);
    const DerivedHolders* found = snapshot_.derived_.Find(key);
    if (found == nullptr) {
      derived_.Set(key, DerivedHolders(&in));
      continue;
    }
    if (found->only() == &in) continue;  // two NICs of one instance with one MAC
    std::vector<const model::Instance*> all = found->all();
    if (std::find(all.begin(), all.end(), &in) != all.end()) continue;
    all.push_back(&in);
    // The key views the network of a holder that stays in the entry.
    const AddressKey kept(all.front()->network, *ip);
    derived_.Set(kept, DerivedHolders(std::move(all)));
  }
}

void Snapshot::Editor::Unindex(const model::Instance& in) {
  model::ForEachCallerAddress(in, [this, &in](const common::IpAddress& ip) {
    const AddressKey key(in.network, ip);
    // Another instance may hold it by now (an address moving between two
    // instances within one page of changes): leave that one's claim alone.
    const model::Instance* const* holder = snapshot_.by_address_.Find(key);
    if (holder != nullptr && *holder == &in) addresses_.Erase(key);
  });
  for (const model::Nic& nic : in.nics) {
    const auto ip = Eui64LinkLocal(nic.mac);
    if (!ip) continue;
    const AddressKey key(in.network, *ip);
    const DerivedHolders* found = snapshot_.derived_.Find(key);
    if (found == nullptr) continue;
    if (found->only() != nullptr) {
      if (found->only() == &in) derived_.Erase(key);
      continue;
    }
    const std::vector<const model::Instance*> all = found->all();
    std::vector<const model::Instance*> rest;
    for (const model::Instance* h : all) {
      if (h != &in) rest.push_back(h);
    }
    if (rest.size() == all.size()) continue;
    const AddressKey kept(rest.front()->network, *ip);
    if (rest.size() == 1) {
      derived_.Set(kept, DerivedHolders(rest.front()));
    } else {
      derived_.Set(kept, DerivedHolders(std::move(rest)));
    }
  }
}

std::shared_ptr<const Snapshot> Snapshot::Build(std::vector<Entry> entries, uint64_t generation) {
  auto snap = std::make_shared<Snapshot>();
  snap->generation_ = generation;
  {
    Editor editor(*snap);
    for (Entry& e : entries) editor.Upsert(std::move(e));
  }
  return snap;
}

const model::Instance* Snapshot::FindByAddress(std::string_view network,
                                               const common::IpAddress& address) const {
  const AddressKey key(network, address);
  if (const model::Instance* const* claimed = by_address_.Find(key)) return *claimed;
  const DerivedHolders* derived = derived_.Find(key);
  return derived == nullptr ? nullptr : derived->only();
}

const Entry* Snapshot::FindById(std::string_view id) const { return by_id_.Find(id); }

std::vector<const Entry*> Snapshot::EntriesById() const {
  std::vector<const Entry*> out;
  out.reserve(size());
  ForEach([&out](const Entry& e) { out.push_back(&e); });
  std::sort(out.begin(), out.end(),
            [](const Entry* a, const Entry* b) { return a->instance->id < b->instance->id; });
  return out;
}

SnapshotBuilder::SnapshotBuilder()
    : snapshot_(std::make_shared<Snapshot>()),
      editor_(std::make_unique<Snapshot::Editor>(*snapshot_)) {}
SnapshotBuilder::~SnapshotBuilder() = default;
SnapshotBuilder::SnapshotBuilder(SnapshotBuilder&&) noexcept = default;

void SnapshotBuilder::Add(Entry entry) { editor_->Upsert(std::move(entry)); }

size_t SnapshotBuilder::size() const { return snapshot_->size(); }

Catalog::Catalog() : current_(Snapshot::Build({}, 0)) {}

Catalog::~Catalog() = default;

const Snapshot& Catalog::Reader::Get() {
  const uint64_t g = catalog_->generation();
  if (g != cached_generation_) {
    // Dropping the previous snapshot here never frees it: the catalog's
    // retired list still holds it (see Catalog).
    cached_ = catalog_->Current();
    cached_generation_ = cached_->generation();
  }
  return *cached_;
}

std::shared_ptr<const Snapshot> Catalog::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

void Catalog::Publish(std::shared_ptr<Snapshot> next) {
  next->generation_ = generation_.load(std::memory_order_relaxed) + 1;
  std::shared_ptr<const Snapshot> previous;
  {
    std::lock_guard<std::mutex> lock(mu_);
    previous = std::exchange(current_, std::move(next));
  }
  // Bumped after the pointer is in place: a Reader that sees the new
  // generation is guaranteed to copy the new pointer.
  generation_.store(current_->generation(), std::memory_order_release);
  retired_.push_back(std::move(previous));
  ReclaimLocked();
}

size_t Catalog::ReclaimLocked() {
  // use_count() == 1: only this list holds it, and no Reader can take a new
  // reference to a snapshot that is no longer current_, so it is safe to free.
  std::erase_if(retired_, [](const std::shared_ptr<const Snapshot>& s) { return s.use_count() == 1; });
  return retired_.size();
}

size_t Catalog::Reclaim() {
  std::lock_guard<std::mutex> lock(write_mu_);
  return ReclaimLocked();
}

void Catalog::Apply(std::vector<Change> changes, int64_t revision) {
  std::lock_guard<std::mutex> lock(write_mu_);
  auto next = std::make_shared<Snapshot>(*Current());
  {
    Snapshot::Editor editor(*next);
    for (Change& c : changes) {
      if (c.instance) {
        editor.Upsert(Entry{std::move(c.instance), c.revision});
      } else {
        editor.Remove(c.id);
      }
    }
  }
  next->revision_ = std::max(next->revision_, revision);
  Publish(std::move(next));
}

void Catalog::ReplaceAll(std::vector<Entry> entries, int64_t revision) {
  // Build made it and nobody else has seen it yet.
  auto next = std::const_pointer_cast<Snapshot>(Snapshot::Build(std::move(entries), 0));
  next->revision_ = revision;
  std::lock_guard<std::mutex> lock(write_mu_);
  Publish(std::move(next));
}

void Catalog::ReplaceAll(SnapshotBuilder built, int64_t revision) {
  built.editor_.reset();  // the edit ends: from here on the snapshot is immutable
  std::shared_ptr<Snapshot> next = std::move(built.snapshot_);
  next->revision_ = revision;
  std::lock_guard<std::mutex> lock(write_mu_);
  Publish(std::move(next));
}

void Catalog::Upsert(Entry entry) {
  std::vector<Entry> one;
  one.push_back(std::move(entry));
  UpsertMany(std::move(one));
}

void Catalog::UpsertMany(std::vector<Entry> entries) {
  std::vector<Change> changes;
  changes.reserve(entries.size());
  for (Entry& e : entries) {
    changes.push_back(Change{e.instance->id, std::move(e.instance), e.revision});
  }
  Apply(std::move(changes), 0);
}

void Catalog::Remove(std::string_view id) {
  std::vector<Change> one;
  one.push_back(Change{std::string(id), nullptr, 0});
  Apply(std::move(one), 0);
}

}  // namespace openimds::catalog
