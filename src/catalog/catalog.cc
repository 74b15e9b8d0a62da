#include "catalog/catalog.h"

#include <algorithm>

#include "catalog/eui64.h"
#include "model/instance_json.h"

namespace openimds::catalog {

std::shared_ptr<const Snapshot> Snapshot::Build(std::vector<Entry> entries, uint64_t generation) {
  auto snap = std::make_shared<Snapshot>();
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.instance->id < b.instance->id;
  });
  snap->entries_ = std::move(entries);
  snap->generation_ = generation;
  snap->by_id_.reserve(snap->entries_.size());
  for (size_t i = 0; i < snap->entries_.size(); ++i) {
    const model::Instance& inst = *snap->entries_[i].instance;
    snap->by_id_[inst.id] = i;
    for (const auto& text : model::CallerAddresses(inst)) {
      auto ip = common::IpAddress::Parse(text);
      if (!ip) continue;  // Validate() guarantees parseable addresses
      snap->by_address_[AddressKey{inst.network, *ip}] = &inst;
    }
  }
  // Derived link-local addresses, after every claimed one so a claim always
  // wins. nullptr marks a derived address more than one instance would have.
  std::unordered_map<AddressKey, const model::Instance*, AddressKeyHash> derived;
  for (const Entry& entry : snap->entries_) {
    const model::Instance& inst = *entry.instance;
    for (const model::Nic& nic : inst.nics) {
      const auto ip = Eui64LinkLocal(nic.mac);
      if (!ip) continue;  // not a 48-bit MAC: nothing to derive
      const AddressKey key{inst.network, *ip};
      if (snap->by_address_.count(key) != 0) continue;
      auto [it, fresh] = derived.emplace(key, &inst);
      if (!fresh && it->second != &inst) it->second = nullptr;
    }
  }
  for (const auto& [key, inst] : derived) {
    if (inst != nullptr) snap->by_address_.emplace(key, inst);
  }
  return snap;
}

const model::Instance* Snapshot::FindByAddress(std::string_view network,
                                               const common::IpAddress& address) const {
  auto it = by_address_.find(AddressKey{network, address});
  return it == by_address_.end() ? nullptr : it->second;
}

const Entry* Snapshot::FindById(std::string_view id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &entries_[it->second];
}

Catalog::Catalog() : current_(Snapshot::Build({}, 0)) {}

const Snapshot& Catalog::Reader::Get() {
  const uint64_t g = catalog_->generation();
  if (g != cached_generation_) {
    cached_ = catalog_->Current();
    cached_generation_ = cached_->generation();
  }
  return *cached_;
}

std::shared_ptr<const Snapshot> Catalog::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

void Catalog::Publish(std::vector<Entry> entries) {
  auto next = Snapshot::Build(std::move(entries), generation_.load() + 1);
  {
    std::lock_guard<std::mutex> lock(mu_);
    current_ = next;
  }
  // Bumped after the pointer is in place: a Reader that sees the new
  // generation is guaranteed to copy the new pointer.
  generation_.store(next->generation(), std::memory_order_release);
}

void Catalog::ReplaceAll(std::vector<Entry> entries) {
  std::lock_guard<std::mutex> lock(write_mu_);
  Publish(std::move(entries));
}

void Catalog::Upsert(Entry entry) {
  std::vector<Entry> one;
  one.push_back(std::move(entry));
  UpsertMany(std::move(one));
}

void Catalog::UpsertMany(std::vector<Entry> updates) {
  std::lock_guard<std::mutex> lock(write_mu_);
  auto cur = Current();
  std::unordered_map<std::string_view, const Entry*> by_id;
  for (const auto& u : updates) by_id[u.instance->id] = &u;
  std::vector<Entry> next;
  next.reserve(cur->size() + updates.size());
  for (const auto& e : cur->entries()) {
    if (by_id.count(e.instance->id) == 0) next.push_back(e);
  }
  for (auto& u : updates) next.push_back(std::move(u));
  Publish(std::move(next));
}

void Catalog::Remove(std::string_view id) {
  std::lock_guard<std::mutex> lock(write_mu_);
  auto cur = Current();
  std::vector<Entry> next;
  next.reserve(cur->size());
  for (const auto& e : cur->entries()) {
    if (e.instance->id != id) next.push_back(e);
  }
  Publish(std::move(next));
}

}  // namespace openimds::catalog
